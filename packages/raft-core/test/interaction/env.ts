// env: InteractionEnv, the harness behind the data-driven interaction tests
// (etcd raft's rafttest.InteractionEnv). It holds N RawNodes, each over its
// own MemoryStorage, one queue of in-flight messages, and an output buffer
// into which every command handler, and raft's own logger, write text. The
// test compares that text with the expectation in testdata/*.txt.
//
// Commands (node ids are 1-based, in order of creation):
//   add-nodes N [voters=(1,2,3)] [learners=(4)] [index=I] [checkquorum=true]
//             [prevote=true] [read-only=safe|lease-based] [max-inflight=N]
//             [max-size-per-msg=B] [max-uncommitted-size=B]
//             [max-committed-size-per-ready=B] [disable-proposal-forwarding=true]
//             [election-tick=T] [heartbeat-tick=T] [async-storage-writes=true]
//       With voters/learners the storage is bootstrapped by a snapshot at
//       index I (default 1, term 1); without, the node starts empty.
//   campaign ID | propose ID DATA | read-index ID CTX | transfer-leadership from=A to=B
//   propose-conf-change ID [v1=true] [transition=auto|implicit|explicit]
//       with changes inline or on the next input line: v2 (add voter) l3
//       (add learner) r4 (remove); no changes = leave the joint configuration.
//   tick ID [count=N] | tick-election ID | tick-heartbeat ID
//   process-ready [IDS...] [defer-apply=true] | apply ID | process-append-thread [IDS...]
//       defer-apply persists and sends but holds the committed entries until
//       `apply ID` (a lagging apply); process-append-thread is for async nodes.
//   deliver-msgs [IDS...] [drop=(IDS)] [type=MsgApp] [count=N]
//   duplicate-msgs ID [type=MsgSnapshot]: queue a copy of ID's messages (retransmission)
//   request-snapshot ID: the follower asks its leader for a snapshot
//   stabilize [IDS...]: Ready, append thread and delivery rounds until quiet.
//   isolate IDS... | heal: drop every message to/from isolated nodes when sent.
//   report-unreachable ID PEER | report-snapshot ID PEER finish|failure
//   compact ID INDEX: snapshot the applied state at INDEX and truncate the log.
//   restart ID: rebuild the node from its durable storage.
//   status ID | conf-state ID | raft-log ID | raft-state | log-level debug|info|warn|error|none
// Raft's typed errors print as "ERROR: <ErrorClass>"; anything else fails the test.
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  MemoryStorage,
  RaftError,
  RawNode,
  SnapshotTemporarilyUnavailableError,
  StorageError,
  emptyConfState,
  entryConfChange,
  mulberry32,
} from './core';
import type {
  Config,
  ConfChangeSingle,
  ConfChangeV2,
  ConfState,
  Entry,
  Logger,
  Message,
  RaftState,
  Ready,
  Snapshot,
} from './core';
import { Args } from './datadriven';
import type { TestCase } from './datadriven';
import {
  bytes,
  describeConfState,
  describeEntry,
  describeHardState,
  describeMessage,
  describeReady,
  describeSnapshot,
  messageTypeName,
  text,
} from './format';

const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'none'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];

/** AppliedState is one point of a node's state machine history: what a snapshot at `index` holds. */
interface AppliedState {
  index: number;
  term: number;
  confState: ConfState;
  /** data is the state machine: the applied normal entries' data, joined. */
  data: string;
}

/**
 * EnvStorage serves raft a snapshot of the node's CURRENT applied state, as
 * etcd's interaction env (snapOverrideStorage) and a real host do: a
 * snapshot sent to a new peer must already contain that peer in its
 * ConfState, or the peer rightly refuses it.
 */
class EnvStorage extends MemoryStorage {
  current: (() => AppliedState) | undefined;

  /** storedSnapshotIndex is the index of the snapshot last created or applied. */
  storedSnapshotIndex(): number {
    return super.snapshot(0, 0).metadata.index;
  }

