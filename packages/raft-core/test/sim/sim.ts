// sim: a deterministic randomized simulation of one Raft group (FoundationDB /
// TigerBeetle VOPR style). Everything — fault schedule, message delays,
// election timeouts, proposals, membership changes — is drawn from one seed,
// so a failing seed replays exactly.
//
// Model
// - Each node's MemoryStorage is its DURABLE state; its state machine (applied
//   index, digest, conf state) is durable too and is written together with
//   the apply, as a KV engine would. A node's RawNode is volatile.
// - Handling a Ready is split in two steps, with time between them: taking
//   the Ready sends `messages` at once (the leader's MsgApp may precede its own
//   durable append, as etcd allows); persisting it writes snapshot, entries and
//   hard state, and only then sends `persistedMessages`, applies, and advances.
//   Half the seeds persist asynchronously instead (advanceAppendAsync, up to
//   MAX_PENDING_READIES Readies in the writer, onPersistReady in order), and
//   apply committed entries as soon as raft hands them out; every applied
//   entry is checked to be durable already.
// - A crash drops the RawNode and any taken-but-unpersisted Ready; restart
//   builds a new RawNode over the same storage with `applied` = the durable
//   applied index.
// - The network delays, drops, duplicates and (through delays) reorders
//   messages, and partitions the nodes into groups.
//
// Checkers, after every round: election safety (one leader per term over the
// whole run), leader completeness (a new leader holds every entry applied
// anywhere), state-machine safety (every node's state machine digest at an
// index is the same, and so is its membership), (index, term) identifies one entry payload, commit never
// regresses (and a restarted node never commits less than it persisted), and
// periodically log matching over whole logs. ReadIndex results are checked to
// be at least the commit index known anywhere when the read was issued.
// A liveness phase then heals everything (nodes removed from the group are
// shut down, as a host destroys removed peers) and requires a new proposal
// to be applied by a majority of the voters within a bound of rounds (waived,
// and counted, for seeds without pre-vote that changed membership: Raft does
// not promise progress there, see livenessExpected). Every
// delivered message is a copy (raft owns what it is stepped), as off a wire.
import {
  ConfChangeTransition,
  ConfChangeType,
  MemoryStorage,
  MessageType,
  RaftError,
  RawNode,
  SnapshotTemporarilyUnavailableError,
  emptyConfState,
  entryConfChange,
  mulberry32,
} from '../interaction/core';
import type { Config, ConfChangeSingle, ConfState, Entry, Message, RaftState, Ready, Snapshot } from '../interaction/core';
import { describeMessage } from '../interaction/format';

export interface SimOptions {
  seed: number;
  /** nodes is the group size including spare nodes (3..7); drawn from the seed when omitted. */
  nodes?: number;
  /** rounds of the faulty (safety) phase. */
  rounds?: number;
  /** livenessRounds bounds the healed phase in which a new proposal must be applied by a majority of voters. */
  livenessRounds?: number;
  /** trace prints every delivered message and event (for replaying a failing seed). */
  trace?: (line: string) => void;
  /**
   * inject breaks the HOST's durability contract on purpose, to prove the
   * checkers catch what such a bug causes: 'lose-hardstate' never persists
   * term/vote/commit; 'ack-before-persist' sends persistedMessages (votes,
   * MsgAppResp) before the Ready is durable.
   */
  inject?: 'lose-hardstate' | 'ack-before-persist';
  /** async forces asynchronous persistence on or off; drawn from the seed when omitted. */
  async?: boolean;
}

export interface SimResult {
  seed: number;
  nodes: number;
  rounds: number;
  committed: number;
  elections: number;
  crashes: number;
  confChanges: number;
  snapshotsSent: number;
  transfers: number;
  /** livenessWaived is 1 when the healed phase did not converge in a configuration where Raft does not promise it. */
  livenessWaived: number;
}

/** SimViolation is a broken safety or liveness property; its message names the seed. */
export class SimViolation extends Error {
  override name = 'SimViolation';
}

/** ELECTION_TICK is the longest election timeout a seed draws; liveness bounds are in its units. */
const ELECTION_TICK = 10;
/** MAX_PENDING_READIES bounds the Readies an asynchronous writer holds at once. */
const MAX_PENDING_READIES = 4;
/** MAX_IN_FLIGHT bounds the simulated network; beyond it new messages are dropped. */
const MAX_IN_FLIGHT = 5000;

interface StateMachine {
  applied: number;
  appliedTerm: number;
  digest: number;
  confState: ConfState;
}

interface SimNode {
  id: number;
  storage: SimStorage;
  rawNode: RawNode | undefined;
  /** pending are Readies taken (their `messages` sent) but not yet durable, oldest first. */
  pending: Ready[];
  sm: StateMachine;
  /** lastCommit is the commit index seen in this life of the node (never regresses). */
  lastCommit: number;
  /** restartAt is the round at which a crashed node comes back. */
  restartAt: number;
  lives: number;
  /** stopped nodes are outside the latest configuration and shut down in the liveness phase. */
  stopped: boolean;
  /** leaderTermChecked is the last term at which this node passed the leader completeness check. */
  leaderTermChecked: number;
}

interface InFlight {
  msg: Message;
  deliverAt: number;
}

interface Faults {
  dropRate: number;
  dupRate: number;
  maxDelay: number;
  partitionRate: number;
  crashRate: number;
  persistProb: number;
  proposeRate: number;
  confChangeRate: number;
  compactRate: number;
  readRate: number;
  transferRate: number;
  snapshotUnavailableRate: number;
  longDelayRate: number;
  requestSnapshotRate: number;
  /** tickRate[i] is the chance node i+1 ticks in a round of the faulty phase (clock drift). */
  tickRate: number[];
}

