import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { WebSocketServer } from 'ws';
import { LogEngine } from '@flotilla/log-engine';
import { silentLogger, type Logger } from '@flotilla/proto';
import { ProposalDroppedError, type ReadState, type SoftState } from '@flotilla/raft-core';
import type { ClusterOptions } from '../cluster';
import { PlacementError, PlacementErrorCode, PlacementInvariantError } from '../errors';
import { isPlacementMethod, parseParams } from '../schema';
import { PlacementStorage } from '../storage';
import type { ClusterMethod, MembersView, ParamsOf } from '../types';
import { encodeCommand } from './command';
import type { ApplyOutcome } from './fsm';
import { PlacementFsm } from './fsm';
import type { MemberIdentity } from './identity';
import { Leadership } from './leadership';
import { handleMemberHttp } from './member-http';
import { establishIdentity } from './member-start';
import { MemberMetrics } from './member-metrics';
import { groupView } from './member-view';
import { setGroupView } from '../dashboard/group';
import { Membership } from './membership';
import { RaftNode, type RaftTiming } from './node';
import { PeerTransport, type MemberPeerTransport, type PeerTransportOptions } from './transport';

/** MemberOptions: a placement member's cluster options plus its place in the placement group. */
export interface MemberOptions extends Omit<ClusterOptions, 'logger' | 'opened'> {
  /** name: this member's name in --initial-cluster (default "p1"). */
  name?: string;
  /** initialCluster: `name=host:port,...` of the initial members (default: this member alone). */
  initialCluster?: string;
  /** join: addresses of running members; a new member adds itself through them (PD's --join). */
  join?: string[];
  /** clusterToken: members with different tokens refuse each other (etcd's --initial-cluster-token). */
  clusterToken?: string;
  raftTiming?: Partial<RaftTiming>;
  tsoSaveIntervalMs?: number;
  compactLogEntries?: number;
  keepLogEntries?: number;
  token?: string;
  tls?: { caPath?: string };
  logger?: Logger;
  /** random: raft's election randomness (default Math.random); a deterministic simulation passes a seeded one. */
  random?: () => number;
  /**
   * peerTransport builds the transport to the other members (default: PeerTransport, WebSocket on /raft).
   * A deterministic simulation passes one over its simulated network; members it builds never see a socket.
   */
  peerTransport?: (opts: PeerTransportOptions) => MemberPeerTransport;
}

/** DEFAULT_TIMING: etcd's defaults (100 ms heartbeat, election after 1-2 s). */
export const DEFAULT_TIMING: RaftTiming = { tickMs: 100, electionTicks: 10, heartbeatTicks: 1 };

/** RELEASE_BATCH: requests that waited for a new leader, answered per event-loop turn once it serves. */
const RELEASE_BATCH = 256;
/**
 * REFUSED_WHILE_LOADING: periodic reports a leader still loading its
 * routing table refuses rather than holds: the next report carries newer
 * state anyway, and thousands held would all be applied in one turn.
 */
const REFUSED_WHILE_LOADING: ReadonlySet<string> = new Set(['regionHeartbeat', 'regionHeartbeats', 'regionHeartbeatsPacked', 'storeHeartbeat']);

/**
 * PlacementMember is one member of the placement Raft group: its database
 * (the replicated state, applied here by PlacementFsm), its raft log
 * (raft.db, the same log engine the stores use) and its peers. A single
 * placement is a group of one and runs this same code. The leader serves
 * every request from a Leadership and runs the schedulers; a follower
 * answers NotLeader with the leader's address (HTTP reads it relays).
 */