  /**
   * initialState reports the membership of the applied state (not the one
   * in the stored snapshot), as a host persists its conf state with its
   * applied index; `restart` relies on it.
   */
  override initialState(): RaftState {
    const st = this.current?.();
    const base = super.initialState();
    return st === undefined || st.index === 0 ? base : { hardState: base.hardState, confState: st.confState };
  }

  /**
   * snapshot follows raft-rs's contract for a requested snapshot: its index
   * is at least requestIndex. A host generates one from its applied state
   * (TiKV), so until the state machine reaches requestIndex it answers
   * "temporarily unavailable" and raft retries later.
   */
  override snapshot(requestIndex = 0, to = 0): Snapshot {
    const st = this.current?.();
    if (st === undefined || st.index === 0) return super.snapshot(requestIndex, to);
    if (st.index < requestIndex) throw new SnapshotTemporarilyUnavailableError();
    return { data: bytes(st.data), metadata: { index: st.index, term: st.term, confState: st.confState } };
  }
}

/** EnvNode is one peer of the environment. */
interface EnvNode {
  id: number;
  rawNode: RawNode;
  storage: EnvStorage;
  config: Config;
  async: boolean;
  /** deferred is a persisted Ready whose committed entries the host has not applied yet (defer-apply). */
  deferred?: Ready;
  /** appendQueue holds Readies handed to the (simulated) append thread, not yet durable. */
  appendQueue: Ready[];
  /** history[last] is the current state machine; earlier ones serve `compact`. */
  history: AppliedState[];
}

/** MAX_STABILIZE_ROUNDS bounds `stabilize` so that a livelock fails the test instead of hanging it. */
const MAX_STABILIZE_ROUNDS = 200;

export class InteractionEnv {
  readonly nodes: EnvNode[] = [];
  /** messages are in flight, in the order they were sent. */
  messages: Message[] = [];
  /** isolated nodes neither send nor receive: their messages are dropped when sent. */
  readonly isolated = new Set<number>();
  logLevel: LogLevel = 'none';
  private out: string[] = [];
  private indent = '';
  private readonly random = mulberry32(1);

  /** handle runs one test case and returns its output ("ok" when it printed nothing). */
  handle(tc: TestCase): string {
    this.out = [];
    this.indent = '';
    const a = new Args(tc);
    try {
      this.dispatch(tc, a);
    } catch (err) {
      if (err instanceof HarnessError) this.write(`ERROR: ${err.message}`);
      else throw err;
    }
    const s = this.out.join('\n');
    return s === '' ? 'ok' : s;
  }

