import {
  MessageType,
  newMessage,
  ProposalDroppedError,
  StateRole,
  newSeededRandom,
  type ConfChangeV2,
  type Entry,
  type Logger as RaftLogger,
  type Message,
  type Ready,
} from '@flotilla/raft-core';
import {
  compareKeys,
  decode,
  encode,
  keyInRegion,
  compareEndKeys,
  describeRegionError,
  isStoreMessageType,
  StoreMessageType,
  type AdminRequest,
  type ClientRequest,
  type KvRead,
  type Peer as PeerMeta,
  type RaftMessage,
  type Region,
} from '@flotilla/proto';
import { LogBatch, type LogEngine } from '@flotilla/log-engine';
import type { Transport } from '@flotilla/transport';
import type { OperatorInstruction } from '@flotilla/placement';
import type { StoreConfig } from './config';
import type { ApplyState, PlacementApi, StateMachine } from './engines';
import { ApplyBatch, applyEntries, type ApplyContext, type ApplyEffect } from './operation/apply';
import { encodeCommand, err, type Callback, type CommandResult } from './operation/command';
import { Peer, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, confStateFromRegion, type SnapshotPayload } from './raft/peer';
import { StoreMetrics } from './metrics';
import { viewPeer, type PeerView } from './inspect';

/** StoreLogger is the pino-compatible subset the store logs through. */
export interface StoreLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: StoreLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface StoreDeps {
  storeId: number;
  config: StoreConfig;
  logEngine: LogEngine;
  sm: StateMachine;
  transport: Transport;
  placement: PlacementApi;
  logger?: StoreLogger;
  /** now is the wall clock in ms (injectable for tests). */
  now?: () => number;
  seed?: number;
}

/**
 * Store is the Multi-Raft host: it owns every Region peer on this node,
 * one log engine, one KV engine and one transport, and drives them all from
 * one poll loop. Work arrives as raft messages, client commands and ticks;
 * each marks a peer dirty and schedules a poll round that handles all dirty
 * peers together (one log write, one transport flush, one KV transaction).
 */
export class Store {
  readonly storeId: number;
  readonly config: StoreConfig;
  readonly peers = new Map<number, Peer>();
  readonly metrics = new StoreMetrics();
  private readonly log: LogEngine;
  private readonly sm: StateMachine;
  private readonly transport: Transport;
  private readonly pd: PlacementApi;
  private readonly logger: StoreLogger;
  private readonly raftLogger: RaftLogger;
  private readonly now: () => number;
  /** monoNow: a monotonic clock for the leader lease (wall-clock steps must not stretch a lease). */
  private readonly monoNow: () => number;
  private readonly random: () => number;
  private dirty = new Set<Peer>();
  private pollScheduled = false;
  private polling = false;
  private closed = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private timers: NodeJS.Timeout[] = [];
  private readCtxSeq = 0;
  /** pendingLogOps are log-engine changes produced by applies (compaction, new Regions) for the next write. */
  private pendingLog = new LogBatch();
  /** deferredLog holds commit-only hard-state changes waiting for the next durable write. */
  private deferredLog: LogBatch[] = [];
  private kvSyncNeeded = false;
  /** maxReplicas is placement's replica target (refreshed with store heartbeats). */
  private maxReplicas = 3;
  /**
   * tombstones maps a Region this store left to the ID of the peer it
   * destroyed. Peer IDs only grow, so a message to a larger ID is a re-add
   * (allowed to create a peer); one to that ID or smaller is stale.
   */
  private tombstones = new Map<number, number>();

  constructor(deps: StoreDeps) {
    this.storeId = deps.storeId;
    this.config = deps.config;
    this.log = deps.logEngine;
    this.sm = deps.sm;
    this.transport = deps.transport;
    this.pd = deps.placement;
    this.logger = deps.logger ?? silent;
    const l = this.logger;
    this.raftLogger = {
      debug: () => {},
      info: (msg, fields) => l.info({ ...fields }, msg),
      warn: (msg, fields) => l.warn({ ...fields }, msg),
      error: (msg, fields) => l.error({ ...fields }, msg),
      isDebugEnabled: () => false,
    };
    this.now = deps.now ?? Date.now;
    this.monoNow = deps.now ?? (() => performance.now());
    this.random = newSeededRandom(deps.seed ?? (deps.storeId * 7919 + (Date.now() & 0xffff)));
  }

  /** stateMachine exposes the KV engine read-only for status, tests and tools. */
  get stateMachine(): Pick<StateMachine, 'get' | 'scan' | 'applyState'> {
    return this.sm;
  }

  // ---------------------------------------------------------------- lifecycle

  /** recover recreates every Region peer from the KV engine's region states. */
  recover(): void {
    for (const { regionId, apply, local } of this.sm.loadRegions()) {
      if (local.state === 'tombstone') {
        this.tombstones.set(regionId, local.tombstonePeerId ?? Number.MAX_SAFE_INTEGER);
        continue;
      }
      const me = local.region.peers.find((p) => p.storeId === this.storeId);
      if (!me) continue;
      const applyState = apply ?? initialApplyState();
      this.ensureLogMatchesApply(regionId, applyState, local.confState);
      const peer = new Peer(local.region, me.id, applyState, local.confState, true);
      peer.mergeState = local.merge;
      this.startPeer(peer);
    }
    if (!this.pendingLog.isEmpty) this.flushPendingLog();
    this.logger.info({ regions: this.peers.size }, 'store recovered region peers');
  }

  /**
   * ensureLogMatchesApply repairs the one gap a crash can leave between the
   * two engines: the KV engine durably applied a snapshot or a split (its
   * apply state is ahead) but the log engine's matching write was lost.
   * The log then restarts at the applied index, as after a snapshot.
   */
  private ensureLogMatchesApply(regionId: number, apply: ApplyState, confState: import('@flotilla/raft-core').ConfState): void {
    const has = this.log.hasRegion(regionId);
    const last = has ? this.log.lastIndex(regionId) : 0;
    if (!has || last < apply.appliedIndex) {
      this.pendingLog.applySnapshotMeta(regionId, apply.appliedIndex, apply.appliedTerm, confState);
      const hs = has ? this.log.raftState(regionId).hardState : { term: 0, vote: 0, commit: 0 };
      this.pendingLog.setHardState(regionId, {
        term: Math.max(hs.term, apply.appliedTerm),
        vote: hs.term >= apply.appliedTerm ? hs.vote : 0,
        commit: apply.appliedIndex,
      });
    }
  }

  private flushPendingLog(): void {
    if (this.kvSyncNeeded) {
      this.sm.sync();
      this.kvSyncNeeded = false;
    }
    const b = this.pendingLog;
    this.pendingLog = new LogBatch();
    this.log.write(b);
    this.metrics.logWrites++;
  }

  /** createBootstrapRegion writes Region 1 (whole key space) with this store's single peer. */
  static bootstrapRegion(storeId: number, regionId: number, peerId: number): Region {
    return {
      id: regionId,
      startKey: new Uint8Array(0),
      endKey: new Uint8Array(0),
      epoch: { confVer: 1, version: 1 },
      peers: [{ id: peerId, storeId, role: 'voter' }],
    };
  }

  /** writeInitialRegion persists a new Region's states in both engines (bootstrap). */
  writeInitialRegion(region: Region): void {
    const conf = confStateFromRegion(region);
    const b = this.sm.newBatch();
    b.setRegionState(region.id, { region, state: 'normal', confState: conf });
    b.setApplyState(region.id, initialApplyState());
    this.sm.write(b);
    const lb = new LogBatch();
    lb.applySnapshotMeta(region.id, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, conf);
    lb.setHardState(region.id, { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX });
    this.log.write(lb);
  }

  /** removeInitialRegion undoes writeInitialRegion when another store won the bootstrap race. */
  removeInitialRegion(regionId: number): void {
    const b = this.sm.newBatch();
    const r = this.sm.loadRegions().find((x) => x.regionId === regionId);
    if (r) b.setRegionState(regionId, { ...r.local, state: 'tombstone' });
    this.sm.write(b);
    this.log.write(new LogBatch().removeRegion(regionId));
  }