export class PlacementMember {
  readonly storage: PlacementStorage;
  readonly fsm: PlacementFsm;
  readonly engine: LogEngine;
  readonly peerServer: WebSocketServer;
  private node: RaftNode | undefined;
  private transport: MemberPeerTransport | undefined;
  private membership: Membership | undefined;
  private ident: MemberIdentity | undefined;
  private address = '';
  private leadership: Leadership | undefined;
  /** leading: the term this member leads and the index its term's first entry has; ready once applied. */
  private leading: { term: number; readyIndex: number; initProposed: boolean } | undefined;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private startWaiters: (() => void)[] = [];
  private publishedAddressTerm = 0;
  private removed = false;
  private stopped = false;
  private closed = false;
  private knownClusterId = 0;
  private readonly logger: Logger;
  private readonly timing: RaftTiming;
  readonly metrics: MemberMetrics;

  constructor(readonly opts: MemberOptions & { dataDir: string }) {
    this.logger = opts.logger ?? silentLogger;
    this.timing = { ...DEFAULT_TIMING, ...opts.raftTiming };
    // A new database starts without a cluster ID: the group's first leader chooses it.
    // The Regions are not read here: only a leader needs them, and it loads them in slices (leadership.ts).
    this.storage = PlacementStorage.open(opts.dataDir, { clusterId: 0, maxReplicas: opts.maxReplicas ?? 3 }, { regions: false }).storage;
    try {
      this.engine = LogEngine.open({ path: join(opts.dataDir, 'raft.db') });
    } catch (err) {
      this.storage.close();
      throw err;
    }
    this.fsm = new PlacementFsm(this.storage, this.logger);
    this.metrics = new MemberMetrics({
      role: () => String(this.health()['role']).replace(' (catching up)', ''),
      term: () => this.node?.raw.raft.term ?? 0,
      appliedIndex: () => this.fsm.store.appliedIndex,
      commitIndex: () => this.node?.raw.raft.raftLog.committed ?? 0,
      cluster: () => this.leadership?.cluster,
    });
    this.peerServer = new WebSocketServer({ noServer: true, maxPayload: 512 * 1024 * 1024 });
    this.peerServer.on('connection', (ws) => (this.transport ? this.transport.accept(ws) : ws.terminate()));
  }

  get name(): string {
    return this.opts.name ?? 'p1';
  }

  /** clusterId: 0 until the group's first leader chose it; it never changes after (so it is cached). */
  get clusterId(): number {
    if (this.knownClusterId === 0 && !this.closed) this.knownClusterId = this.fsm.clusterId;
    return this.knownClusterId;
  }

  /**
   * start joins the group as the member serving at address (bound before,
   * so peers can reach it) and resolves once the cluster ID is known: at
   * once for a member restarting, after the first election for a new group.
   */
  async start(address: string): Promise<void> {
    this.address = address;
    const { ident, seeds } = await establishIdentity(
      { dataDir: this.opts.dataDir, name: this.name, address, clusterToken: this.opts.clusterToken ?? 'flotilla-placement', logger: this.logger, ...this.startExtras() },
      this.engine,
      this.fsm,
    );
    this.ident = ident;
    this.transport = this.newTransport(ident);
    for (const s of seeds) this.transport.setAddress(s.id, s.address);
    this.node = this.newNode(ident);
    this.membership = new Membership(this.node, this.fsm, () => ident.id, () => this.name);
    this.syncMembers();
    this.node.start();
    this.maybeCampaignAlone();
    this.logger.info({ member: this.name, id: ident.id, address, applied: this.fsm.store.appliedIndex, clusterId: this.clusterId || undefined }, 'placement member started');
    if (!this.started()) await new Promise<void>((resolve) => this.startWaiters.push(resolve));
  }

  /**
   * started: the member knows its cluster ID and a leader (the group is
   * usable), and a member that is its group's only voter serves itself.
   */
  private started(): boolean {
    if (this.stopped || this.removed) return true;
    if (this.clusterId === 0 || this.leaderAddress() === undefined) return false;
    const voters = this.fsm.store.confState().voters;
    return !(voters.length === 1 && voters[0] === this.ident?.id) || this.isServing;
  }