  private dispatch(tc: TestCase, a: Args): void {
    switch (tc.cmd) {
      case 'add-nodes':
        return this.handleAddNodes(a);
      case 'campaign':
        return this.call(() => this.node(this.firstId(a)).rawNode.campaign());
      case 'propose': {
        const [id, data] = a.positional();
        return this.call(() => this.node(toInt(id)).rawNode.propose(bytes(data ?? '')));
      }
      case 'propose-conf-change':
        return this.handleProposeConfChange(tc, a);
      case 'stabilize':
        return this.stabilize(this.idsOrAll(a));
      case 'process-ready': {
        const ids = this.idsOrAll(a);
        const defer = a.bool('defer-apply') ?? false;
        for (const id of ids) this.withHeader(`> ${id} handling Ready`, ids.length > 1, () => this.processReady(id, defer));
        return;
      }
      case 'apply':
        return this.applyDeferred(this.node(this.firstId(a)));
      case 'process-append-thread':
        for (const id of this.idsOrAll(a)) this.processAppendThread(id);
        return;
      case 'deliver-msgs':
        return this.handleDeliverMsgs(a);
      case 'tick-election': {
        const n = this.node(this.firstId(a));
        return this.tick(n, n.config.electionTick);
      }
      case 'tick-heartbeat': {
        const n = this.node(this.firstId(a));
        return this.tick(n, n.config.heartbeatTick);
      }
      case 'tick': {
        const n = this.node(this.firstId(a));
        return this.tick(n, a.int('count') ?? 1);
      }
      case 'transfer-leadership': {
        const from = a.int('from');
        const to = a.int('to');
        if (from === undefined || to === undefined) throw new HarnessError('transfer-leadership needs from= and to=');
        return this.call(() => this.node(from).rawNode.transferLeader(to));
      }
      case 'read-index': {
        const [id, ctx] = a.positional();
        return this.call(() => this.node(toInt(id)).rawNode.readIndex(bytes(ctx ?? '')));
      }
      case 'request-snapshot':
        return this.call(() => this.node(this.firstId(a)).rawNode.requestSnapshot());
      case 'duplicate-msgs': {
        // Queue a second copy of every in-flight message to ID (of `type`):
        // a retransmission, delivered after whatever is already queued.
        const id = this.firstId(a);
        const type = a.str('type');
        const copies = this.split(id, type).mine.map((m) => ({ ...m, entries: m.entries.map((e) => ({ ...e })) }));
        for (const m of copies) this.write(`duplicated: ${describeMessage(m)}`);
        this.messages.push(...copies);
        return;
      }
      case 'report-unreachable': {
        const [id, peer] = a.positional();
        return this.call(() => this.node(toInt(id)).rawNode.reportUnreachable(toInt(peer)));
      }
      case 'report-snapshot': {
        const [id, peer, status] = a.positional();
        if (status !== 'finish' && status !== 'failure') throw new HarnessError('report-snapshot id peer finish|failure');
        return this.call(() => this.node(toInt(id)).rawNode.reportSnapshot(toInt(peer), status));
      }
      case 'compact': {
        const [id, index] = a.positional();
        return this.compact(this.node(toInt(id)), toInt(index));
      }
      case 'restart':
        return this.restart(this.node(this.firstId(a)));
      case 'conf-state':
        return this.write(`${this.firstId(a)}: ${describeConfState(this.node(this.firstId(a)).rawNode.status().config)}`);
      case 'status':
        return this.handleStatus(this.node(this.firstId(a)));
      case 'raft-log':
        return this.handleRaftLog(this.node(this.firstId(a)));
      case 'raft-state':
        return this.handleRaftState();
      case 'log-level': {
        const [lvl] = a.positional();
        if (!LOG_LEVELS.includes(lvl as LogLevel)) throw new HarnessError(`unknown log level ${lvl}`);
        this.logLevel = lvl as LogLevel;
        return;
      }
      case 'isolate':
        for (const id of a.positional()) this.isolated.add(toInt(id));
        return;
      case 'heal':
        this.isolated.clear();
        return;
      default:
        throw new Error(`line ${tc.line}: unknown command ${tc.cmd}`);
    }
  }

  // ---- output ----------------------------------------------------------

  write(line: string): void {
    for (const l of line.split('\n')) this.out.push(this.indent + l);
  }

  private withIndent(fn: () => void): void {
    const saved = this.indent;
    this.indent += '  ';
    try {
      fn();
    } finally {
      this.indent = saved;
    }
  }

  private withHeader(header: string, show: boolean, fn: () => void): void {
    if (!show) return fn();
    this.write(header);
    this.withIndent(fn);
  }