function fnv(h: number, x: number): number {
  h ^= x & 0xff;
  h = Math.imul(h, 16777619);
  h ^= (x >>> 8) & 0xff;
  h = Math.imul(h, 16777619);
  h ^= (x >>> 16) & 0xff;
  h = Math.imul(h, 16777619);
  h ^= x >>> 24;
  return Math.imul(h, 16777619) >>> 0;
}

function entryDigest(prev: number, e: Entry): number {
  let h = fnv(prev ^ 0x811c9dc5, e.index);
  h = fnv(h, e.term);
  h = fnv(h, e.entryType);
  for (let i = 0; i < e.data.length; i++) h = fnv(h, e.data[i]!);
  return h;
}

function payloadHash(e: Entry): number {
  let h = fnv(0x811c9dc5, e.entryType);
  for (let i = 0; i < e.data.length; i++) h = fnv(h, e.data[i]!);
  return h;
}

/**
 * SimStorage is MemoryStorage plus the membership as of the durably applied
 * index, reported by initialState() on restart (as raft-rs's MemStorage
 * keeps conf_state apart from the snapshot). MemoryStorage.setConfState
 * cannot serve here: it rewrites the stored snapshot's membership, which
 * would then be sent to followers with the wrong index.
 */
class SimStorage extends MemoryStorage {
  appliedConfState: ConfState = emptyConfState();
  /** sm is the node's durable state machine; snapshot() serves its current state, as TiKV generates one on demand. */
  sm: (() => StateMachine) | undefined;

  /** unavailable, when it returns true, makes snapshot() say the snapshot is still being generated. */
  unavailable: (() => boolean) | undefined;

  /** storedSnapshotIndex is the index of the snapshot last created or applied (not generated on demand). */
  storedSnapshotIndex(): number {
    return super.snapshot(0, 0).metadata.index;
  }

  override snapshot(requestIndex = 0, to = 0): Snapshot {
    if (this.unavailable?.() === true) throw new SnapshotTemporarilyUnavailableError();
    let snap = super.snapshot(requestIndex, to);
    const sm = this.sm?.();
    if (sm !== undefined && sm.applied > snap.metadata.index && sm.applied <= this.lastIndex()) {
      snap = this.createSnapshot(sm.applied, sm.confState, encodeSm(sm));
    }
    // A follower that requested a snapshot needs one covering its log
    // (raft-rs's contract): until the state machine gets there, "not yet".
    if (snap.metadata.index < requestIndex) throw new SnapshotTemporarilyUnavailableError();
    return snap;
  }

  override initialState(): RaftState {
    return { hardState: { ...this.hardState }, confState: this.appliedConfState };
  }

  override applySnapshot(snap: Snapshot): void {
    super.applySnapshot(snap);
    this.appliedConfState = snap.metadata.confState;
  }
}

function describeReadyShort(rd: Ready): string {
  const span = (es: Entry[]): string => (es.length === 0 ? '-' : `${es[0]!.index}..${es[es.length - 1]!.index}`);
  const snap = rd.snapshot !== undefined && rd.snapshot.metadata.index !== 0 ? ` snap=${rd.snapshot.metadata.index}` : '';
  const hs = rd.hardState !== undefined ? ` hs=${rd.hardState.term}/${rd.hardState.vote}/${rd.hardState.commit}` : '';
  return `#${rd.number}${snap}${hs} entries=${span(rd.entries)} committed=${span(rd.committedEntries)}`;
}