  private checkStarted(): void {
    if (this.startWaiters.length > 0 && this.started()) for (const w of this.startWaiters.splice(0)) w();
  }

  private startExtras(): { initialCluster?: string; join?: string[]; token?: string; tls?: { caPath?: string } } {
    const o = this.opts;
    return { ...(o.initialCluster ? { initialCluster: o.initialCluster } : {}), ...(o.join ? { join: o.join } : {}), ...(o.token ? { token: o.token } : {}), ...(o.tls ? { tls: o.tls } : {}) };
  }

  private newTransport(ident: MemberIdentity): MemberPeerTransport {
    const opts: PeerTransportOptions = {
      selfId: ident.id,
      selfAddress: () => this.address,
      group: ident.clusterToken,
      ...(this.opts.token ? { token: this.opts.token } : {}),
      ...(this.opts.tls ? { tls: this.opts.tls } : {}),
      logger: this.logger,
      onMessages: (msgs) => {
        for (const m of msgs) this.node?.step(m);
      },
      onUnreachable: (id) => this.node?.reportUnreachable(id),
      onSnapshotSent: (id, ok) => this.node?.reportSnapshot(id, ok),
      isRemoved: (id) => this.fsm.store.members().some((m) => m.id === id && m.removed),
      onRemoved: () => this.onRemoved(),
    };
    return this.opts.peerTransport ? this.opts.peerTransport(opts) : new PeerTransport(opts);
  }

  private newNode(ident: MemberIdentity): RaftNode {
    return new RaftNode({
      id: ident.id,
      engine: this.engine,
      fsm: this.fsm,
      timing: this.timing,
      send: (msgs) => this.transport?.send(msgs),
      onSoftState: (ss) => this.onSoftState(ss),
      onApplied: (o) => this.onApplied(o),
      onReadStates: (rs) => this.onReadStates(rs),
      onTick: () => this.onTick(),
      random: this.opts.random ?? Math.random,
      logger: this.logger,
      ...(this.opts.compactLogEntries !== undefined ? { compactLogEntries: this.opts.compactLogEntries } : {}),
      ...(this.opts.keepLogEntries !== undefined ? { keepLogEntries: this.opts.keepLogEntries } : {}),
    });
  }

  // ---- raft events ----

  private onSoftState(ss: SoftState): void {
    const node = this.node!;
    if (ss.raftState === 'Leader') {
      if (this.leading?.term !== node.raw.raft.term) {
        this.leading = { term: node.raw.raft.term, readyIndex: node.raw.raft.raftLog.lastIndex(), initProposed: false };
        this.logger.info({ member: this.name, term: this.leading.term }, 'placement member elected leader; catching up before serving');
      }
      this.maybeServe();
      return;
    }
    if (this.leading) this.stepDown();
  }

  private stepDown(): void {
    const term = this.leading?.term;
    this.leading = undefined;
    const leader = this.leaderAddress();
    if (this.leadership) {
      this.leadership.stepDown(new PlacementError(PlacementErrorCode.Unavailable, 'the placement leader stepped down before this change was committed; it may or may not have been applied', leader));
      this.leadership = undefined;
      this.logger.warn({ member: this.name, term }, 'placement member stepped down');
    }
    for (const w of this.readyWaiters.splice(0)) w.reject(this.notLeader());
  }

  private onApplied(outcome: ApplyOutcome): void {
    if (outcome.confChanged) {
      this.syncMembers();
      this.leadership?.gate.endLease();
    }
    this.leadership?.onApplied(this.fsm.store.appliedIndex);
    this.maybeServe();
    this.checkStarted();
  }

  private onReadStates(rs: ReadState[]): void {
    for (const r of rs) this.leadership?.onReadState(r.requestCtx);
  }

  private onTick(): void {
    const l = this.leadership;
    if (l) {
      l.tick();
      this.membership?.promoteLearners(l);
    }
    this.maybeServe();
    this.maybePublishAddress();
    this.maybeCampaignAlone();
    this.checkStarted();
  }