  /** call runs a RawNode input and prints a raft error (by class name) instead of failing. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // Only the typed, expected errors are output; anything else is a bug.
      if (err instanceof RaftError || err instanceof StorageError) this.write(`ERROR: ${err.name}`);
      else throw err;
    }
  }

  private makeLogger(id: number): Logger {
    const log =
      (level: LogLevel) =>
      (msg: string, fields?: Record<string, unknown>): void => {
        if (LOG_LEVELS.indexOf(level) < LOG_LEVELS.indexOf(this.logLevel)) return;
        let s = `${level.toUpperCase()} ${id} ${msg}`;
        if (fields !== undefined) {
          for (const [k, v] of Object.entries(fields)) s += ` ${k}=${formatField(v)}`;
        }
        this.write(s);
      };
    return {
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      isDebugEnabled: () => this.logLevel === 'debug',
    };
  }

  // ---- node access -----------------------------------------------------

  node(id: number): EnvNode {
    const n = this.nodes[id - 1];
    if (n === undefined) throw new HarnessError(`no node ${id}`);
    return n;
  }

  private firstId(a: Args): number {
    const p = a.positional()[0];
    if (p === undefined) throw new HarnessError('missing node id');
    return toInt(p);
  }

  private idsOrAll(a: Args): number[] {
    const p = a.positional().map(toInt);
    return p.length > 0 ? p : this.nodes.map((n) => n.id);
  }

  // ---- add-nodes -------------------------------------------------------

  private handleAddNodes(a: Args): void {
    const [countStr] = a.positional();
    const count = toInt(countStr);
    const voters = a.ints('voters') ?? [];
    const learners = a.ints('learners') ?? [];
    const index = a.int('index') ?? (voters.length + learners.length > 0 ? 1 : 0);
    const async = a.bool('async-storage-writes') ?? false;
    for (let k = 0; k < count; k++) {
      const id = this.nodes.length + 1;
      const storage = new EnvStorage();
      const confState: ConfState = { ...emptyConfState(), voters: [...voters], learners: [...learners] };
      if (index > 0) {
        const snap: Snapshot = { data: bytes(''), metadata: { index, term: 1, confState } };
        storage.applySnapshot(snap);
      }
      const electionTick = a.int('election-tick') ?? 3;
      const readOnly = a.str('read-only');
      if (readOnly !== undefined && readOnly !== 'safe' && readOnly !== 'lease-based') {
        throw new HarnessError(`bad read-only=${readOnly}`);
      }
      const config: Config = {
        id,
        electionTick,
        heartbeatTick: a.int('heartbeat-tick') ?? 1,
        // Pin the randomized election timeout to exactly electionTick so
        // that `tick-election` makes a follower campaign deterministically.
        minElectionTick: electionTick,
        maxElectionTick: electionTick + 1,
        applied: index,
        maxSizePerMsg: a.int('max-size-per-msg') ?? 1 << 20,
        maxInflightMsgs: a.int('max-inflight') ?? 256,
        maxUncommittedEntriesSize: a.int('max-uncommitted-size') ?? 0,
        checkQuorum: a.bool('checkquorum') ?? false,
        preVote: a.bool('prevote') ?? false,
        readOnlyOption: (readOnly ?? 'safe') as 'safe' | 'lease-based',
        disableProposalForwarding: a.bool('disable-proposal-forwarding') ?? false,
        random: this.random,
        logger: this.makeLogger(id),
      };
      const maxCommitted = a.int('max-committed-size-per-ready');
      if (maxCommitted !== undefined) config.maxCommittedSizePerReady = maxCommitted;
      let rawNode: RawNode;
      try {
        rawNode = new RawNode(config, storage);
      } catch (err) {
        // A bad Config is an expected, typed error: print it, add nothing.
        if (err instanceof RaftError) {
          this.write(`ERROR: ${err.name}${'field' in err ? ` field=${String(err.field)}` : ''}`);
          return;
        }
        throw err;
      }
      const node: EnvNode = {
        id,
        rawNode,
        storage,
        config,
        async,
        appendQueue: [],
        history: [{ index, term: index > 0 ? 1 : 0, confState, data: '' }],
      };
      storage.current = () => node.history[node.history.length - 1]!;
      this.nodes.push(node);
    }
  }

  // ---- proposals -------------------------------------------------------

  private handleProposeConfChange(tc: TestCase, a: Args): void {
    const id = this.firstId(a);
    const changes: ConfChangeSingle[] = [];
    // Changes come on the input line(s), as in etcd, or inline after the id.
    const inline = a.positional().slice(1).join(' ');
    for (const line of [inline, ...tc.input]) {
      for (const tok of line.trim().split(/\s+/)) {
        if (tok === '') continue;
        const kind = tok[0];
        const nodeId = toInt(tok.slice(1));
        if (kind === 'v') changes.push({ changeType: ConfChangeType.AddNode, nodeId });
        else if (kind === 'l') changes.push({ changeType: ConfChangeType.AddLearnerNode, nodeId });
        else if (kind === 'r') changes.push({ changeType: ConfChangeType.RemoveNode, nodeId });
        else throw new HarnessError(`unknown conf change ${tok}`);
      }
    }
    const rn = this.node(id).rawNode;
    if (a.bool('v1') === true) {
      if (changes.length !== 1) throw new HarnessError('v1 conf change needs exactly one change');
      const c = changes[0]!;
      return this.call(() => rn.proposeConfChange({ changeType: c.changeType, nodeId: c.nodeId }));
    }
    const tr = a.str('transition') ?? 'auto';
    const transition =
      tr === 'auto'
        ? ConfChangeTransition.Auto
        : tr === 'implicit'
          ? ConfChangeTransition.Implicit
          : tr === 'explicit'
            ? ConfChangeTransition.Explicit
            : undefined;
    if (transition === undefined) throw new HarnessError(`bad transition=${tr}`);
    const cc: ConfChangeV2 = { transition, changes };
    this.call(() => rn.proposeConfChange(cc));
  }

  // ---- ticking, readies, messages ----------------------------------------

  private tick(n: EnvNode, count: number): void {
    for (let i = 0; i < count; i++) n.rawNode.tick();
  }

  /** processReady handles one Ready of node `id` the way a host must: persist, send, apply, advance. */
  processReady(id: number, deferApply = false): void {
    const n = this.node(id);
    const rn = n.rawNode;
    if (n.deferred !== undefined) throw new HarnessError(`node ${id} holds a Ready whose entries are not applied: apply ${id} first`);
    if (!rn.hasReady()) return;
    const rd = rn.ready();
    for (const l of describeReady(rd)) this.write(l);
    if (n.async) {
      // The append thread persists later (process-append-thread); messages
      // that do not wait for durability go out now.
      n.appendQueue.push(rd);
      this.send(rd.messages);
      this.applyEntries(n, rd.committedEntries);
      rn.advanceAppendAsync(rd);
      rn.advanceApply();
      return;
    }
    this.persist(n, rd);
    this.send(rd.messages);
    this.send(rd.persistedMessages);
    if (deferApply) {
      // The host's apply lags: the node keeps stepping messages meanwhile.
      n.deferred = rd;
      return;
    }
    this.applyAndAdvance(n, rd);
  }