function cloneMessage(m: Message): Message {
  return { ...m, entries: m.entries.map((e) => ({ ...e })) };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function encodeSm(sm: StateMachine): Uint8Array {
  return enc.encode(JSON.stringify({ a: sm.applied, t: sm.appliedTerm, d: sm.digest }));
}

export class Simulation {
  readonly seed: number;
  private readonly rng: () => number;
  private readonly nodes: SimNode[] = [];
  private inFlight: InFlight[] = [];
  private round = 0;
  /** groups[id] is the partition group of node id; messages cross only within a group. */
  private groups = new Map<number, number>();
  private readonly faults: Faults;
  private readonly configBase: Omit<Config, 'id' | 'random' | 'applied'>;
  private readonly trace: ((line: string) => void) | undefined;
  /** async: the nodes persist through advanceAppendAsync/onPersistReady, several Readies outstanding. */
  private readonly async: boolean;

  // Checker state, over the whole run.
  private readonly leaderOfTerm = new Map<number, number>();
  /** digestAt[i] is the state machine digest after applying index i (first node to apply it). */
  private readonly digestAt = new Map<number, number>();
  /** confAt[i] is the membership after applying index i (canonical JSON). */
  private readonly confAt = new Map<number, string>();
  /** appliedTermAt[i] is the term of the entry applied at index i. */
  private readonly appliedTermAt = new Map<number, number>();
  /** payloadAt maps "index:term" to the payload hash first seen there. */
  private readonly payloadAt = new Map<string, number>();
  private maxApplied = 0;
  /** pendingReads maps a read request context to the minimum index its answer must have. */
  private readonly pendingReads = new Map<string, number>();
  private readCounter = 0;
  private proposalCounter = 0;
  /** livenessMarker is the payload the liveness phase waits for, once proposed. */
  private livenessMarkers = new Set<string>();
  private livenessAppliedBy = new Map<string, Set<number>>();

  private readonly stats = { elections: 0, crashes: 0, confChanges: 0, snapshotsSent: 0, transfers: 0, livenessWaived: 0 };

  constructor(private readonly opts: SimOptions) {
    this.seed = opts.seed;
    this.rng = mulberry32(opts.seed * 2654435761);
    this.trace = opts.trace;
    const r = this.rng;
    const total = opts.nodes ?? 3 + Math.floor(r() * 5);
    const initialVoters = total <= 3 ? total : r() < 0.5 ? 3 : Math.min(total, 5);
    this.faults = {
      dropRate: r() * 0.15,
      dupRate: r() * 0.05,
      maxDelay: Math.floor(r() * 4),
      partitionRate: r() * 0.03,
      crashRate: r() * 0.01,
      persistProb: 0.5 + r() * 0.5,
      proposeRate: 0.1 + r() * 0.5,
      confChangeRate: total > initialVoters || r() < 0.5 ? r() * 0.05 : 0,
      compactRate: r() * 0.05,
      readRate: r() * 0.1,
      transferRate: r() * 0.01,
      snapshotUnavailableRate: r() < 0.5 ? 0 : r() * 0.5,
      longDelayRate: r() < 0.5 ? 0 : r() * 0.02,
      requestSnapshotRate: r() < 0.5 ? 0 : r() * 0.01,
      tickRate: Array.from({ length: total }, () => 0.75 + r() * 0.25),
    };
    const checkQuorum = r() < 0.5;
    this.async = opts.async ?? r() < 0.5;
    const maxSizePerMsg = r() < 0.3 ? 0 : 1 + Math.floor(r() * 4096);
    this.configBase = {
      electionTick: r() < 0.7 ? ELECTION_TICK : 5 + Math.floor(r() * (ELECTION_TICK - 4)),
      heartbeatTick: 1 + Math.floor(r() * 2),
      disableProposalForwarding: r() < 0.2,
      skipBcastCommit: r() < 0.2,
      maxSizePerMsg,
      maxInflightMsgs: 1 + Math.floor(r() * 16),
      checkQuorum,
      preVote: r() < 0.5,
      readOnlyOption: 'safe',
      maxInflightBytes: r() < 0.7 ? 0 : maxSizePerMsg + Math.floor(r() * 4096),
      maxUncommittedEntriesSize: r() < 0.7 ? 0 : 32 + Math.floor(r() * 512),
      maxCommittedSizePerReady: r() < 0.5 ? 1 << 20 : Math.floor(r() * 256),
    };
    const voters = Array.from({ length: initialVoters }, (_, i) => i + 1);
    for (let id = 1; id <= total; id++) {
      const storage = new SimStorage();
      const sm: StateMachine = { applied: 0, appliedTerm: 0, digest: 0, confState: emptyConfState() };
      if (id <= initialVoters) {
        sm.applied = 1;
        sm.appliedTerm = 1;
        sm.confState = { ...emptyConfState(), voters: [...voters] };
        storage.applySnapshot({ data: encodeSm(sm), metadata: { index: 1, term: 1, confState: sm.confState } });
      }
      const node: SimNode = {
        id,
        storage,
        rawNode: undefined,
        pending: [],
        sm,
        lastCommit: 0,
        restartAt: 0,
        lives: 0,
        stopped: false,
        leaderTermChecked: 0,
      };
      storage.sm = () => node.sm;
      storage.unavailable = () => this.rng() < this.faults.snapshotUnavailableRate;
      this.nodes.push(node);
      this.start(node);
      this.groups.set(id, 0);
    }
    this.digestAt.set(1, 0);
    this.checkConfAt(this.nodes[0]!, 1, this.nodes[0]!.sm.confState);
    this.log(
      `seed=${this.seed} nodes=${total} voters=${initialVoters} async=${this.async} faults=${JSON.stringify(this.faults)} cfg=${JSON.stringify(this.configBase)}`,
    );
  }

  private log(line: string): void {
    this.trace?.(`[${this.round}] ${line}`);
  }

  private fail(what: string): never {
    throw new SimViolation(`seed ${this.seed} round ${this.round}: ${what}`);
  }

  // ---- node lifecycle ------------------------------------------------------

  private start(n: SimNode): void {
    n.lives++;
    const config: Config = {
      ...this.configBase,
      id: n.id,
      applied: n.sm.applied,
      random: mulberry32((this.seed * 31 + n.id) * 1009 + n.lives),
    };
    n.rawNode = new RawNode(config, n.storage);
    n.pending = [];
    if (this.trace !== undefined) {
      this.log(`node ${n.id} started: raft config ${JSON.stringify(n.rawNode.status().config)} hs ${JSON.stringify(n.storage.hardState)} applied ${n.sm.applied}`);
    }
    const persisted = n.storage.initialState().hardState.commit;
    const committed = n.rawNode.raft.raftLog.committed;
    if (committed < persisted) this.fail(`node ${n.id} restarted with commit ${committed} < persisted ${persisted}`);
    n.lastCommit = committed;
  }

  private crash(n: SimNode): void {
    this.log(`crash ${n.id}${n.pending.length > 0 ? ` (losing ${n.pending.length} unpersisted Readies)` : ''}`);
    this.stats.crashes++;
    n.rawNode = undefined;
    n.pending = [];
    n.restartAt = this.round + 5 + Math.floor(this.rng() * 40);
  }

  // ---- network -------------------------------------------------------------

  private send(from: SimNode, msgs: Message[], reliable: boolean): void {
    for (const m of msgs) {
      if (m.msgType === MessageType.MsgSnapshot) this.stats.snapshotsSent++;
      if (!reliable && this.rng() < this.faults.dropRate) {
        this.dropped(from, m);
        continue;
      }
      if (this.inFlight.length >= MAX_IN_FLIGHT) {
        this.dropped(from, m);
        continue;
      }
      // Every delivery gets its own copy, as off a real wire: raft takes
      // ownership of a stepped message (a leader stamps term and index into a
      // MsgProp's entries and keeps them in its log).
      // Now and then a message is held back for a long time (a slow link, a
      // retransmission): very stale messages must be harmless.
      const delay = reliable
        ? 0
        : this.rng() < this.faults.longDelayRate
          ? 10 + Math.floor(this.rng() * 60)
          : Math.floor(this.rng() * (this.faults.maxDelay + 1));
      this.inFlight.push({ msg: cloneMessage(m), deliverAt: this.round + delay });
      if (!reliable && this.rng() < this.faults.dupRate) {
        this.inFlight.push({ msg: cloneMessage(m), deliverAt: this.round + Math.floor(this.rng() * (this.faults.maxDelay + 2)) });
      }
    }
  }

  /** dropped tells the sender what a real transport would: a failed snapshot, sometimes an unreachable peer. */
  private dropped(from: SimNode, m: Message): void {
    const rn = from.rawNode;
    if (rn === undefined) return;
    if (m.msgType === MessageType.MsgSnapshot) rn.reportSnapshot(m.to, 'failure');
    else if (this.rng() < 0.05) rn.reportUnreachable(m.to);
  }

  private deliverDue(reliable: boolean): void {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.inFlight) (f.deliverAt <= this.round ? due : later).push(f);
    this.inFlight = later;
    for (const { msg } of due) {
      const to = this.nodes[msg.to - 1];
      const from = this.nodes[msg.from - 1];
      if (to === undefined || from === undefined) this.fail(`message to/from unknown node: ${describeMessage(msg)}`);
      const cut = this.groups.get(msg.from) !== this.groups.get(msg.to);
      if (to.rawNode === undefined || to.stopped || cut) {
        this.dropped(from, msg);
        continue;
      }
      this.trace?.(`[${this.round}] deliver ${describeMessage(msg)}`);
      this.step(to, msg);
      if (msg.msgType === MessageType.MsgSnapshot) from.rawNode?.reportSnapshot(msg.to, 'finish');
    }
  }

  private step(n: SimNode, m: Message): void {
    try {
      n.rawNode!.step(m);
    } catch (err) {
      // Expected: a response from a peer no longer in the configuration, or a
      // forwarded proposal reaching a node that has no leader to pass it on to.
      if (err instanceof RaftError && (err.name === 'StepPeerNotFoundError' || err.name === 'ProposalDroppedError')) return;
      throw err;
    }
  }

  // ---- Ready handling -------------------------------------------------------

  /**
   * takeReady takes a Ready and sends what may go at once. With asynchronous
   * persistence the Ready is handed to the (simulated) append queue and its
   * committed entries are applied now: raft hands out only durable ones.
   */
  private takeReady(n: SimNode): void {
    const rn = n.rawNode!;
    const rd = rn.ready();
    if (this.trace !== undefined) this.log(`node ${n.id} ready ${describeReadyShort(rd)}`);
    n.pending.push(rd);
    this.send(n, rd.messages, this.healing);
    if (this.opts.inject === 'ack-before-persist') this.send(n, rd.persistedMessages, this.healing);
    if (this.async) {
      this.applyEntries(n, rd.committedEntries);
      for (const rs of rd.readStates) this.checkRead(n, rs.index, dec.decode(rs.requestCtx));
      rn.advanceAppendAsync(rd);
      this.persistAppliedCommit(n);
      rn.advanceApply();
    }
  }

  /** persistOldest makes the oldest taken Ready durable, then does what waited on that. */
  private persistOldest(n: SimNode): void {
    const rd = n.pending.shift()!;
    const rn = n.rawNode!;
    if (rd.snapshot !== undefined && rd.snapshot.metadata.index !== 0) this.restoreSnapshot(n, rd.snapshot);
    if (rd.entries.length > 0) {
      for (const e of rd.entries) this.checkPayload(n, e);
      n.storage.append(rd.entries);
    }
    if (rd.hardState !== undefined && this.opts.inject !== 'lose-hardstate') {
      // An older Ready must not lower a commit already made durable with an apply.
      const commit = Math.max(rd.hardState.commit, n.storage.hardState.commit);
      n.storage.setHardState({ ...rd.hardState, commit });
    }
    if (this.opts.inject !== 'ack-before-persist') this.send(n, rd.persistedMessages, this.healing);
    if (this.async) {
      rn.onPersistReady(rd.number);
      return;
    }
    this.applyEntries(n, rd.committedEntries);
    for (const rs of rd.readStates) this.checkRead(n, rs.index, dec.decode(rs.requestCtx));
    // LightReady.commitIndex is not persisted as such: it may cover entries
    // appended (by steps) after this Ready was taken and not yet durable; the
    // next Ready's hardState reports it together with those entries.
    const lr = rn.advance(rd);
    this.send(n, lr.messages, this.healing);
    this.applyEntries(n, lr.committedEntries);
    this.persistAppliedCommit(n);
    rn.advanceApply();
  }

  /**
   * persistAppliedCommit makes the durable commit cover what the state
   * machine durably applied (a restart requires applied <= commit); applied
   * entries are durable, which applyEntries checks.
   */
  private persistAppliedCommit(n: SimNode): void {
    const hs = n.storage.hardState;
    if (hs.commit < n.sm.applied && this.opts.inject !== 'lose-hardstate') n.storage.setHardState({ ...hs, commit: n.sm.applied });
  }

  private restoreSnapshot(n: SimNode, snap: Snapshot): void {
    const s = snap.metadata;
    const data = JSON.parse(dec.decode(snap.data)) as { a: number; t: number; d: number };
    if (data.a !== s.index || data.t !== s.term) this.fail(`node ${n.id}: snapshot metadata ${s.index}/${s.term} != data ${data.a}/${data.t}`);
    const want = this.digestAt.get(s.index);
    if (want !== undefined && want !== data.d) this.fail(`node ${n.id}: snapshot at ${s.index} has digest ${data.d}, applied state there was ${want}`);
    if (s.index < n.sm.applied) this.fail(`node ${n.id}: snapshot ${s.index} below applied ${n.sm.applied}`);
    if (s.index > n.storage.storedSnapshotIndex()) {
      n.storage.applySnapshot(snap);
    } else {
      // A requested snapshot (requestSnapshot) may be at the very index this
      // node already snapshotted itself; MemoryStorage refuses it as out of
      // date, and there is nothing to replace as long as no entry follows.
      if (n.storage.lastIndex() > s.index) this.fail(`node ${n.id}: snapshot ${s.index} not newer than the stored one, but the log goes on to ${n.storage.lastIndex()}`);
      n.storage.appliedConfState = s.confState;
    }
    n.sm = { applied: s.index, appliedTerm: s.term, digest: data.d, confState: s.confState };
    this.checkConfAt(n, s.index, s.confState);
    this.log(`node ${n.id} restored snapshot ${s.index}/${s.term}`);
  }

  private applyEntries(n: SimNode, entries: Entry[]): void {
    for (const e of entries) {
      if (e.index !== n.sm.applied + 1) this.fail(`node ${n.id} applies ${e.index} after ${n.sm.applied}`);
      const st = n.storage;
      if (e.index > st.lastIndex() || (e.index >= st.firstIndex() && st.term(e.index) !== e.term)) {
        this.fail(`node ${n.id} was handed committed entry ${e.term}/${e.index} before it was durable`);
      }
      const digest = entryDigest(n.sm.digest, e);
      const known = this.digestAt.get(e.index);
      if (known === undefined) this.digestAt.set(e.index, digest);
      else if (known !== digest) this.fail(`state machine safety: node ${n.id} applied a different entry at ${e.index} (term ${e.term})`);
      const knownTerm = this.appliedTermAt.get(e.index);
      if (knownTerm === undefined) this.appliedTermAt.set(e.index, e.term);
      this.maxApplied = Math.max(this.maxApplied, e.index);
      // Raft applies a conf change first; the state machine (index, digest,
      // membership) then moves in one step. applyConfChange may ask storage
      // for a snapshot, which must never pair the new index with the old
      // membership.
      const cc = entryConfChange(e);
      if (cc !== undefined && this.trace !== undefined) {
        this.log(`node ${n.id} applies conf change ${e.term}/${e.index} ${JSON.stringify(cc)} to raft config ${JSON.stringify(n.rawNode!.status().config)}`);
      }
      const confState = cc !== undefined ? n.rawNode!.applyConfChange(cc) : n.sm.confState;
      n.sm = { applied: e.index, appliedTerm: e.term, digest, confState };
      this.checkConfAt(n, e.index, confState);
      if (cc !== undefined) {
        n.storage.appliedConfState = confState;
        this.log(`node ${n.id} applied conf change at ${e.index}: ${JSON.stringify(confState)}`);
      } else if (e.data.length > 0) {
        const p = dec.decode(e.data);
        if (this.livenessMarkers.has(p)) {
          let s = this.livenessAppliedBy.get(p);
          if (s === undefined) this.livenessAppliedBy.set(p, (s = new Set()));
          s.add(n.id);
        }
      }
    }
  }

  // ---- checkers --------------------------------------------------------------

  /** checkConfAt: every node's membership after applying index i is the same (configuration safety). */
  private checkConfAt(n: SimNode, index: number, cs: ConfState): void {
    const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
    const key = JSON.stringify([sorted(cs.voters), sorted(cs.votersOutgoing), sorted(cs.learners), sorted(cs.learnersNext), cs.autoLeave]);
    const known = this.confAt.get(index);
    if (known === undefined) this.confAt.set(index, key);
    else if (known !== key) this.fail(`configuration safety: node ${n.id} has membership ${key} after index ${index}, others ${known}`);
  }

  private checkPayload(n: SimNode, e: Entry): void {
    const key = `${e.index}:${e.term}`;
    const h = payloadHash(e);
    const known = this.payloadAt.get(key);
    if (known === undefined) this.payloadAt.set(key, h);
    else if (known !== h) this.fail(`log matching: node ${n.id} persisted a different entry at index ${e.index} term ${e.term}`);
  }

  private checkRead(n: SimNode, index: number, ctx: string): void {
    const min = this.pendingReads.get(ctx);
    if (min === undefined) return; // a duplicate answer
    this.pendingReads.delete(ctx);
    if (index < min) this.fail(`linearizability: node ${n.id} read ${ctx} at index ${index}, but ${min} was committed before the read`);
  }

  private maxCommitted(): number {
    let c = 0;
    for (const n of this.nodes) if (n.rawNode !== undefined) c = Math.max(c, n.rawNode.raft.raftLog.committed);
    return c;
  }

  private checkAfterRound(): void {
    for (const n of this.nodes) {
      const rn = n.rawNode;
      if (rn === undefined) continue;
      const r = rn.raft;
      const committed = r.raftLog.committed;
      if (committed < n.lastCommit) this.fail(`node ${n.id} commit regressed ${n.lastCommit} -> ${committed}`);
      n.lastCommit = committed;
      if (r.state === 'Leader') {
        const prev = this.leaderOfTerm.get(r.term);
        if (prev === undefined) {
          this.leaderOfTerm.set(r.term, n.id);
          this.stats.elections++;
          this.log(`node ${n.id} is leader at term ${r.term}`);
        } else if (prev !== n.id) this.fail(`election safety: nodes ${prev} and ${n.id} are both leader at term ${r.term}`);
        if (n.leaderTermChecked !== r.term) {
          n.leaderTermChecked = r.term;
          this.checkLeaderCompleteness(n);
        }
      }
    }
  }

  /** checkLeaderCompleteness: a leader's log holds every entry applied anywhere (Raft §5.4). */
  private checkLeaderCompleteness(n: SimNode): void {
    const log = n.rawNode!.raft.raftLog;
    const last = log.lastIndex();
    const from = Math.max(n.storage.firstIndex(), 1);
    for (let i = from; i <= this.maxApplied; i++) {
      const want = this.appliedTermAt.get(i);
      if (want === undefined) continue;
      if (i > last) this.fail(`leader completeness: leader ${n.id} (term ${n.rawNode!.raft.term}) lacks applied index ${i} (last ${last})`);
      let got: number;
      try {
        got = log.term(i);
      } catch {
        continue; // compacted under a snapshot the leader holds
      }
      if (got !== 0 && got !== want) {
        this.fail(`leader completeness: leader ${n.id} has term ${got} at applied index ${i}, expected ${want}`);
      }
    }
  }

  /** checkLogMatching: if two logs hold the same term at an index, they agree on every earlier index. */
  checkLogMatching(): void {
    const logs: { id: number; first: number; terms: number[] }[] = [];
    for (const n of this.nodes) {
      if (n.rawNode === undefined) continue;
      const ents = n.rawNode.raft.raftLog.allEntries();
      if (ents.length === 0) continue;
      logs.push({ id: n.id, first: ents[0]!.index, terms: ents.map((e) => e.term) });
    }
    for (let a = 0; a < logs.length; a++) {
      for (let b = a + 1; b < logs.length; b++) {
        const x = logs[a]!;
        const y = logs[b]!;
        const lo = Math.max(x.first, y.first);
        const hi = Math.min(x.first + x.terms.length, y.first + y.terms.length) - 1;
        let matched = false;
        for (let i = hi; i >= lo; i--) {
          const tx = x.terms[i - x.first]!;
          const ty = y.terms[i - y.first]!;
          if (tx === ty) matched = true;
          else if (matched) this.fail(`log matching: nodes ${x.id} and ${y.id} agree above index ${i} but differ at it (${tx} vs ${ty})`);
        }
      }
    }
  }

  // ---- workload and faults -----------------------------------------------------

  private get healing(): boolean {
    return this.phase === 'liveness';
  }
  private phase: 'safety' | 'liveness' = 'safety';

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes) {
      const r = n.rawNode?.raft;
      if (r === undefined || r.state !== 'Leader' || n.stopped) continue;
      if (best === undefined || r.term > best.rawNode!.raft.term) best = n;
    }
    return best;
  }

  private upNodes(): SimNode[] {
    return this.nodes.filter((n) => n.rawNode !== undefined && !n.stopped);
  }

  private pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[Math.floor(this.rng() * xs.length)];
  }

  private propose(n: SimNode, data: string): boolean {
    try {
      n.rawNode!.propose(enc.encode(data));
      return true;
    } catch (err) {
      if (err instanceof RaftError) return false;
      throw err;
    }
  }

  private maybeConfChange(): void {
    const l = this.leader();
    if (l === undefined) return;
    const cs = l.sm.confState;
    const rn = l.rawNode!;
    const members = new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
    const outsiders = this.nodes.filter((n) => !members.has(n.id)).map((n) => n.id);
    const learners = cs.learners;
    // Now and then the leader removes or demotes itself: it keeps leading a
    // configuration it is not part of until it is replaced (etcd's default).
    const r = this.rng;
    const removableVoters = r() < 0.1 ? cs.voters : cs.voters.filter((v) => v !== l.id);
    let changes: ConfChangeSingle[] = [];
    let transition: ConfChangeTransition = ConfChangeTransition.Auto;
    if (cs.votersOutgoing.length > 0) {
      if (cs.autoLeave) return;
      changes = []; // leave an explicit joint configuration
    } else {
      const choice = r();
      const outsider = this.pick(outsiders);
      const learner = this.pick(learners);
      const voter = this.pick(removableVoters);
      if (choice < 0.3 && outsider !== undefined) {
        changes = [{ changeType: r() < 0.5 ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, nodeId: outsider }];
      } else if (choice < 0.5 && learner !== undefined) {
        changes = [{ changeType: ConfChangeType.AddNode, nodeId: learner }];
      } else if (choice < 0.7 && voter !== undefined && cs.voters.length > 3) {
        changes = [{ changeType: ConfChangeType.RemoveNode, nodeId: voter }];
      } else if (choice < 0.8 && learner !== undefined) {
        changes = [{ changeType: ConfChangeType.RemoveNode, nodeId: learner }];
      } else if (choice < 0.85 && voter !== undefined && cs.voters.length > 3) {
        // Demote a voter to learner: joint consensus with learnersNext.
        changes = [{ changeType: ConfChangeType.AddLearnerNode, nodeId: voter }];
        transition = r() < 0.5 ? ConfChangeTransition.Auto : ConfChangeTransition.Explicit;
      } else if (outsider !== undefined && voter !== undefined) {
        // A replacement: joint consensus.
        changes = [
          { changeType: ConfChangeType.AddNode, nodeId: outsider },
          { changeType: ConfChangeType.RemoveNode, nodeId: voter },
        ];
        transition = r() < 0.7 ? ConfChangeTransition.Auto : ConfChangeTransition.Explicit;
      } else return;
    }
    const useV1 = changes.length === 1 && r() < 0.4;
    this.log(`propose conf change at ${l.id}: ${JSON.stringify(changes)} v1=${useV1} transition=${transition}`);
    try {
      if (useV1) rn.proposeConfChange({ changeType: changes[0]!.changeType, nodeId: changes[0]!.nodeId });
      else rn.proposeConfChange({ transition, changes });
      this.stats.confChanges++;
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
  }

  /** maybeTransferLeader asks the leader to hand over to a random voter (it may time out and abort). */
  private maybeTransferLeader(): void {
    const l = this.leader();
    if (l === undefined) return;
    const to = this.pick(l.sm.confState.voters.filter((v) => v !== l.id));
    if (to === undefined) return;
    this.log(`transfer leadership ${l.id} -> ${to}`);
    this.stats.transfers++;
    l.rawNode!.transferLeader(to);
  }

  private maybeCompact(n: SimNode): void {
    const s = n.storage;
    const applied = n.sm.applied;
    const snapIndex = s.storedSnapshotIndex();
    if (applied <= snapIndex || applied > s.lastIndex()) return;
    s.createSnapshot(applied, n.sm.confState, encodeSm(n.sm));
    const keep = Math.floor(this.rng() * 8);
    const to = applied - keep;
    if (to >= s.firstIndex()) s.compact(to);
    this.log(`node ${n.id} snapshot at ${applied}, compacted to ${to}`);
  }

  private changePartition(): void {
    const r = this.rng;
    if (r() < 0.4) {
      for (const n of this.nodes) this.groups.set(n.id, 0);
      this.log('partition healed');
      return;
    }
    for (const n of this.nodes) this.groups.set(n.id, r() < 0.5 ? 0 : 1);
    this.log(`partition ${JSON.stringify([...this.groups])}`);
  }

  /** readyRound handles every live node's Readies, persisting each with probability p (1 when healing). */
  private readyRound(p: number): void {
    const cap = this.async ? MAX_PENDING_READIES : 1;
    for (const n of this.nodes) {
      if (n.rawNode === undefined || n.stopped) continue;
      for (let k = 0; k < 3; k++) {
        let acted = false;
        if (n.pending.length > 0 && this.rng() < p) {
          this.persistOldest(n);
          acted = true;
        }
        if (n.pending.length < cap && n.rawNode.hasReady()) {
          this.takeReady(n);
          acted = true;
        }
        if (!acted) break;
      }
    }
  }

  private roundStep(): void {
    this.round++;
    const f = this.faults;
    const r = this.rng;
    const safety = this.phase === 'safety';
    if (safety) {
      if (r() < f.partitionRate) this.changePartition();
      for (const n of this.nodes) {
        if (n.rawNode === undefined && !n.stopped && this.round >= n.restartAt) {
          this.log(`restart ${n.id} applied=${n.sm.applied}`);
          this.start(n);
        } else if (n.rawNode !== undefined && r() < f.crashRate) this.crash(n);
      }
    }
    for (const n of this.nodes) {
      // Clocks drift: each node ticks at its own rate while faults are on.
      if (n.rawNode !== undefined && !n.stopped && (!safety || r() < f.tickRate[n.id - 1]!)) n.rawNode.tick();
    }
    this.deliverDue(!safety);
    if (safety) {
      if (r() < f.proposeRate) {
        const n = r() < 0.7 ? (this.leader() ?? this.pick(this.upNodes())) : this.pick(this.upNodes());
        if (n !== undefined) this.propose(n, `p${this.proposalCounter++}`);
      }
      if (r() < f.confChangeRate) this.maybeConfChange();
      if (r() < f.transferRate) this.maybeTransferLeader();
      if (r() < f.requestSnapshotRate) {
        const n = this.pick(this.upNodes().filter((x) => x.rawNode!.raft.state === 'Follower'));
        if (n !== undefined) {
          try {
            n.rawNode!.requestSnapshot();
            this.log(`node ${n.id} requests a snapshot`);
          } catch (err) {
            if (!(err instanceof RaftError)) throw err;
          }
        }
      }
      if (r() < f.compactRate) {
        const n = this.pick(this.upNodes());
        if (n !== undefined) this.maybeCompact(n);
      }
      if (r() < f.readRate) {
        const n = this.pick(this.upNodes());
        if (n !== undefined) {
          const ctx = `r${this.readCounter++}`;
          this.pendingReads.set(ctx, this.maxCommitted());
          n.rawNode!.readIndex(enc.encode(ctx));
        }
      }
    }
    this.readyRound(safety ? f.persistProb : 1);
    this.checkAfterRound();
    if (this.round % 50 === 0) this.checkLogMatching();
  }

  /** heal ends every fault and brings the membership's nodes up. */
  private heal(): void {
    this.phase = 'liveness';
    for (const n of this.nodes) this.groups.set(n.id, 0);
    this.reconcileMembers();
  }

  /**
   * reconcileMembers runs every node of the latest applied configuration and
   * shuts the others down, as a host destroys removed peers (so that a
   * removed node cannot keep disrupting elections). A conf change proposed
   * before healing may still commit later and re-add a stopped node, so this
   * runs every healed round.
   */
  private reconcileMembers(): void {
    let latest = this.nodes[0]!;
    for (const n of this.nodes) if (n.sm.applied > latest.sm.applied) latest = n;
    const cs = latest.sm.confState;
    const members = new Set([...cs.voters, ...cs.learners, ...cs.votersOutgoing, ...cs.learnersNext]);
    for (const n of this.nodes) {
      if (!members.has(n.id)) {
        if (!n.stopped) this.log(`stop removed node ${n.id}`);
        n.stopped = true;
        n.rawNode = undefined;
        n.pending = [];
      } else if (n.rawNode === undefined) {
        n.stopped = false;
        this.log(`start member ${n.id}`);
        this.start(n);
      }
    }
  }

  run(): SimResult {
    const rounds = this.opts.rounds ?? 2000;
    for (let i = 0; i < rounds; i++) this.roundStep();
    this.checkLogMatching();
    this.heal();
    const bound = this.opts.livenessRounds ?? 150 * ELECTION_TICK;
    let marker: string | undefined;
    let proposedAt = 0;
    for (let i = 0; i < bound; i++) {
      this.reconcileMembers();
      this.roundStep();
      const l = this.leader();
      if (l !== undefined && (marker === undefined || this.round - proposedAt > 3 * ELECTION_TICK)) {
        const m = `live-${this.round}`;
        this.livenessMarkers.add(m);
        if (this.propose(l, m)) {
          marker = m;
          proposedAt = this.round;
        }
      }
      if (l !== undefined && l.sm.confState.votersOutgoing.length > 0 && !l.sm.confState.autoLeave && i % 20 === 0) {
        try {
          l.rawNode!.proposeConfChange({ transition: ConfChangeTransition.Auto, changes: [] });
        } catch (err) {
          if (!(err instanceof RaftError)) throw err;
        }
      }
      if (this.livenessDone()) {
        this.checkLogMatching();
        return {
          seed: this.seed,
          nodes: this.nodes.length,
          rounds: this.round,
          committed: this.maxApplied,
          ...this.stats,
        };
      }
    }
    if (!this.livenessExpected()) {
      // Without pre-vote, a voter left with a stale configuration can
      // campaign forever at ever higher terms that the rest never hears of
      // (lower-term messages are ignored): etcd and raft-rs have the same
      // limitation, so this is not a violation.
      this.stats.livenessWaived++;
      this.checkLogMatching();
      return { seed: this.seed, nodes: this.nodes.length, rounds: this.round, committed: this.maxApplied, ...this.stats };
    }
    const states = this.nodes
      .map((n) => `${n.id}:${n.stopped ? 'stopped' : (n.rawNode?.raft.state ?? 'down')}@${n.rawNode?.raft.term ?? '-'} applied=${n.sm.applied} cs=${JSON.stringify(n.sm.confState.voters)}`)
      .join(' ');
    this.fail(`liveness: no proposal was applied by every voter within ${bound} healed rounds (${states})`);
  }

  /**
   * livenessExpected: a healed group must make progress unless it runs
   * without pre-vote AND had membership changes (the only way a voter with a
   * stale configuration appears, see run()). Check-quorum alone does not
   * help: the stale voter's higher term reaches only its stale peers, and
   * lower-term vote requests are ignored, so no candidate ever learns it
   * (seed 602899).
   */
  private livenessExpected(): boolean {
    return this.configBase.preVote === true || this.stats.confChanges === 0;
  }

  /**
   * livenessDone: some liveness proposal is applied by a majority of the
   * voters of the latest configuration (of both halves when joint), i.e. it
   * committed and the state machines moved on. Not every voter: a node that
   * a removed peer pushed to a higher term may ignore the leader forever
   * without pre-vote or check-quorum (etcd behaves the same).
   */
  private livenessDone(): boolean {
    let latest = this.nodes[0]!;
    for (const n of this.nodes) if (n.sm.applied > latest.sm.applied) latest = n;
    const cs = latest.sm.confState;
    const majority = (ids: number[], by: Set<number>): boolean =>
      ids.length === 0 || ids.filter((v) => by.has(v)).length > ids.length / 2;
    for (const [, by] of this.livenessAppliedBy) {
      if (majority(cs.voters, by) && majority(cs.votersOutgoing, by)) return true;
    }
    return false;
  }
}

/** runSeed runs one seed and returns its result; a violation throws SimViolation. */
export function runSeed(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}

/** replayCommand is what a failing seed prints so that a human can rerun it with a trace. */
export function replayCommand(seed: number, opts: Omit<SimOptions, 'seed' | 'trace'> = {}): string {
  let cmd = `pnpm sim:raft --seeds 1 --start ${seed}`;
  if (opts.nodes !== undefined) cmd += ` --nodes ${opts.nodes}`;
  if (opts.rounds !== undefined) cmd += ` --rounds ${opts.rounds}`;
  if (opts.async !== undefined) cmd += ` --async ${opts.async ? 'on' : 'off'}`;
  if (opts.inject !== undefined) cmd += ` --inject ${opts.inject}`;
  return `${cmd} --trace`;
}