  /**
   * maybeServe builds the Leadership once the leader has applied its term's
   * first entry (and the cluster has an ID). It loads its cluster in slices
   * and serves timestamps meanwhile; onServing releases the rest.
   */
  private maybeServe(): void {
    const lead = this.leading;
    if (!lead || this.leadership || this.fsm.store.appliedIndex < lead.readyIndex) return;
    if (this.clusterId === 0) {
      if (!lead.initProposed) this.proposeInit(lead);
      return;
    }
    const o = this.opts;
    const leadership: Leadership = new Leadership({
      term: lead.term,
      node: this.node!,
      fsm: this.fsm,
      cluster: o,
      clock: o.clock ?? Date.now,
      ...(o.tsoSaveIntervalMs !== undefined ? { tsoSaveIntervalMs: o.tsoSaveIntervalMs } : {}),
      singleVoter: () => this.fsm.store.confState().voters.length === 1,
      tsoConfirmTimeoutMs: this.timing.tickMs * this.timing.electionTicks * 3,
      electionTimeoutMs: this.timing.tickMs * this.timing.electionTicks,
      onServing: () => this.onServing(leadership),
      logger: this.logger,
    });
    this.leadership = leadership;
    this.logger.info({ member: this.name, term: lead.term, applied: this.fsm.store.appliedIndex }, 'placement leader loading its state; serving timestamps meanwhile');
  }

  /** onServing: the leadership loaded its cluster; what waited for it is answered, a slice at a time. */
  private onServing(l: Leadership): void {
    if (this.leadership !== l) return;
    setGroupView(l.cluster!, () => groupView(this.node!, this.members(), this.leadership?.oracle));
    this.logger.info({ member: this.name, term: l.opts.term, clusterId: this.clusterId, applied: this.fsm.store.appliedIndex, waiting: this.readyWaiters.length }, 'placement leader serving');
    this.releaseWaiters(l);
    this.checkStarted();
  }

  /** releaseWaiters answers requests that waited for the leader, RELEASE_BATCH per event-loop turn (4096 at once could block it). */
  private releaseWaiters(l: Leadership): void {
    if (this.leadership !== l) return;
    for (const w of this.readyWaiters.splice(0, RELEASE_BATCH)) w.resolve();
    if (this.readyWaiters.length > 0) setImmediate(() => this.releaseWaiters(l));
  }