  /** applyDeferred applies the committed entries of the Ready that `process-ready ID defer-apply=true` held. */
  private applyDeferred(n: EnvNode): void {
    const rd = n.deferred;
    if (rd === undefined) throw new HarnessError(`node ${n.id} holds no Ready`);
    n.deferred = undefined;
    this.applyAndAdvance(n, rd);
  }

  private applyAndAdvance(n: EnvNode, rd: Ready): void {
    const rn = n.rawNode;
    this.applyEntries(n, rd.committedEntries);
    const lr = rn.advance(rd);
    const lines: string[] = [];
    if (lr.commitIndex !== undefined) {
      lines.push(`Commit:${lr.commitIndex}`);
      const hs = n.storage.initialState().hardState;
      n.storage.setHardState({ ...hs, commit: lr.commitIndex });
    }
    if (lr.committedEntries.length > 0) {
      lines.push('CommittedEntries:', ...lr.committedEntries.map(describeEntry));
    }
    if (lr.messages.length > 0) lines.push('Messages:', ...lr.messages.map(describeMessage));
    if (lines.length > 0) {
      this.write('LightReady:');
      for (const l of lines) this.write(l);
    }
    this.send(lr.messages);
    this.applyEntries(n, lr.committedEntries);
    rn.advanceApply();
  }

  /** processAppendThread makes node `id`'s queued Readies durable, then sends what waited on them. */
  processAppendThread(id: number): void {
    const n = this.node(id);
    if (n.appendQueue.length === 0) return;
    const queue = n.appendQueue;
    n.appendQueue = [];
    this.write(`> ${id} processing append thread`);
    this.withIndent(() => {
      for (const rd of queue) {
        const parts: string[] = [];
        if (rd.hardState !== undefined) parts.push(describeHardState(rd.hardState));
        if (rd.entries.length > 0) parts.push(`Entries:[${rd.entries.map(describeEntry).join(', ')}]`);
        if (rd.snapshot !== undefined && rd.snapshot.metadata.index !== 0) parts.push(`Snapshot ${describeSnapshot(rd.snapshot)}`);
        this.write(`Persisted Ready ${rd.number}${parts.length > 0 ? ': ' + parts.join(' ') : ''}`);
        this.persist(n, rd);
        this.send(rd.persistedMessages);
        for (const m of rd.persistedMessages) this.write(`  ${describeMessage(m)}`);
        n.rawNode.onPersistReady(rd.number);
      }
    });
  }