  start(): void {
    this.transport.onMessages((msgs) => this.onRaftMessages(msgs));
    this.transport.onUnreachable((storeId) => this.onStoreUnreachable(storeId));
    this.transport.onSnapshot((header, chunks) => this.onSnapshot(header, chunks));
    this.tickTimer = setInterval(() => this.onTick(), this.config.tickIntervalMs);
    this.timers.push(setInterval(() => void this.storeHeartbeat(), this.config.storeHeartbeatIntervalMs));
    this.timers.push(setInterval(() => void this.regionHeartbeats(), this.config.regionHeartbeatIntervalMs));
    this.timers.push(setInterval(() => this.splitCheck(), this.config.splitCheckIntervalMs));
    this.timers.push(setInterval(() => this.raftLogGc(), this.config.raftLogGcIntervalMs));
    this.timers.push(setInterval(() => this.expireReads(), 1000));
    this.timers.push(setInterval(() => this.mergeTick(), 200));
    this.timers.push(setInterval(() => this.purgeLog(), 2000));
    void this.storeHeartbeat();
    // Single-voter Regions (a fresh bootstrap) elect themselves at once.
    for (const p of this.peers.values()) {
      if (p.region.peers.filter((x) => x.role === 'voter').length === 1 && p.meta().role === 'voter') p.raw.campaign();
      this.markDirty(p);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    for (const t of this.timers) clearInterval(t);
    for (const p of this.peers.values()) this.failPending(p, err.unavailable('store is shutting down'));
    const last = new LogBatch();
    for (const d of [...this.deferredLog, this.pendingLog]) last.ops.push(...d.ops);
    if (last.ops.length > 0) {
      if (this.kvSyncNeeded) this.sm.sync();
      this.log.write(last);
    }
  }

  // ---------------------------------------------------------------- peers

  private startPeer(peer: Peer): void {
    peer.start(this.config, this.log.storage(peer.regionId), this.sm, this.random, this.raftLogger);
    this.peers.set(peer.regionId, peer);
    this.metrics.regions = this.peers.size;
  }

  markDirty(peer: Peer): void {
    this.dirty.add(peer);
    this.schedulePoll();
  }

  wake(peer: Peer): void {
    if (peer.hibernating) {
      peer.hibernating = false;
      this.metrics.hibernated--;
      if (peer.isLeader) {
        // The followers were caught up and alive when the leader went quiet;
        // without this, the first check-quorum after waking would find no
        // recent activity and step down. Reads confirm leadership with a
        // heartbeat round anyway (the lease expired during the nap).
        for (const [, pr] of peer.raw.raft.prs.progress) pr.recentActive = true;
      }
    }
    peer.idleTicks = 0;
  }

  private schedulePoll(): void {
    if (this.pollScheduled || this.closed) return;
    this.pollScheduled = true;
    setImmediate(() => {
      this.pollScheduled = false;
      this.poll();
    });
  }

  private onTick(): void {
    if (this.closed) return;
    this.metrics.tickRounds++;
    for (const p of this.peers.values()) {
      if (p.hibernating) continue;
      p.raw.tick();
      p.ticks++;
      this.metrics.peerTicks++;
      // Ticks since the last word from a leader (reset when one arrives):
      // a follower or learner cut off for long asks placement if it is stale.
      // Learners never campaign, so "no known leader" alone would miss them.
      if (!p.isLeader) {
        const every = this.config.electionTicks * LEADER_MISSING_ELECTIONS;
        if (++p.leaderMissingTicks % every === 0) void this.checkStalePeer(p);
      } else {
        p.leaderMissingTicks = 0;
      }
      this.maybeHibernate(p);
      this.dirty.add(p);
    }
    this.schedulePoll();
  }

  /**
   * maybeHibernate stops ticking an idle Region (TiKV's hibernate Region).
   * The leader decides: once nothing is pending and every peer has its
   * whole log for hibernateAfterTicks ticks, it stops ticking (so sends no
   * heartbeats) and tells its followers with a MsgHibernate; a follower
   * whose log reaches the leader's last index stops ticking too, and one
   * that is behind keeps ticking and wakes the leader with a pre-vote.
   * Any proposal, read or non-heartbeat message wakes a peer; a leader's
   * store that goes unreachable (or that placement reports down) wakes the
   * followers, which then elect a new leader as usual.
   */
  private maybeHibernate(p: Peer): void {
    if (!this.config.hibernate || !p.isLeader || p.mergeState) return;
    if (p.proposals.length > 0 || p.reads.length > 0 || p.mailbox.length > 0) {
      p.idleTicks = 0;
      return;
    }
    const r = p.raw.raft;
    const last = r.raftLog.lastIndex();
    if (r.raftLog.committed !== last || p.apply.appliedIndex !== last || r.leadTransferee !== 0) {
      p.idleTicks = 0;
      return;
    }
    for (const [id, pr] of r.prs.progress) {
      if (id !== p.peerId && pr.match !== last) {
        p.idleTicks = 0;
        return;
      }
    }
    if (++p.idleTicks < this.config.hibernateAfterTicks) return;
    p.hibernating = true;
    p.hibernateNoticePending = true;
    this.metrics.hibernated++;
  }

  /**
   * sendHibernateNotices tells the followers the leader went quiet. It runs
   * after the round's Ready messages are queued, so the notice follows the
   * leader's last heartbeat instead of overtaking it.
   */
  private sendHibernateNotice(p: Peer): void {
    p.hibernateNoticePending = false;
    if (!p.hibernating || !p.isLeader) return;
    const r = p.raw.raft;
    const last = r.raftLog.lastIndex();
    for (const x of p.region.peers) {
      if (x.id === p.peerId) continue;
      this.sendRaft(p, newMessage(StoreMessageType.MsgHibernate as unknown as MessageType, { to: x.id, from: p.peerId, term: r.term, index: last }));
    }
  }

  /** onStoreMessage handles store-level messages (never stepped into raft). */
  private onStoreMessage(peer: Peer, m: RaftMessage): void {
    if ((m.message.msgType as number) !== StoreMessageType.MsgHibernate) return;
    const r = peer.raw.raft;
    if (peer.isLeader || peer.hibernating || m.fromPeer.id !== peer.leaderId || m.message.term !== r.term) return;
    if (r.raftLog.lastIndex() < m.message.index) return;
    peer.hibernating = true;
    this.metrics.hibernated++;
  }

  /** wakeRegionsLedFrom wakes hibernated followers whose leader lives on a store that looks dead. */
  private wakeRegionsLedFrom(storeIds: Set<number>): void {
    if (this.metrics.hibernated === 0 || storeIds.size === 0) return;
    for (const p of this.peers.values()) {
      if (!p.hibernating || p.isLeader) continue;
      const leader = p.leaderMeta();
      if (leader && storeIds.has(leader.storeId)) {
        this.wake(p);
        this.dirty.add(p);
      }
    }
  }

  // ---------------------------------------------------------------- inbound raft

  private onRaftMessages(msgs: RaftMessage[]): void {
    for (const m of msgs) this.routeRaftMessage(m, undefined);
    this.schedulePoll();
  }

  private routeRaftMessage(m: RaftMessage, snapshotData: Uint8Array | undefined): void {
    if (this.closed) return;
    if (m.toPeer.storeId !== this.storeId) {
      this.metrics.messagesDropped++;
      return;
    }
    let peer = this.peers.get(m.regionId);
    if (peer && peer.peerId !== m.toPeer.id) {
      if (m.toPeer.id > peer.peerId) {
        // A store holds at most one peer of a Region and peer IDs only grow:
        // a message to a larger ID means ours was removed (while we were away)
        // and the Region re-added this store. Ours is stale: replace it.
        this.logger.info({ regionId: m.regionId, stalePeer: peer.peerId, newPeer: m.toPeer.id }, 'replacing a stale peer');
        this.destroyPeer(peer, true);
        peer = undefined;
      } else {
        this.metrics.messagesDropped++;
        return;
      }
    }
    if (!peer) {
      peer = this.maybeCreatePeer(m);
      if (!peer) {
        this.metrics.messagesDropped++;
        return;
      }
    }
    if (isStoreMessageType(m.message.msgType)) {
      this.onStoreMessage(peer, m);
      return;
    }
    if (peer.mailbox.length >= this.config.mailboxCapacity) {
      this.metrics.messagesDropped++;
      return;
    }
    const t = m.message.msgType;
    // A quiet leader still hears the answers to its last heartbeats; they
    // must not wake it, or it would never stay asleep.
    if (peer.hibernating) {
      if (!(peer.isLeader && t === MessageType.MsgHeartbeatResponse)) this.wake(peer);
    } else if (t !== MessageType.MsgHeartbeat && t !== MessageType.MsgHeartbeatResponse) peer.idleTicks = 0;
    peer.lastHeard.set(m.fromPeer.id, this.now());
    if (m.fromPeer.id === peer.leaderId || t === MessageType.MsgApp || t === MessageType.MsgHeartbeat || t === MessageType.MsgSnapshot) peer.leaderMissingTicks = 0;
    if (snapshotData) peer.mailbox.push({ kind: 'snapshotData', msg: m.message, fromPeer: m.fromPeer, data: snapshotData });
    else peer.mailbox.push({ kind: 'raft', msg: m.message, fromPeer: m.fromPeer });
    this.metrics.messagesReceived++;
    this.dirty.add(peer);
  }

  /**
   * maybeCreatePeer creates an uninitialized peer for a Region this store
   * has not heard of, when the message is one that starts a peer's life
   * (a vote, a heartbeat from a new leader, an append or a snapshot) and no
   * initialized local Region overlaps the message's range.
   */
  private maybeCreatePeer(m: RaftMessage): Peer | undefined {
    if (m.isTombstone) return undefined;
    const gone = this.tombstones.get(m.regionId);
    if (gone !== undefined && m.toPeer.id <= gone) return undefined;
    const t = m.message.msgType;
    const initial =
      t === MessageType.MsgRequestVote ||
      t === MessageType.MsgRequestPreVote ||
      t === MessageType.MsgHeartbeat ||
      t === MessageType.MsgApp ||
      t === MessageType.MsgSnapshot;
    if (!initial) return undefined;
    for (const p of this.peers.values()) {
      if (!p.initialized) continue;
      if (rangesOverlap(p.region.startKey, p.region.endKey, m.startKey, m.endKey)) {
        // An older overlapping peer may be left over from a merge or removal
        // this store missed: ask placement about it now rather than later.
        if (p.region.epoch.version < m.regionEpoch.version) void this.checkStalePeer(p);
        return undefined;
      }
    }
    // Leftover raft state of an earlier peer of this Region (destroyed, or
    // skipped at recovery) must not seed the new one.
    if (this.log.hasRegion(m.regionId)) {
      this.pendingLog.removeRegion(m.regionId);
      this.flushPendingLog();
    }
    const region: Region = { id: m.regionId, startKey: m.startKey, endKey: m.endKey, epoch: { confVer: 0, version: 0 }, peers: [] };
    const peer = new Peer(region, m.toPeer.id, { appliedIndex: 0, appliedTerm: 0, truncatedIndex: 0, truncatedTerm: 0 }, emptyConf(), false);
    // Remember the sender so the first responses can be routed.
    peer.peerCache.set(m.fromPeer.id, m.fromPeer);
    peer.peerCache.set(m.toPeer.id, m.toPeer);
    this.startPeer(peer);
    this.logger.info({ regionId: m.regionId, peerId: m.toPeer.id }, 'created uninitialized peer');
    return peer;
  }

  private onStoreUnreachable(storeId: number): void {
    for (const p of this.peers.values()) {
      if (!p.isLeader) continue;
      for (const x of p.region.peers) if (x.storeId === storeId) p.raw.reportUnreachable(x.id);
    }
    this.wakeRegionsLedFrom(new Set([storeId]));
  }

  private async onSnapshot(header: RaftMessage, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for await (const c of chunks) {
      parts.push(c);
      total += c.length;
    }
    const data = Buffer.concat(parts, total);
    this.routeRaftMessage(header, data);
    this.schedulePoll();
  }

  // ---------------------------------------------------------------- poll round

  /**
   * poll is one round of the batch system: step every dirty peer's
   * mailbox, collect Readies, persist them with ONE log write, send all
   * messages with one flush, apply committed entries in ONE KV transaction,
   * then answer clients and advance.
   */
  poll(): void {
    if (this.closed || this.polling) return;
    this.polling = true;
    const started = this.now();
    try {
      const round: Peer[] = [];
      for (const p of this.dirty) {
        round.push(p);
        if (round.length >= this.config.maxPeersPerPoll) break;
      }
      for (const p of round) this.dirty.delete(p);
      this.metrics.pollRounds++;

      const logBatch = this.pendingLog;
      this.pendingLog = new LogBatch();
      for (const d of this.deferredLog) logBatch.ops.push(...d.ops);
      this.deferredLog = [];
      // Invariant: the raft log is never purged past what the KV engine has
      // durably applied. Applies are written without fsync, so a round that
      // carries log compactions makes the KV engine durable first.
      if (this.kvSyncNeeded) {
        this.sm.sync();
        this.kvSyncNeeded = false;
        this.metrics.kvSyncs++;
      }
      const readies: { peer: Peer; rd: Ready }[] = [];
      for (const peer of round) {
        this.drainMailbox(peer);
        if (this.peers.get(peer.regionId) !== peer) continue; // destroyed meanwhile
        if (!peer.raw.hasReady()) continue;
        const rd = peer.raw.ready();
        this.handleReadyBeforePersist(peer, rd, logBatch);
        readies.push({ peer, rd });
      }
      // Ready.messages may leave before this round's log write is durable
      // (a leader's MsgApp, heartbeats): flushing them now lets followers
      // append and fsync while the leader fsyncs, instead of after.
      this.transport.flush();
      // A round whose only change is commit indexes need not fsync (etcd's
      // mustSync): the commit index is recomputed after a crash. Such a
      // batch rides along with the next write that must be durable.
      if (!logBatch.isEmpty) {
        if (readies.some((r) => r.rd.mustSync) || logBatch.approximateBytes > 1024 * 1024) {
          const t0 = this.now();
          this.log.write(logBatch);
          this.metrics.logWrites++;
          this.metrics.observeWrite(this.now() - t0);
        } else {
          this.deferredLog.push(logBatch);
        }
      }
      const apply = new ApplyBatch(this.sm);
      const effects: ApplyEffect[] = [];
      const responses: { cb: Callback; result: CommandResult; at: number }[] = [];
      const ctx: ApplyContext = {
        batch: apply,
        effects,
        storeId: this.storeId,
        respond: (peer: Peer, index: number, term: number, result: CommandResult) => this.matchProposal(peer, index, term, result, responses),
        catchUpSource: (sourceId, commit, entries) => this.catchUpSource(sourceId, commit, entries, ctx),
        // A split-off Region already initialized here (from a newer snapshot) or
        // tombstoned (removed since) must keep its own state (TiKV does the same).
        splitRegionExists: (regionId) => this.peers.get(regionId)?.initialized === true || this.tombstones.has(regionId),
      };
      const needApplyAdvance: Peer[] = [];
      for (const { peer, rd } of readies) {
        for (const m of rd.persistedMessages) this.sendRaft(peer, m);
        const light = peer.raw.advance(rd);
        for (const m of light.messages) this.sendRaft(peer, m);
        const committed = rd.committedEntries.length > 0 || light.committedEntries.length > 0;
        if (!committed) continue;
        if (rd.committedEntries.length > 0) this.applyCommitted(peer, rd.committedEntries, ctx);
        if (light.committedEntries.length > 0) {
          this.applyCommitted(peer, light.committedEntries, ctx);
          needApplyAdvance.push(peer);
        }
      }
      if (!apply.batch.isEmpty) {
        const t0 = this.now();
        this.sm.write(apply.batch);
        this.metrics.kvWrites++;
        this.metrics.observeApply(this.now() - t0);
      }
      for (const p of needApplyAdvance) p.raw.advanceApply();
      for (const r of responses) r.cb(r.result);
      this.metrics.observeResponses(responses, this.now());
      for (const e of effects) this.afterApply(e);
      for (const p of round) if (p.hibernateNoticePending) this.sendHibernateNotice(p);
      for (const { peer } of readies) {
        this.serveReads(peer);
        // Anything left over (more committed entries, messages) is for the next round.
        if (peer.raw.hasReady() || peer.mailbox.length > 0) this.dirty.add(peer);
      }
      this.transport.flush();
    } finally {
      this.polling = false;
      this.metrics.observePoll(this.now() - started);
    }
    if (this.dirty.size > 0 || !this.pendingLog.isEmpty) {
      if (!this.pendingLog.isEmpty && this.dirty.size === 0) this.flushPendingLog();
      else this.schedulePoll();
    }
  }

  private drainMailbox(peer: Peer): void {
    const n = Math.min(peer.mailbox.length, this.config.maxMessagesPerPeerPerPoll);
    if (n === 0) return;
    const items = peer.mailbox.splice(0, n);
    for (const item of items) {
      if (item.kind === 'snapshotData') {
        item.msg.snapshot = item.msg.snapshot ? { ...item.msg.snapshot, data: item.data } : undefined;
      }
      if (!peer.peerById(item.fromPeer.id)) peer.peerCache.set(item.fromPeer.id, item.fromPeer);
      try {
        peer.raw.step(item.msg);
      } catch (e) {
        // Responses from peers not in the configuration, etc.: expected and harmless.
        this.logger.debug({ regionId: peer.regionId, err: (e as Error).message }, 'dropped raft message');
      }
    }
    if (peer.mailbox.length > 0) this.dirty.add(peer);
  }

  private handleReadyBeforePersist(peer: Peer, rd: Ready, logBatch: LogBatch): void {
    if (rd.softState) {
      const wasLeader = peer.isLeader;
      peer.leaderId = rd.softState.leaderId;
      peer.isLeader = rd.softState.raftState === StateRole.Leader;
      if (wasLeader && !peer.isLeader) this.failPending(peer, err.notLeader(peer.regionId, peer.leaderMeta()));
      if (!wasLeader && peer.isLeader) {
        peer.splitCheckDirty = true;
        this.logger.info({ regionId: peer.regionId, peerId: peer.peerId, term: peer.raw.raft.term }, 'became leader');
        void this.regionHeartbeat(peer);
      }
      this.metrics.leaders = countLeaders(this.peers);
    }
    if (rd.snapshot && rd.snapshot.metadata.index > 0) this.applySnapshot(peer, rd, logBatch);
    if (rd.entries.length > 0) logBatch.append(peer.regionId, rd.entries);
    if (rd.hardState) {
      logBatch.setHardState(peer.regionId, rd.hardState);
      const commit = rd.hardState.commit;
      if (commit > peer.commitSeen) {
        if (peer.isLeader && peer.commitSeen > 0) this.metrics.entriesCommitted += commit - peer.commitSeen;
        peer.commitSeen = commit;
      }
    }
    for (const m of rd.messages) this.sendRaft(peer, m);
    if (rd.readStates.length > 0) {
      for (const rs of rd.readStates) {
        const ctx = Buffer.from(rs.requestCtx).toString('hex');
        for (const w of peer.reads) {
          if (w.ctx !== ctx || w.index !== 0) continue;
          w.index = rs.index;
          this.renewLease(peer, w.issuedAtMs);
        }
      }
    }
  }

  /**
   * applySnapshot installs a received snapshot: the KV engine ingests the
   * Region's range and states first (durable), then the log engine's raft
   * state moves to the snapshot's index in this round's log write. A crash
   * between the two is repaired at recovery (ensureLogMatchesApply).
   */
  private applySnapshot(peer: Peer, rd: Ready, logBatch: LogBatch): void {
    const snap = rd.snapshot!;
    let payload: SnapshotPayload;
    try {
      payload = decode(snap.data) as SnapshotPayload;
    } catch (e) {
      throw new Error(`region ${peer.regionId}: undecodable snapshot at index ${snap.metadata.index}: ${(e as Error).message}`);
    }
    const { index, term, confState } = snap.metadata;
    const region = payload.region;
    const apply: ApplyState = { appliedIndex: index, appliedTerm: term, truncatedIndex: index, truncatedTerm: term };
    peer.mergeState = payload.merge ?? undefined;
    peer.region = region;
    peer.confState = confState;
    this.sm.ingestSnapshot(peer.regionId, region.startKey, region.endKey, payload.pairs, apply, { ...peer.localState(), region, confState });
    peer.apply = apply;
    peer.initialized = true;
    logBatch.applySnapshotMeta(peer.regionId, index, term, confState);
    this.metrics.snapshotsApplied++;
    this.logger.info({ regionId: peer.regionId, index, term, keys: payload.pairs.length }, 'applied snapshot');
  }

  private sendRaft(peer: Peer, m: Message): void {
    const to = peer.peerById(m.to);
    if (!to) {
      this.metrics.messagesDropped++;
      return;
    }
    const env: RaftMessage = {
      regionId: peer.regionId,
      fromPeer: peer.meta(),
      toPeer: to,
      regionEpoch: peer.region.epoch,
      message: m,
      startKey: peer.region.startKey,
      endKey: peer.region.endKey,
      isTombstone: false,
    };
    if (env.fromPeer.storeId === 0) env.fromPeer = { ...env.fromPeer, storeId: this.storeId };
    if (m.msgType === MessageType.MsgSnapshot && m.snapshot) {
      this.sendSnapshot(peer, to, env);
      return;
    }
    this.transport.send(to.storeId, env);
    this.metrics.messagesSent++;
  }

  /** sendSnapshot streams the snapshot's data on the snapshot channel and reports the outcome to raft. */
  private sendSnapshot(peer: Peer, to: PeerMeta, env: RaftMessage): void {
    const snap = env.message.snapshot!;
    const data = snap.data;
    const header: RaftMessage = { ...env, message: { ...env.message, snapshot: { ...snap, data: new Uint8Array(0) } } };
    const chunks: Uint8Array[] = [];
    const CHUNK = 1024 * 1024;
    for (let off = 0; off < data.length; off += CHUNK) chunks.push(data.subarray(off, Math.min(data.length, off + CHUNK)));
    if (chunks.length === 0) chunks.push(new Uint8Array(0));
    this.metrics.snapshotsSent++;
    this.transport.sendSnapshot(to.storeId, header, chunks).then(
      () => {
        const p = this.peers.get(peer.regionId);
        if (p === peer) {
          p.raw.reportSnapshot(to.id, 'finish');
          this.markDirty(p);
        }
      },
      (e: Error) => {
        this.logger.warn({ regionId: peer.regionId, to: to.id, err: e.message }, 'snapshot send failed');
        const p = this.peers.get(peer.regionId);
        if (p === peer) {
          p.raw.reportSnapshot(to.id, 'failure');
          this.markDirty(p);
        }
      },
    );
  }

  private applyCommitted(peer: Peer, entries: Entry[], ctx: Parameters<typeof applyEntries>[2]): void {
    if (!peer.initialized) return;
    applyEntries(peer, entries, ctx);
    peer.splitCheckDirty = true;
    this.metrics.entriesApplied += entries.length;
  }

  private matchProposal(peer: Peer, index: number, term: number, result: CommandResult, out: { cb: Callback; result: CommandResult; at: number }[]): void {
    const q = peer.proposals;
    while (q.length > 0) {
      const head = q[0]!;
      if (head.index > index) return;
      q.shift();
      if (head.index === index && head.term === term) {
        out.push({ cb: head.cb, result, at: head.proposedAtMs });
        return;
      }
      // The entry at head.index was replaced by another leader's entry.
      out.push({ cb: head.cb, result: err.stale(), at: head.proposedAtMs });
    }
  }

  private afterApply(e: ApplyEffect): void {
    // A membership change, split or merge changes who may elect a leader or
    // which keys the Region holds: the next read confirms leadership anew.
    if (e.type === 'split') this.expireLease(e.parent);
    else if (e.type === 'commitMerge') this.expireLease(e.target);
    else if (e.type !== 'compact') this.expireLease(e.peer);
    switch (e.type) {
      case 'compact':
        this.pendingLog.compact(e.peer.regionId, e.index, e.term);
        this.kvSyncNeeded = true;
        break;
      case 'confChange': {
        const p = e.peer;
        if (e.removedSelf) {
          this.logger.info({ regionId: p.regionId, peerId: p.peerId }, 'peer removed from region; destroying');
          this.destroyPeer(p, true);
          return;
        }
        this.logger.info(
          { regionId: p.regionId, added: e.added.map((x) => x.id), removed: e.removed.map((x) => x.id), confVer: p.region.epoch.confVer },
          'applied conf change',
        );
        if (p.isLeader) void this.regionHeartbeat(p);
        break;
      }
      case 'split':
        this.onSplitApplied(e.parent, e.regions, e.wasLeader);
        break;
      case 'prepareMerge':
        this.logger.info({ regionId: e.peer.regionId, target: e.peer.mergeState?.target.id, commit: e.peer.mergeState?.commit }, 'merge prepared');
        if (e.peer.isLeader) {
          e.peer.mergeStartedMs = this.now();
          this.tryCommitMerge(e.peer);
        }
        break;
      case 'commitMerge': {
        const src = this.peers.get(e.sourceId);
        if (src) {
          const waiters = src.mergeWaiters;
          src.mergeWaiters = [];
          for (const w of waiters) w({ ok: true, regions: [e.target.region] });
          this.destroyPeer(src, false);
        }
        this.logger.info({ regionId: e.target.regionId, source: e.sourceId, version: e.target.region.epoch.version }, 'merge committed');
        if (e.target.isLeader) void this.regionHeartbeat(e.target);
        break;
      }
      case 'rollbackMerge': {
        const waiters = e.peer.mergeWaiters;
        e.peer.mergeWaiters = [];
        e.peer.commitMergeInFlight = false;
        for (const w of waiters) w(err.epochNotMatch([e.peer.region]));
        this.logger.info({ regionId: e.peer.regionId }, 'merge rolled back');
        if (e.peer.isLeader) void this.regionHeartbeat(e.peer);
        break;
      }
    }
  }

  /**
   * catchUpSource is CatchUpLogs (docs/merge.md): before the target absorbs
   * the source, the local source replica applies everything up to the
   * source's PrepareMerge — from its own log where it has the entries, from
   * the entries CommitMerge carries otherwise — in the same KV transaction.
   */
  private catchUpSource(sourceId: number, commit: number, carried: Uint8Array[], ctx: ApplyContext): boolean {
    const src = this.peers.get(sourceId);
    if (!src) return this.tombstones.has(sourceId) ? true : this.sourceNeverHere(sourceId);
    assert(src.initialized, `merge: source region ${sourceId} is not initialized on store ${this.storeId}`);
    if (src.apply.appliedIndex >= commit) return true;
    const entries: Entry[] = [];
    let next = src.apply.appliedIndex + 1;
    try {
      const own = this.log.entries(sourceId, next, Math.min(this.log.lastIndex(sourceId), commit) + 1);
      for (const e of own) entries.push(e);
      next += own.length;
    } catch {
      // compacted or missing locally: the carried entries must cover it
    }
    for (const b of carried) {
      const e = decode(b) as Entry;
      if (e.index === next && e.index <= commit) {
        entries.push(e);
        next++;
      }
    }
    assert(next > commit, `merge: source region ${sourceId} cannot catch up to ${commit} (reached ${next - 1})`);
    applyEntries(src, entries, ctx);
    return true;
  }

  private sourceNeverHere(sourceId: number): boolean {
    // Placement only merges Regions whose peers share stores; a store
    // without the source peer cannot hold the source's data.
    this.logger.error({ sourceId }, 'merge: source region was never on this store');
    return false;
  }

  private onSplitApplied(parent: Peer, regions: Region[], wasLeader: boolean): void {
    parent.splitInFlightVersion = 0;
    for (const r of regions.slice(1)) {
      const me = r.peers.find((p) => p.storeId === this.storeId);
      if (!me) continue;
      const existing = this.peers.get(r.id);
      if (existing) {
        if (existing.initialized) continue;
        this.destroyPeer(existing, false);
      }
      const conf = confStateFromRegion(r);
      this.pendingLog.applySnapshotMeta(r.id, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, conf);
      this.pendingLog.setHardState(r.id, { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX });
      this.flushPendingLog();
      const peer = new Peer(r, me.id, initialApplyState(), conf, true);
      this.startPeer(peer);
      if (wasLeader) peer.raw.campaign();
      this.markDirty(peer);
    }
    this.logger.info({ regionId: parent.regionId, regions: regions.map((r) => r.id) }, 'split applied');
    if (wasLeader) {
      void this.pd.reportBatchSplit(regions).catch((e: Error) => this.logger.warn({ err: e.message }, 'reportBatchSplit failed'));
      void this.regionHeartbeat(parent);
    }
  }

  /** destroyPeer removes a peer; with cleanData its range's keys go too (it left the Region). */
  private destroyPeer(peer: Peer, cleanData: boolean): void {
    this.failPending(peer, err.regionNotFound(peer.regionId));
    this.peers.delete(peer.regionId);
    this.dirty.delete(peer);
    this.metrics.regions = this.peers.size;
    if (peer.hibernating) this.metrics.hibernated--;
    if (peer.initialized) {
      const b = this.sm.newBatch();
      if (cleanData) {
        let overlapped = false;
        for (const p of this.peers.values()) if (p.initialized && rangesOverlap(p.region.startKey, p.region.endKey, peer.region.startKey, peer.region.endKey)) overlapped = true;
        if (!overlapped) b.deleteRange(peer.region.startKey, peer.region.endKey);
      }
      b.setRegionState(peer.regionId, { region: peer.region, state: 'tombstone', confState: peer.confState, tombstonePeerId: peer.peerId });
      this.sm.write(b);
    }
    this.tombstones.set(peer.regionId, Math.max(peer.peerId, this.tombstones.get(peer.regionId) ?? 0));
    // Written at once: a new peer of the same Region (a re-add) must not
    // start from the old peer's raft state. Log changes queued for it earlier
    // in this round (a compaction applied just before its own removal) go:
    // they would name a log that no longer exists.
    const id = peer.regionId;
    for (const b of [this.pendingLog, ...this.deferredLog]) {
      const keep = b.ops.filter((op) => op.regionId !== id);
      if (keep.length !== b.ops.length) b.ops.splice(0, b.ops.length, ...keep);
    }
    this.pendingLog.removeRegion(id);
    this.flushPendingLog();
  }

  /**
   * failPending answers everything waiting on a peer that can no longer
   * follow it. Proposals are already in the Raft log and may still commit
   * under another leader, so they get Undetermined (a client must not send
   * a write again); reads get `result` (NotLeader and the like: safe to retry).
   */
  private failPending(peer: Peer, result: CommandResult): void {
    const props = peer.proposals;
    peer.proposals = [];
    const why = result.ok ? 'lost track of the proposal' : describeRegionError(result.error);
    for (const p of props) p.cb(err.undetermined(peer.regionId, why));
    const reads = peer.reads;
    peer.reads = [];
    for (const r of reads) r.fail(peer.leaderMeta());
  }

  // ---------------------------------------------------------------- client API

  /** handleClientRequest validates, routes and starts one client request. */
  handleClientRequest(req: ClientRequest, cb: Callback): void {
    if (this.closed) return cb(err.unavailable('store is shutting down'));
    const peer = this.peers.get(req.header.regionId);
    if (!peer || !peer.initialized) return cb(err.regionNotFound(req.header.regionId));
    this.wake(peer);
    if (!peer.isLeader) return cb(err.notLeader(peer.regionId, peer.leaderMeta()));
    // A Region being merged away serves nothing: its range is about to belong to the target.
    if (peer.mergeState) return cb(err.epochNotMatch(this.currentRegionsFor(peer)));
    const epoch = peer.region.epoch;
    if (req.op !== 'admin' && req.header.regionEpoch.version !== epoch.version) return cb(err.epochNotMatch(this.currentRegionsFor(peer)));
    switch (req.op) {
      case 'read':
        return this.startRead(peer, req.read, cb);
      case 'write': {
        for (const w of req.writes) {
          if (w.type !== 'deleteRange' && !keyInRegion(w.key, peer.region)) return cb(err.keyNotInRegion(w.key, peer.region));
        }
        return this.propose(peer, encodeCommand({ header: req.header, writes: req.writes }), cb);
      }
      case 'admin':
        return this.startAdmin(peer, req.header, req.admin, cb);
      case 'split':
        return void this.startSplit(peer, req.splitKeys, cb);
      case 'merge':
        return this.startMerge(peer, req.targetRegionId, cb);
    }
  }

  /**
   * checkStalePeer asks placement whether a peer that has had no leader for
   * a long time (or that blocks a newer overlapping Region) still belongs to
   * its Region, and destroys it if not: the Region was merged away, or a
   * newer membership no longer lists this peer (TiKV's stale peer check).
   */
  async checkStalePeer(p: Peer): Promise<void> {
    if (p.staleCheckInFlight || this.closed) return;
    p.staleCheckInFlight = true;
    try {
      const info = await this.pd.getRegionById(p.regionId);
      if (this.peers.get(p.regionId) !== p) return;
      let stale = false;
      let why = '';
      if (!info) {
        // Placement replaces a Region only with a newer one covering its range (merge).
        const cover = await this.pd.getRegion(p.region.startKey).catch(() => null);
        stale = cover !== null && cover.region.id !== p.regionId && cover.region.epoch.version > p.region.epoch.version;
        // If the merge target has a peer here, that peer's CommitMerge catches
        // this source up and destroys it; destroying it first would lose the
        // source's data from the merged Region on this store. The local target
        // may carry another ID than placement's current covering Region (it
        // may have split since), so any initialized local neighbour counts.
        if (stale && (await this.mayBeAbsorbedLocally(p))) stale = false;
        why = 'region merged away';
        if (stale && this.peers.get(p.regionId) === p) {
          // Keep the keys: the range now belongs to the merged Region, whose
          // peer here (when it comes) starts from a snapshot of it.
          this.logger.info({ regionId: p.regionId, peerId: p.peerId, why }, 'destroying stale peer');
          this.destroyPeer(p, false);
          return;
        }
      } else if (!info.region.peers.some((x) => x.id === p.peerId)) {
        stale = info.region.epoch.confVer > p.region.epoch.confVer || !p.initialized;
        why = 'peer no longer in region';
      }
      if (stale && this.peers.get(p.regionId) === p) {
        this.logger.info({ regionId: p.regionId, peerId: p.peerId, why }, 'destroying stale peer');
        this.destroyPeer(p, true);
      }
    } catch (e) {
      this.logger.debug({ regionId: p.regionId, err: (e as Error).message }, 'stale peer check failed');
    } finally {
      p.staleCheckInFlight = false;
    }
  }

  /**
   * mayBeAbsorbedLocally: some initialized local peer touching or overlapping
   * p's range is behind placement's view of its own Region (its epoch
   * version is older), so it may still apply the CommitMerge that absorbs p.
   * A neighbour that is up to date with placement will not.
   */
  private async mayBeAbsorbedLocally(p: Peer): Promise<boolean> {
    const r = p.region;
    for (const q of [...this.peers.values()]) {
      if (q === p || !q.initialized) continue;
      const touches =
        (r.endKey.length > 0 && compareKeys(q.region.startKey, r.endKey) === 0) ||
        (q.region.endKey.length > 0 && compareKeys(q.region.endKey, r.startKey) === 0);
      if (!touches && !rangesOverlap(q.region.startKey, q.region.endKey, r.startKey, r.endKey)) continue;
      const info = await this.pd.getRegionById(q.regionId);
      if (!info || info.region.epoch.version > q.region.epoch.version) return true;
    }
    return false;
  }

  /**
   * startMerge proposes PrepareMerge on the source Region (docs/merge.md).
   * The callback is answered when the merge commits (or rolls back).
   */
  startMerge(src: Peer, targetRegionId: number, cb: Callback): void {
    const tgt = this.peers.get(targetRegionId);
    if (!tgt || !tgt.initialized) return cb(err.invalid(`target region ${targetRegionId} has no peer on this store; move peers first`));
    if (tgt.mergeState) return cb(err.invalid(`target region ${targetRegionId} is itself merging`));
    const a = src.region;
    const b = tgt.region;
    const adjacent = (a.endKey.length > 0 && compareKeys(a.endKey, b.startKey) === 0) || (b.endKey.length > 0 && compareKeys(b.endKey, a.startKey) === 0);
    if (!adjacent) return cb(err.invalid(`regions ${a.id} and ${b.id} are not adjacent`));
    const storesA = a.peers.map((p) => p.storeId).sort().join(',');
    const storesB = b.peers.map((p) => p.storeId).sort().join(',');
    if (storesA !== storesB) return cb(err.invalid(`regions ${a.id} and ${b.id} must have voters on the same stores (${storesA} vs ${storesB})`));
    // A learner is a replica still being added (placement's replica checker
    // promotes it shortly): wait for it rather than refuse the merge.
    if (a.peers.some((p) => p.role !== 'voter') || b.peers.some((p) => p.role !== 'voter')) {
      return cb(err.busy(`regions ${a.id} and ${b.id} still have a learner being added; retry when it is a voter`, 200));
    }
    const r = src.raw.raft;
    let minIndex = r.raftLog.lastIndex();
    for (const [, pr] of r.prs.progress) if (pr.match < minIndex) minIndex = pr.match;
    if (minIndex < src.apply.truncatedIndex) return cb(err.busy('a source replica is too far behind to merge; retry later', 1000));
    src.mergeWaiters.push(cb);
    const admin: AdminRequest = { type: 'prepareMerge', target: b, minIndex };
    this.propose(src, encodeCommand({ header: { regionId: a.id, regionEpoch: a.epoch }, writes: [], admin }), (res) => {
      if (!res.ok) {
        src.mergeWaiters = src.mergeWaiters.filter((w) => w !== cb);
        cb(res);
      }
    });
  }

  /**
   * tryCommitMerge drives a prepared merge from the source leader: make the
   * local target peer the target's leader, then propose CommitMerge there.
   * Rollback happens only once the target's epoch has moved past the one
   * the merge was prepared against: from then on no CommitMerge for this
   * merge can apply on any target replica, so rolling back cannot race a
   * late commit. (A timeout alone never rolls back; see docs/merge.md.)
   */
  private tryCommitMerge(src: Peer): void {
    const ms = src.mergeState;
    if (!ms || !src.isLeader || src.commitMergeInFlight || this.peers.get(src.regionId) !== src) return;
    const tgt = this.peers.get(ms.target.id);
    if (!tgt || !tgt.initialized) {
      // The target peer is gone from this store (e.g. the target itself was
      // merged away or moved). Placement knows whether the target still has
      // the prepared epoch; if not, no CommitMerge can ever apply: roll back.
      if (this.now() - src.mergeStartedMs > 2_000) void this.checkMergeTargetGone(src);
      return;
    }
    const te = tgt.region.epoch;
    if (te.version !== ms.target.epoch.version || te.confVer !== ms.target.epoch.confVer) {
      this.proposeRollbackMerge(src);
      return;
    }
    if (!tgt.isLeader) {
      tgt.raw.transferLeader(tgt.peerId);
      this.wake(tgt);
      this.markDirty(tgt);
      return;
    }
    let carried: Uint8Array[];
    try {
      carried = this.log.entries(src.regionId, ms.minIndex + 1, ms.commit + 1).map((e) => encode(e));
    } catch (e) {
      this.logger.error({ regionId: src.regionId, err: (e as Error).message }, 'merge: source entries unavailable');
      return;
    }
    src.commitMergeInFlight = true;
    const admin: AdminRequest = { type: 'commitMerge', source: src.region, commit: ms.commit, entries: carried };
    this.propose(tgt, encodeCommand({ header: { regionId: tgt.regionId, regionEpoch: ms.target.epoch }, writes: [], admin }), (res) => {
      src.commitMergeInFlight = false;
      if (!res.ok) this.logger.info({ regionId: src.regionId, err: res.error.type }, 'commit merge not applied; will retry');
    });
  }

  private async checkMergeTargetGone(src: Peer): Promise<void> {
    const ms = src.mergeState;
    if (!ms || src.staleCheckInFlight) return;
    src.staleCheckInFlight = true;
    try {
      const info = await this.pd.getRegionById(ms.target.id);
      const e = info?.region.epoch;
      // Only a strictly newer target epoch (or a target placement replaced
      // with a newer Region) proves no CommitMerge for this merge can apply;
      // an older placement view proves nothing.
      const moved = !info || e!.version > ms.target.epoch.version || e!.confVer > ms.target.epoch.confVer;
      if (moved && src.mergeState === ms && src.isLeader && !this.peers.get(ms.target.id)) {
        this.logger.warn({ regionId: src.regionId, target: ms.target.id }, 'merge target gone or changed (placement); rolling back');
        this.proposeRollbackMerge(src);
      }
    } catch (e) {
      this.logger.debug({ regionId: src.regionId, err: (e as Error).message }, 'merge target check failed');
    } finally {
      src.staleCheckInFlight = false;
    }
  }

  private proposeRollbackMerge(src: Peer): void {
    const ms = src.mergeState!;
    if (src.commitMergeInFlight) return;
    src.commitMergeInFlight = true;
    this.logger.info({ regionId: src.regionId, target: ms.target.id }, 'target epoch changed; rolling back merge');
    const admin: AdminRequest = { type: 'rollbackMerge', commit: ms.commit };
    this.propose(src, encodeCommand({ header: { regionId: src.regionId, regionEpoch: src.region.epoch }, writes: [], admin }), (res) => {
      if (!res.ok) src.commitMergeInFlight = false;
    });
  }

  private mergeTick(): void {
    if (this.closed) return;
    for (const p of this.peers.values()) {
      if (!p.mergeState || !p.isLeader) continue;
      if (p.mergeStartedMs === 0) p.mergeStartedMs = this.now();
      this.tryCommitMerge(p);
    }
  }

  private currentRegionsFor(peer: Peer): Region[] {
    return [peer.region];
  }

  private propose(peer: Peer, data: Uint8Array, cb: Callback): void {
    if (peer.proposals.length >= this.config.maxPendingProposalsPerPeer) return cb(err.busy('too many pending proposals for this region'));
    this.wake(peer);
    const r = peer.raw.raft;
    try {
      peer.raw.propose(data);
    } catch (e) {
      if (e instanceof ProposalDroppedError) return cb(peer.isLeader ? err.busy(e.message) : err.notLeader(peer.regionId, peer.leaderMeta()));
      throw e;
    }
    peer.addProposal(r.raftLog.lastIndex(), r.term, cb, this.now());
    this.metrics.proposals++;
    this.markDirty(peer);
  }

  /**
   * startRead serves a linearizable read. By default (readOnly 'safe') raft
   * confirms leadership with a heartbeat round (ReadIndex) and the read is
   * served once apply reaches the returned index. With 'lease-based' reads
   * the leader skips that round while its lease is valid and reads at its
   * commit index.
   *
   * The lease is the store's, in a monotonic clock, not raft's: a round
   * that a quorum confirmed, asked for at time t, proves that no other
   * leader can be elected before t + election timeout (each follower that
   * answered heard from this leader after t and, with check-quorum, refuses
   * votes for an election timeout after that). The lease runs to t +
   * election timeout × (1 − LEASE_DRIFT_MARGIN). Counting it in raft ticks
   * instead (raft-core's own lease mode) is unsafe: a stalled process does
   * not tick, and wakes up trusting a lease that expired long ago
   * (packages/sim/STORE_BUGS.md #6). The lease ends early on a new term, a
   * leader transfer, a membership change, a split or a merge.
   */
  private startRead(peer: Peer, read: KvRead, cb: Callback): void {
    const keys = read.type === 'get' ? [read.key] : read.type === 'batchGet' ? read.keys : [];
    for (const k of keys) if (!keyInRegion(k, peer.region)) return cb(err.keyNotInRegion(k, peer.region));
    const ctxBytes = new Uint8Array(8);
    new DataView(ctxBytes.buffer).setFloat64(0, ++this.readCtxSeq);
    const ctx = Buffer.from(ctxBytes).toString('hex');
    const version = peer.region.epoch.version;
    const leaseIndex = this.leaseReadIndex(peer);
    peer.reads.push({
      ctx,
      index: leaseIndex,
      startedTick: peer.ticks,
      issuedAtMs: this.monoNow(),
      serve: () => {
        if (peer.region.epoch.version !== version) return cb(err.epochNotMatch([peer.region]));
        cb(this.execRead(peer, read));
      },
      fail: (leader) => cb(err.notLeader(peer.regionId, leader)),
    });
    this.metrics.reads++;
    if (leaseIndex > 0) {
      this.metrics.leaseReads++;
      this.serveReads(peer);
      if (peer.reads.length > 0) this.markDirty(peer);
      return;
    }
    peer.raw.readIndex(ctxBytes);
    this.markDirty(peer);
  }

  /** leaseReadIndex returns the commit index to read at when lease-based reads are on and the lease holds, else 0. */
  private leaseReadIndex(peer: Peer): number {
    if (this.config.readOnly !== 'lease-based' || !peer.isLeader) return 0;
    const r = peer.raw.raft;
    if (peer.leaseTerm !== r.term || r.leadTransferee !== 0 || this.monoNow() >= peer.leaseUntilMs) return 0;
    return r.raftLog.committed;
  }

  /** renewLease extends a leader's lease after a quorum confirmed a read round asked for at issuedAtMs. */
  private renewLease(peer: Peer, issuedAtMs: number): void {
    if (this.config.readOnly !== 'lease-based' || !peer.isLeader) return;
    const r = peer.raw.raft;
    if (r.leadTransferee !== 0) return;
    const until = issuedAtMs + this.config.electionTicks * this.config.tickIntervalMs * (1 - LEASE_DRIFT_MARGIN);
    if (peer.leaseTerm !== r.term) {
      peer.leaseTerm = r.term;
      peer.leaseUntilMs = until;
    } else if (until > peer.leaseUntilMs) peer.leaseUntilMs = until;
  }

  private expireLease(peer: Peer): void {
    peer.leaseUntilMs = 0;
  }

  private execRead(peer: Peer, read: KvRead): CommandResult {
    switch (read.type) {
      case 'get':
        return { ok: true, value: this.sm.get(read.key) ?? null };
      case 'batchGet':
        return { ok: true, values: read.keys.map((k) => this.sm.get(k) ?? null) };
      case 'scan': {
        const r = peer.region;
        const start = compareKeys(read.startKey, r.startKey) < 0 ? r.startKey : read.startKey;
        const end = compareEndKeys(read.endKey, r.endKey) <= 0 ? read.endKey : r.endKey;
        if (end.length > 0 && compareKeys(start, end) >= 0) return { ok: true, pairs: [] };
        return { ok: true, pairs: this.sm.scan(start, end, read.limit) };
      }
    }
  }

  /** serveReads answers every read whose index the apply has reached. */
  private serveReads(peer: Peer): void {
    if (peer.reads.length === 0) return;
    const applied = peer.apply.appliedIndex;
    const keep = [];
    for (const w of peer.reads) {
      if (w.index !== 0 && w.index <= applied) w.serve();
      else keep.push(w);
    }
    peer.reads = keep;
  }

  private expireReads(): void {
    for (const p of this.peers.values()) {
      if (p.reads.length === 0) continue;
      const keep = [];
      for (const w of p.reads) {
        if (p.ticks - w.startedTick > this.config.electionTicks * 2) w.fail(p.leaderMeta());
        else keep.push(w);
      }
      p.reads = keep;
    }
  }

  private startAdmin(peer: Peer, header: ClientRequest['header'], admin: AdminRequest, cb: Callback): void {
    switch (admin.type) {
      case 'transferLeader':
        this.expireLease(peer);
        peer.raw.transferLeader(admin.peer.id);
        this.markDirty(peer);
        return cb({ ok: true });
      case 'changePeer':
      case 'changePeerV2': {
        if (header.regionEpoch.confVer !== peer.region.epoch.confVer) return cb(err.epochNotMatch([peer.region]));
        const changes = admin.type === 'changePeer' ? [{ changeType: admin.changeType, peer: admin.peer }] : admin.changes;
        const bad = checkConfChange(peer.region, changes);
        if (bad) return cb(err.invalid(bad));
        const cc: ConfChangeV2 = { transition: 0, changes: changes.map((c) => ({ changeType: c.changeType, nodeId: c.peer.id })) };
        const ctx = encodeCommand({ header, writes: [], admin });
        for (const c of changes) if (!peer.peerById(c.peer.id)) peer.peerCache.set(c.peer.id, c.peer);
        return this.proposeConfChange(peer, cc, ctx, cb);
      }
      case 'compactLog':
      case 'batchSplit':
        return this.propose(peer, encodeCommand({ header, writes: [], admin }), cb);
      case 'prepareMerge':
        // Raw PrepareMerge (tools and tests); the 'merge' op computes minIndex and checks placement rules.
        return this.propose(peer, encodeCommand({ header, writes: [], admin }), cb);
      default:
        return cb(err.invalid(`admin command ${admin.type} is not supported yet`));
    }
  }

  private proposeConfChange(peer: Peer, cc: ConfChangeV2, ctx: Uint8Array, cb: Callback): void {
    const r = peer.raw.raft;
    this.wake(peer);
    try {
      peer.raw.proposeConfChange(cc, ctx);
    } catch (e) {
      if (e instanceof ProposalDroppedError) return cb(err.busy(e.message));
      throw e;
    }
    peer.addProposal(r.raftLog.lastIndex(), r.term, cb, this.now());
    this.markDirty(peer);
  }

  /** startSplit asks placement for IDs and proposes a BatchSplit at the given keys. */
  async startSplit(peer: Peer, splitKeys: Uint8Array[], cb: Callback): Promise<void> {
    // A key that is already this Region's start key is already a boundary:
    // splitting there is a no-op, so a repeated split (or one whose answer
    // was lost) succeeds instead of sending the client around the retry loop.
    const keys = [...splitKeys]
      .sort(compareKeys)
      .filter((k, i, a) => (i === 0 || compareKeys(a[i - 1]!, k) !== 0) && compareKeys(k, peer.region.startKey) !== 0);
    for (const k of keys) {
      if (!keyInRegion(k, peer.region)) return cb(err.keyNotInRegion(k, peer.region));
    }
    if (keys.length === 0) return cb({ ok: true, regions: [peer.region] });
    const region = peer.region;
    let ids;
    try {
      ids = await this.pd.askBatchSplit(region, keys.length);
    } catch (e) {
      return cb(err.unavailable(`placement: ${(e as Error).message}`));
    }
    if (this.peers.get(region.id) !== peer || peer.region.epoch.version !== region.epoch.version) return cb(err.epochNotMatch([peer.region]));
    if (!peer.isLeader) return cb(err.notLeader(peer.regionId, peer.leaderMeta()));
    const admin: AdminRequest = {
      type: 'batchSplit',
      splits: keys.map((k, i) => ({ splitKey: k, newRegionId: ids[i]!.newRegionId, newPeerIds: ids[i]!.newPeerIds })),
      rightDerive: false,
    };
    this.propose(peer, encodeCommand({ header: { regionId: region.id, regionEpoch: region.epoch }, writes: [], admin }), cb);
  }

  /**
   * preSplit splits the bootstrap Region at the given keys, at most 64 per
   * BatchSplit, right to left so the leader keeps the remainder. Each round
   * recomputes what is left from the Region's current range, so a split
   * that applied despite a lost answer is never repeated.
   */
  async preSplit(keys: Uint8Array[], timeoutMs = 60_000): Promise<void> {
    const sorted = [...keys].sort(compareKeys).filter((k, i, a) => k.length > 0 && (i === 0 || compareKeys(a[i - 1]!, k) !== 0));
    const deadline = this.now() + timeoutMs;
    const first = [...this.peers.values()].find((p) => p.region.startKey.length === 0);
    if (!first) return;
    while (this.now() < deadline && !this.closed) {
      const end = first.region.endKey;
      const todo = sorted.filter((k) => compareKeys(k, first.region.startKey) > 0 && (end.length === 0 || compareKeys(k, end) < 0));
      if (todo.length === 0) return;
      if (first.isLeader) {
        await new Promise<void>((resolve) => void this.startSplit(first, todo.slice(-64), () => resolve()));
      } else {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    this.logger.warn({ remaining: sorted.length }, 'pre-split did not finish in time');
  }

  // ---------------------------------------------------------------- background work

  private splitCheck(): void {
    if (this.closed) return;
    const cfg = this.config;
    for (const p of this.peers.values()) {
      // Only Regions that applied something since their last check can have grown.
      if (!p.isLeader || !p.initialized || !p.splitCheckDirty) continue;
      p.splitCheckDirty = false;
      const { sizeBytes, keys } = this.sm.approximateStats(p.regionId, p.region.startKey, p.region.endKey);
      p.approximateSizeBytes = sizeBytes;
      p.approximateKeys = keys;
      if (sizeBytes < cfg.regionMaxSizeBytes && keys < cfg.regionMaxKeys) continue;
      if (p.splitInFlightVersion === p.region.epoch.version && this.now() - p.splitAskedAtMs < 10_000) continue;
      const key = this.sm.approximateSplitKey(p.region.startKey, p.region.endKey);
      if (!key || !keyInRegion(key, p.region) || compareKeys(key, p.region.startKey) === 0) continue;
      p.splitInFlightVersion = p.region.epoch.version;
      p.splitAskedAtMs = this.now();
      this.logger.info({ regionId: p.regionId, sizeBytes, keys }, 'region over split threshold; splitting');
      void this.startSplit(p, [key], (r) => {
        if (!r.ok) {
          p.splitInFlightVersion = 0;
          p.splitCheckDirty = true;
          this.logger.warn({ regionId: p.regionId, err: r.error.type }, 'auto split failed');
        }
      });
    }
  }

  /** raftLogGc proposes CompactLog on leaders whose log grew past the limits. */
  private raftLogGc(): void {
    if (this.closed) return;
    for (const p of this.peers.values()) {
      if (!p.isLeader || !p.initialized || p.hibernating || p.mergeState) continue;
      const applied = p.apply.appliedIndex;
      const first = p.apply.truncatedIndex + 1;
      if (applied - first < this.config.raftLogGcThreshold) continue;
      const r = p.raw.raft;
      // Keep what replicating followers still need, unless the log is far too long.
      let minMatch = applied;
      for (const [, pr] of r.prs.progress) if (pr.match < minMatch) minMatch = pr.match;
      let compactIndex = minMatch;
      if (applied - first > this.config.raftLogGcCountLimit) compactIndex = applied;
      if (compactIndex <= p.apply.truncatedIndex + this.config.raftLogGcThreshold / 2) continue;
      let term: number;
      try {
        term = r.raftLog.term(compactIndex);
      } catch {
        continue;
      }
      const admin: AdminRequest = { type: 'compactLog', compactIndex, compactTerm: term };
      this.propose(p, encodeCommand({ header: { regionId: p.regionId, regionEpoch: p.region.epoch }, writes: [], admin }), () => {});
    }
  }

  private purgeLog(): void {
    if (this.closed) return;
    try {
      this.log.purge(10_000);
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, 'log purge failed');
    }
  }

  private async storeHeartbeat(): Promise<void> {
    if (this.closed) return;
    let leaders = 0;
    for (const p of this.peers.values()) if (p.isLeader) leaders++;
    try {
      await this.pd.storeHeartbeat({
        storeId: this.storeId,
        capacityBytes: 0,
        usedBytes: 0,
        availableBytes: 0,
        regionCount: this.peers.size,
        leaderCount: leaders,
      });
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, 'store heartbeat failed');
    }
    if (this.pd.getClusterInfo) {
      try {
        this.maxReplicas = (await this.pd.getClusterInfo()).maxReplicas;
      } catch {
        // keep the last known value
      }
    }
    if (this.metrics.hibernated > 0) {
      try {
        const stores = await this.pd.getAllStores();
        this.wakeRegionsLedFrom(new Set(stores.filter((s) => s.state !== 'up').map((s) => s.id)));
      } catch {
        // placement unreachable: the transport's unreachable reports still wake Regions.
      }
    }
  }

  /**
   * regionHeartbeats reports every led Region to placement, a bounded
   * number at a time. A hibernated Region has nothing new to say, so it
   * reports only every HIBERNATED_HEARTBEAT_FACTOR intervals: 10,000 idle
   * Regions must cost almost nothing.
   */
  private async regionHeartbeats(): Promise<void> {
    if (this.closed) return;
    const now = this.now();
    const slow = this.config.regionHeartbeatIntervalMs * HIBERNATED_HEARTBEAT_FACTOR;
    const due = [...this.peers.values()].filter(
      (p) =>
        p.isLeader &&
        p.initialized &&
        (!p.hibernating || p.operatorActive || this.underReplicated(p) || now - p.lastRegionHeartbeatMs >= slow),
    );
    for (let i = 0; i < due.length; i += 256) {
      await Promise.all(due.slice(i, i + 256).map((p) => this.regionHeartbeat(p)));
    }
  }

  /** underReplicated: fewer voters than placement keeps; placement has work for it, so it reports at the normal pace. */
  private underReplicated(p: Peer): boolean {
    let voters = 0;
    for (const x of p.region.peers) if (x.role === 'voter') voters++;
    return voters < this.maxReplicas;
  }

  private async regionHeartbeat(p: Peer): Promise<void> {
    if (this.closed || !p.isLeader || !p.initialized) return;
    const now = this.now();
    p.lastRegionHeartbeatMs = now;
    const downPeers = [];
    const pendingPeers = [];
    const r = p.raw.raft;
    for (const x of p.region.peers) {
      if (x.id === p.peerId) continue;
      const heard = p.lastHeard.get(x.id);
      if (heard !== undefined && now - heard > this.config.peerDownAfterMs && !p.hibernating) {
        downPeers.push({ peer: x, downSeconds: Math.floor((now - heard) / 1000) });
      }
      const pr = r.prs.progress.get(x.id);
      if (pr && pr.match < p.apply.truncatedIndex) pendingPeers.push(x);
    }
    try {
      const resp = await this.pd.regionHeartbeat({
        region: p.region,
        leader: p.meta(),
        approximateSizeBytes: p.approximateSizeBytes,
        approximateKeys: p.approximateKeys,
        downPeers,
        pendingPeers,
      });
      // While placement has an operator for the Region, keep reporting at the
      // normal pace even when hibernated: each step waits for a heartbeat.
      p.operatorActive = resp.operator !== undefined;
      if (resp.operator) this.executeOperator(p, resp.operator);
    } catch (e) {
      this.logger.warn({ regionId: p.regionId, err: (e as Error).message }, 'region heartbeat failed');
    }
  }

  /** executeOperator runs one step placement asked for (idempotent: repeated until done). */
  private executeOperator(p: Peer, op: OperatorInstruction): void {
    if (!p.isLeader || this.peers.get(p.regionId) !== p) return;
    const header = { regionId: p.regionId, regionEpoch: p.region.epoch };
    const step = op.step;
    const done = (r: CommandResult) => {
      if (!r.ok) this.logger.info({ regionId: p.regionId, op: op.kind, err: r.error.type }, 'operator step not applied');
    };
    this.logger.info({ regionId: p.regionId, operator: op.operatorId, step: step.type }, 'executing operator step');
    // Decide on the Region's membership only: the peer cache is for routing
    // and already holds a peer whose first proposal may have been lost.
    const stepPeer = 'peer' in step ? step.peer : undefined;
    const member = stepPeer ? p.region.peers.find((x) => x.id === stepPeer.id) : undefined;
    switch (step.type) {
      case 'addLearner':
        if (member) return;
        return this.startAdmin(p, header, { type: 'changePeer', changeType: 2, peer: { ...step.peer, role: 'learner' } }, done);
      case 'addPeer':
      case 'promoteLearner':
        if (member?.role === 'voter') return;
        return this.startAdmin(p, header, { type: 'changePeer', changeType: 0, peer: { ...step.peer, role: 'voter' } }, done);
      case 'removePeer':
        if (!member) return;
        if (step.peer.id === p.peerId) {
          // Never remove the leader itself: hand leadership away first.
          const other = p.region.peers.find((x) => x.id !== p.peerId && x.role === 'voter');
          if (other) p.raw.transferLeader(other.id);
          this.markDirty(p);
          return;
        }
        return this.startAdmin(p, header, { type: 'changePeer', changeType: 1, peer: step.peer }, done);
      case 'transferLeader': {
        const target = p.region.peers.find((x) => x.storeId === step.toStoreId);
        if (target && target.id !== p.peerId) {
          p.raw.transferLeader(target.id);
          this.markDirty(p);
        }
        return;
      }
      case 'merge':
        if (p.mergeState) return;
        return this.startMerge(p, step.target.id, done);
    }
  }

  // ---------------------------------------------------------------- status

  /** inspect returns a read-only view of every peer on this store (for checkers, tools and tests). */
  inspect(): PeerView[] {
    return [...this.peers.values()].map(viewPeer);
  }

  /** inspectRegion returns the view of this store's peer of one Region, if it has one. */
  inspectRegion(regionId: number): PeerView | undefined {
    const p = this.peers.get(regionId);
    return p ? viewPeer(p) : undefined;
  }

  status(): object {
    let leaders = 0;
    let hibernated = 0;
    for (const p of this.peers.values()) {
      if (p.isLeader) leaders++;
      if (p.hibernating) hibernated++;
    }
    return { storeId: this.storeId, regions: this.peers.size, leaders, hibernated, transport: this.transport.stats() };
  }
}

/**
 * checkConfChange refuses membership changes a Region cannot survive (TiKV's
 * check_conf_change): a second peer on a store that already holds one (a
 * store hosts at most one peer per Region, so it could never exist), a peer
 * ID reused on another store, removing an unknown peer, or leaving no voter.
 */
function checkConfChange(region: Region, changes: { changeType: number; peer: PeerMeta }[]): string | undefined {
  const peers = new Map(region.peers.map((p) => [p.id, p]));
  for (const c of changes) {
    const existing = peers.get(c.peer.id);
    if (c.changeType === 1) {
      if (!existing) return `peer ${c.peer.id} is not in region ${region.id}`;
      peers.delete(c.peer.id);
      continue;
    }
    if (existing && existing.storeId !== c.peer.storeId) return `peer ${c.peer.id} already exists on store ${existing.storeId}`;
    for (const p of peers.values()) {
      if (p.storeId === c.peer.storeId && p.id !== c.peer.id) return `store ${c.peer.storeId} already holds peer ${p.id} of region ${region.id}`;
    }
    peers.set(c.peer.id, { ...c.peer, role: c.changeType === 2 ? 'learner' : 'voter' });
  }
  if (![...peers.values()].some((p) => p.role === 'voter')) return 'the change would leave the region without a voter';
  return undefined;
}

/** LEADER_MISSING_ELECTIONS: a peer without a leader for this many election timeouts asks placement whether it is stale. */
const LEADER_MISSING_ELECTIONS = 10;
/**
 * LEASE_DRIFT_MARGIN: the leader lease is this fraction shorter than the
 * election timeout, for clock-rate differences between stores (TiKV keeps
 * its 9 s max lease under a 10 s election timeout for the same reason).
 */
const LEASE_DRIFT_MARGIN = 0.2;

/** HIBERNATED_HEARTBEAT_FACTOR: a hibernated leader reports to placement this many times less often. */
const HIBERNATED_HEARTBEAT_FACTOR = 6;

/** assert: a broken invariant is a bug; throw and never catch (TIGER_STYLE). */
function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`invariant violated: ${message}`);
}

function initialApplyState(): ApplyState {
  return { appliedIndex: RAFT_INIT_LOG_INDEX, appliedTerm: RAFT_INIT_LOG_TERM, truncatedIndex: RAFT_INIT_LOG_INDEX, truncatedTerm: RAFT_INIT_LOG_TERM };
}

function emptyConf() {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

function rangesOverlap(aStart: Uint8Array, aEnd: Uint8Array, bStart: Uint8Array, bEnd: Uint8Array): boolean {
  // [aStart, aEnd) and [bStart, bEnd) overlap iff aStart < bEnd and bStart < aEnd (empty end = +inf).
  const aBeforeBEnd = bEnd.length === 0 || compareKeys(aStart, bEnd) < 0;
  const bBeforeAEnd = aEnd.length === 0 || compareKeys(bStart, aEnd) < 0;
  return aBeforeBEnd && bBeforeAEnd;
}

function countLeaders(peers: Map<number, Peer>): number {
  let n = 0;
  for (const p of peers.values()) if (p.isLeader) n++;
  return n;
}

export { encode };