  private proposeInit(lead: { initProposed: boolean }): void {
    try {
      this.node!.propose(encodeCommand({ t: 'init', clusterId: this.opts.clusterId ?? randomInt(1, 2 ** 47), maxReplicas: this.opts.maxReplicas ?? 3 }));
      lead.initProposed = true;
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
  }

  /** syncMembers gives the transport every member's address and notices this member's own removal. */
  private syncMembers(): void {
    const conf = this.fsm.store.confState();
    for (const m of this.fsm.store.members()) {
      if (m.removed) this.transport?.forget(m.id);
      else this.transport?.setAddress(m.id, m.address);
    }
    const selfId = this.ident?.id;
    const self = this.fsm.store.members().find((m) => m.id === selfId);
    if (self?.removed && !conf.voters.includes(self.id) && !conf.learners.includes(self.id)) this.onRemoved();
  }

  /** onRemoved: this member left the group (it applied its removal, or a peer told it): it stops taking part. */
  private onRemoved(): void {
    if (this.removed) return;
    this.removed = true;
    this.logger.error({ member: this.name, id: this.ident?.id }, 'this placement member was removed from the group; stop it (to bring it back, add it again with a fresh --data-dir and --join)');
    this.stepDown();
    setImmediate(() => this.node?.stop());
  }

  /** maybePublishAddress: a member serving at an address its record does not have announces it (once per term). */
  private maybePublishAddress(): void {
    const node = this.node;
    if (!node || !this.ident || this.removed || node.raw.raft.leaderId === 0 || this.publishedAddressTerm === node.raw.raft.term) return;
    const self = this.fsm.store.members().find((m) => m.id === this.ident!.id);
    if (!self || self.address === this.address) return;
    try {
      node.propose(encodeCommand({ t: 'memberAddress', memberId: self.id, address: this.address }));
      this.publishedAddressTerm = node.raw.raft.term;
      this.logger.info({ member: this.name, from: self.address, to: this.address }, 'placement member announces its new address');
    } catch (err) {
      if (!(err instanceof ProposalDroppedError)) throw err;
    }
  }

  /** maybeCampaignAlone: the only voter of its group need not wait an election timeout to lead. */
  private maybeCampaignAlone(): void {
    const node = this.node;
    if (!node || this.removed || node.raw.raft.state !== 'Follower' || node.raw.raft.leaderId !== 0) return;
    const voters = this.fsm.store.confState().voters;
    if (voters.length === 1 && voters[0] === this.ident?.id) node.campaign();
  }

  // ---- serving ----

  leaderAddress(): string | undefined {
    const id = this.node?.raw.raft.leaderId ?? 0;
    if (id === 0) return undefined;
    if (id === this.ident?.id) return this.address;
    return this.fsm.store.members().find((m) => m.id === id)?.address ?? this.transport?.addressOf(id);
  }

  private notLeader(): PlacementError {
    const leader = this.leaderAddress();
    const msg = leader ? `placement member ${this.name} is not the leader; the leader is ${leader}` : `placement member ${this.name} is not the leader, and no leader is known yet (an election may be under way)`;
    return new PlacementError(PlacementErrorCode.NotLeader, msg, leader === this.address ? undefined : leader);
  }

  /**
   * dispatch answers one request: params are checked first, on every
   * member alike (the same typed errors whichever member is asked); then
   * getMembers is answered here, and everything else by the leader: a
   * follower answers NotLeader with the leader's address, and a leader
   * still catching up makes it wait (bounded) until it serves.
   */
  dispatch(method: string, params: unknown): unknown {
    if (!isPlacementMethod(method)) throw new PlacementError(PlacementErrorCode.UnknownMethod, `unknown method ${JSON.stringify(method.slice(0, 64))}`);
    const parsed = parseParams(method, params);
    this.metrics.onRequest(method, parsed);
    if (method === 'getMembers') return this.members();
    const l = this.leadership;
    if (l === undefined || !l.isServing) {
      if (this.leading === undefined || this.removed) {
        this.metrics.onNotLeader();
        throw this.notLeader();
      }
      // A leader loading its state: timestamps need only the oracle's committed bound.
      if (l !== undefined && method === 'getTimestamps') return l.dispatch(method, parsed as never);
      if (REFUSED_WHILE_LOADING.has(method)) throw new PlacementError(PlacementErrorCode.TooManyPending, `placement member ${this.name} was just elected and is loading its routing table; this report was not applied (retry: the next one will be)`);
      if (this.readyWaiters.length >= 4096) throw new PlacementError(PlacementErrorCode.TooManyPending, 'the placement leader is still catching up; retry');
      return new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject })).then(() => this.dispatch(method, params));
    }
    if (method === 'addMember') {
      const p = parsed as ParamsOf<'addMember'>;
      return this.membership!.add(l, p.name, p.address);
    }
    if (method === 'removeMember') return this.membership!.remove(l, (parsed as ParamsOf<'removeMember'>).name);
    return l.dispatch(method as ClusterMethod | 'getTimestamps', parsed as never);
  }

  members(): MembersView {
    if (!this.membership) return { members: [], leaderId: 0, answeredBy: this.name };
    return this.membership.view();
  }

  handleHttp(req: IncomingMessage, res: ServerResponse): void {
    handleMemberHttp(
      {
        health: () => this.health(),
        members: () => this.members(),
        metrics: this.metrics.registry,
        cluster: () => this.leadership?.cluster,
        leaderAddress: () => this.leaderAddress(),
        selfName: this.name,
        ...(this.opts.tls ? { tls: this.opts.tls } : {}),
        logger: this.logger,
      },
      req,
      res,
    );
  }

  health(): Record<string, unknown> {
    const node = this.node;
    const role = this.removed ? 'removed' : this.isServing ? 'leader' : node?.raw.raft.state === 'Leader' ? 'leader (catching up)' : (node?.raw.raft.state.toLowerCase() ?? 'starting');
    return { ok: true, clusterId: this.clusterId || null, bootstrapped: this.storage.readMetaNumber('bootstrapped') === 1, member: this.name, role, term: node?.raw.raft.term ?? 0, leader: this.leaderAddress() ?? null, applied: this.fsm.store.appliedIndex };
  }

  /** isServing: this member leads and serves (tests, status). */
  get isServing(): boolean {
    return this.leadership?.isServing === true;
  }

  /** leaderCluster: the leader's in-memory cluster (tests, benchmarks; undefined on followers). */
  get leaderCluster(): import('../cluster').PlacementCluster | undefined {
    return this.leadership?.cluster;
  }

  flush(): void {
    this.leadership?.flush();
  }

  runSchedulers(): void {
    this.leadership?.runSchedulers();
  }

  /**
   * stop leaves the group's traffic: a leader first proposes what it still
   * holds (bounded wait) and hands leadership to a caught-up voter, so a
   * rolling restart costs no election timeout; then raft stops and every
   * peer connection closes. The database stays open until close().
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await this.handOver();
    } catch (err) {
      if (err instanceof PlacementInvariantError) throw err;
      this.logger.warn({ err: (err as Error).message }, 'placement leader hand-over on close failed');
    }
    this.stepDown();
    this.node?.stop();
    this.transport?.close();
    for (const c of this.peerServer.clients) c.terminate();
    this.peerServer.close();
    for (const w of this.startWaiters.splice(0)) w();
  }

  /**
   * crash stops the member as a kill -9 between two raft rounds would: no
   * hand-over, nothing more proposed or sent, waiting answers fail as a
   * dropped connection would, and the databases close with what they hold
   * (every raft round is written synchronously). A simulation restarts it
   * from the same data directory.
   */
  async crash(): Promise<void> {
    if (this.closed) return;
    this.stopped = true;
    this.leadership?.stepDown(new PlacementError(PlacementErrorCode.Unavailable, 'the placement member crashed; the change may or may not have been applied'));
    this.leadership = undefined;
    this.leading = undefined;
    for (const w of this.readyWaiters.splice(0)) w.reject(this.notLeader());
    this.node?.stop();
    this.transport?.close();
    for (const w of this.startWaiters.splice(0)) w();
    this.closed = true;
    await this.engine.close();
    this.storage.close();
  }

  /** close stops the member (if stop() was not called) and closes its databases. */
  async close(): Promise<void> {
    await this.stop();
    if (this.closed) return;
    this.closed = true;
    await this.engine.close();
    this.storage.close();
  }

  private async handOver(): Promise<void> {
    const l = this.leadership;
    const node = this.node;
    if (!l || !node) return;
    await l.drain(1000);
    const voters = this.fsm.store.confState().voters.filter((v) => v !== this.ident?.id);
    if (voters.length === 0) return;
    const progress = node.raw.status().progress;
    const best = voters.sort((a, b) => (progress?.get(b)?.match ?? 0) - (progress?.get(a)?.match ?? 0))[0]!;
    node.transferLeader(best);
    const deadline = Date.now() + this.timing.tickMs * this.timing.electionTicks;
    while (Date.now() < deadline && node.raw.raft.state === 'Leader') await new Promise((r) => setTimeout(r, 10));
  }
}