  private persist(n: EnvNode, rd: Ready): void {
    if (rd.snapshot !== undefined && rd.snapshot.metadata.index !== 0) {
      const idx = rd.snapshot.metadata.index;
      if (idx <= n.storage.storedSnapshotIndex()) {
        // MemoryStorage refuses a snapshot that is not newer than its own;
        // that is fine for a requested snapshot at an index this node already
        // snapshotted, as long as no durable entry follows it.
        if (n.storage.lastIndex() > idx) {
          throw new HarnessError(`node ${n.id}: snapshot ${idx} would discard durable entries up to ${n.storage.lastIndex()}`);
        }
      } else n.storage.applySnapshot(rd.snapshot);
      const s = rd.snapshot.metadata;
      n.history.push({ index: s.index, term: s.term, confState: s.confState, data: text(rd.snapshot.data) });
    }
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
  }

  private send(msgs: Message[]): void {
    for (const m of msgs) {
      if (this.isolated.has(m.from) || this.isolated.has(m.to)) continue;
      this.messages.push(m);
    }
  }

  /** applyEntries applies committed entries to node n's state machine and config. */
  private applyEntries(n: EnvNode, entries: Entry[]): void {
    for (const e of entries) {
      const prev = n.history[n.history.length - 1]!;
      let confState = prev.confState;
      let data = prev.data;
      if (e.entryType === EntryType.EntryNormal) {
        if (e.data.length > 0) data = data === '' ? text(e.data) : `${data},${text(e.data)}`;
      } else {
        const cc = entryConfChange(e);
        if (cc !== undefined) {
          // Not storage.setConfState: it rewrites the stored snapshot's
          // membership. Nodes of this env never restart, so raft's own
          // configuration is the only one that must be current.
          confState = n.rawNode.applyConfChange(cc);
          this.write(`INFO ${n.id} switched to configuration ${describeConfState(confState)}`);
        }
      }
      n.history.push({ index: e.index, term: e.term, confState, data });
    }
  }

  private handleDeliverMsgs(a: Args): void {
    const drop = a.ints('drop');
    const type = a.str('type');
    if (drop !== undefined) {
      for (const id of drop) {
        const { mine, rest } = this.split(id, type);
        this.messages = rest;
        for (const m of mine) this.write(`dropped: ${describeMessage(m)}`);
      }
    }
    const ids = a.positional().map(toInt);
    const count = a.int('count');
    for (const id of ids) {
      this.withHeader(`> ${id} receiving messages`, ids.length > 1, () => this.deliver(id, type, count));
    }
  }

  private split(id: number, type: string | undefined): { mine: Message[]; rest: Message[] } {
    const mine: Message[] = [];
    const rest: Message[] = [];
    for (const m of this.messages) {
      if (m.to === id && (type === undefined || messageTypeName(m.msgType) === type)) mine.push(m);
      else rest.push(m);
    }
    return { mine, rest };
  }

  /** deliver steps the queued messages addressed to `id` (the first `count` of them) into that node. */
  private deliver(id: number, type?: string, count = Infinity): number {
    const mine = this.split(id, type).mine.slice(0, count);
    const delivered = new Set(mine);
    this.messages = this.messages.filter((m) => !delivered.has(m));
    for (const m of mine) {
      this.write(describeMessage(m));
      const n = this.nodes[id - 1];
      if (n === undefined) {
        this.write(`  dropped: no node ${id}`);
        continue;
      }
      this.withIndent(() => this.call(() => n.rawNode.step(m)));
    }
    return mine.length;
  }

  stabilize(ids: number[]): void {
    for (let round = 0; round < MAX_STABILIZE_ROUNDS; round++) {
      let done = true;
      for (const id of ids) {
        const n = this.node(id);
        if (n.deferred === undefined && n.rawNode.hasReady()) {
          done = false;
          this.write(`> ${id} handling Ready`);
          this.withIndent(() => this.processReady(id));
        }
      }
      for (const id of ids) {
        if (this.node(id).appendQueue.length > 0) {
          done = false;
          this.processAppendThread(id);
        }
      }
      for (const id of ids) {
        if (this.messages.some((m) => m.to === id)) {
          done = false;
          this.write(`> ${id} receiving messages`);
          this.withIndent(() => this.deliver(id));
        }
      }
      if (done) return;
    }
    throw new HarnessError(`stabilize did not converge within ${MAX_STABILIZE_ROUNDS} rounds`);
  }

  /**
   * restart crashes node n and brings it back from its storage: anything
   * not yet durable (Readies queued for the append thread, messages it had
   * not sent) is lost; `applied` is the state machine's last applied index.
   */
  private restart(n: EnvNode): void {
    n.appendQueue = [];
    const applied = n.history[n.history.length - 1]!.index;
    n.config = { ...n.config, applied };
    n.rawNode = new RawNode(n.config, n.storage);
    const hs = n.storage.initialState().hardState;
    this.write(`restarted ${n.id}: ${describeHardState(hs)} applied=${applied} last=${n.storage.lastIndex()}`);
  }

  // ---- compaction and inspection -------------------------------------------

  /** compact snapshots node n's state machine at `index` (≤ applied) and truncates its log there. */
  private compact(n: EnvNode, index: number): void {
    const st = n.history.find((h) => h.index === index);
    if (st === undefined) throw new HarnessError(`node ${n.id} has no applied state at index ${index}`);
    n.storage.createSnapshot(index, st.confState, bytes(st.data));
    n.storage.compact(index);
    this.handleRaftLog(n);
  }

  private handleRaftLog(n: EnvNode): void {
    const first = n.storage.firstIndex();
    const last = n.storage.lastIndex();
    if (last < first) {
      this.write(`log is empty: first index=${first}, last index=${last}`);
      return;
    }
    for (const e of n.storage.entries(first, last + 1)) this.write(describeEntry(e));
  }

  private handleStatus(n: EnvNode): void {
    const st = n.rawNode.status();
    if (st.progress === undefined || st.progress.size === 0) {
      this.write(`${n.id}: ${st.softState.raftState} (no progress: not leader)`);
      return;
    }
    for (const id of [...st.progress.keys()].sort((x, y) => x - y)) {
      const pr = st.progress.get(id)!;
      let s = `${id}: State${pr.state} match=${pr.match} next=${pr.next}`;
      if (pr.isLearner) s += ' learner';
      if (pr.paused) s += ' paused';
      if (pr.pendingSnapshot !== 0) s += ` pendingSnap=${pr.pendingSnapshot}`;
      if (pr.inflightCount > 0) s += ` inflight=${pr.inflightCount}`;
      this.write(s);
    }
  }

  private handleRaftState(): void {
    for (const n of this.nodes) {
      const r = n.rawNode.raft;
      const cs = n.rawNode.status().config;
      const role = cs.voters.includes(n.id) || cs.votersOutgoing.includes(n.id)
        ? 'Voter'
        : cs.learners.includes(n.id)
          ? 'Learner'
          : 'Non-Voter';
      const iso = this.isolated.has(n.id) ? ' isolated' : '';
      this.write(`${n.id}: ${r.state} (${role}) Term:${r.term} Lead:${r.leaderId}${iso}`);
    }
  }
}

/** HarnessError is a bad script (wrong arguments), printed into the output. */
export class HarnessError extends Error {}

function toInt(s: string | undefined): number {
  const n = Number(s);
  if (s === undefined || !Number.isInteger(n)) throw new HarnessError(`expected an integer, got ${s}`);
  return n;
}

function formatField(v: unknown): string {
  if (v instanceof Uint8Array) return JSON.stringify(text(v));
  if (Array.isArray(v)) return `[${v.map(formatField).join(' ')}]`;
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
