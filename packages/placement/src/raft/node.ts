import { LogBatch, type LogEngine, type RegionLogStorage } from '@flotilla/log-engine';
import {
  ProposalDroppedError,
  RawNode,
  StepPeerNotFoundError,
  encodeConfChange,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type RaftState,
  type ReadState,
  type SoftState,
  type Snapshot,
  type Storage,
} from '@flotilla/raft-core';
import { silentLogger, type Logger } from '@flotilla/proto';
import type { ApplyOutcome, PlacementFsm } from './fsm';

/** PLACEMENT_GROUP_ID: the placement group's ID in its log engine (the engine is shared-capable; placement has one group). */
export const PLACEMENT_GROUP_ID = 1;

/** RaftTiming: the tick and the timeouts in ticks (etcd's defaults: 100 ms heartbeat, 1 s election). */
export interface RaftTiming {
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
}

export interface RaftNodeOptions {
  id: number;
  engine: LogEngine;
  fsm: PlacementFsm;
  timing: RaftTiming;
  send: (msgs: Message[]) => void;
  /** onSoftState: the role or the known leader changed. */
  onSoftState: (ss: SoftState) => void;
  /** onApplied: a round of committed entries is applied (durably). */
  onApplied: (outcome: ApplyOutcome) => void;
  onReadStates: (rs: ReadState[]) => void;
  /** onTick runs after each tick (leader upkeep: learner promotion, log compaction). */
  onTick: () => void;
  random: () => number;
  logger?: Logger;
  /** compactLogEntries: once this many applied entries are in the log, it is compacted (default 5000). */
  compactLogEntries?: number;
  /** keepLogEntries: entries kept below the applied index for followers that lag a little (default 1000). */
  keepLogEntries?: number;
}

/**
 * GroupStorage is raft's Storage for the placement group: the log engine's
 * RegionLogStorage for the log and hard state, with the ConfState taken
 * from the state machine (written in the same transaction as the conf
 * change entry that produced it, so the two can never disagree after a
 * crash), and snapshots built from the state machine at its applied index.
 */
class GroupStorage implements Storage {
  constructor(
    private readonly log: RegionLogStorage,
    private readonly fsm: PlacementFsm,
  ) {}
  initialState(): RaftState {
    return { hardState: this.log.initialState().hardState, confState: this.fsm.store.confState() };
  }
  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    return this.log.entries(lo, hi, maxSize);
  }
  term(index: number): number {
    return this.log.term(index);
  }
  firstIndex(): number {
    return this.log.firstIndex();
  }
  lastIndex(): number {
    return this.log.lastIndex();
  }
  snapshot(): Snapshot {
    const st = this.fsm.store;
    return { data: st.dump(), metadata: { index: st.appliedIndex, term: st.appliedTerm, confState: st.confState() } };
  }
}

/**
 * RaftNode drives the placement group's RawNode: ticks on a timer, steps
 * messages from peers, and runs every Ready the etcd way: send the
 * leader's messages, persist entries and hard state through the log engine
 * (one transaction, one fsync), send the messages that need durability,
 * apply committed entries to the state machine, advance. Work is
 * coalesced: any number of steps and proposals in one event-loop turn
 * become one Ready and one fsync.
 */
export class RaftNode {
  readonly raw: RawNode;
  private readonly log: RegionLogStorage;
  private readonly logger: Logger;
  private tickTimer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private stopped = false;
  private readonly compactLogEntries: number;
  private readonly keepLogEntries: number;

  constructor(private readonly opts: RaftNodeOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.log = opts.engine.storage(PLACEMENT_GROUP_ID);
    this.compactLogEntries = opts.compactLogEntries ?? 5000;
    this.keepLogEntries = opts.keepLogEntries ?? 1000;
    this.raw = new RawNode(
      {
        id: opts.id,
        electionTick: opts.timing.electionTicks,
        heartbeatTick: opts.timing.heartbeatTicks,
        applied: opts.fsm.store.appliedIndex,
        maxSizePerMsg: 1024 * 1024,
        maxInflightMsgs: 256,
        // Bounded: past 64 MiB of uncommitted proposals, new ones are refused (the caller retries).
        maxUncommittedEntriesSize: 64 * 1024 * 1024,
        checkQuorum: true,
        preVote: true,
        readOnlyOption: 'safe',
        random: opts.random,
      },
      new GroupStorage(this.log, opts.fsm),
    );
  }

  start(): void {
    this.tickTimer = setInterval(() => {
      if (this.stopped) return;
      this.raw.tick();
      this.opts.onTick();
      this.schedule();
    }, this.opts.timing.tickMs);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** step feeds a message from a peer (one from a member not in the configuration is ignored). */
  step(m: Message): void {
    if (this.stopped) return;
    try {
      this.raw.step(m);
    } catch (err) {
      if (!(err instanceof StepPeerNotFoundError)) throw err;
    }
    this.schedule();
  }

  /**
   * propose appends a command to the log and returns its index (on the
   * leader; a follower forwards it and returns 0). Throws
   * ProposalDroppedError when raft refuses it (no leader, a transfer in
   * progress, too much uncommitted).
   */
  propose(data: Uint8Array): number {
    if (this.stopped) throw new ProposalDroppedError('placement raft node stopped');
    this.raw.propose(data);
    this.schedule();
    return this.raw.raft.state === 'Leader' ? this.raw.raft.raftLog.lastIndex() : 0;
  }

  /** proposeConfChange proposes a single-step membership change; returns its index like propose. */
  proposeConfChange(cc: ConfChange): number {
    if (this.stopped) throw new ProposalDroppedError('placement raft node stopped');
    this.raw.proposeConfChange(cc);
    this.schedule();
    return this.raw.raft.state === 'Leader' ? this.raw.raft.raftLog.lastIndex() : 0;
  }

  readIndex(ctx: Uint8Array): void {
    this.raw.readIndex(ctx);
    this.schedule();
  }

  campaign(): void {
    this.raw.campaign();
    this.schedule();
  }

  transferLeader(to: number): void {
    this.raw.transferLeader(to);
    this.schedule();
  }

  reportUnreachable(id: number): void {
    if (this.stopped) return;
    this.raw.reportUnreachable(id);
  }

  reportSnapshot(id: number, ok: boolean): void {
    if (this.stopped) return;
    this.raw.reportSnapshot(id, ok ? 'finish' : 'failure');
    this.schedule();
  }

  schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => this.handleReady());
  }

  private handleReady(): void {
    this.scheduled = false;
    for (let rounds = 0; rounds < 64 && !this.stopped && this.raw.hasReady(); rounds++) {
      const rd = this.raw.ready();
      this.opts.send(rd.messages);
      const batch = new LogBatch();
      if (rd.snapshot !== undefined && rd.snapshot.metadata.index > 0) {
        const md = rd.snapshot.metadata;
        // The state machine first: a crash between the two leaves it ahead of the log, which start-up repairs.
        this.opts.fsm.store.restore(rd.snapshot.data, md.index, md.term, md.confState);
        this.log.applySnapshotMeta(batch, md.index, md.term, md.confState);
        this.logger.info({ index: md.index, term: md.term }, 'placement snapshot applied');
      }
      this.log.append(batch, rd.entries);
      if (rd.hardState !== undefined) this.log.setHardState(batch, rd.hardState);
      this.opts.engine.write(batch);
      this.opts.send(rd.persistedMessages);
      this.apply(rd.committedEntries);
      if (rd.readStates.length > 0) this.opts.onReadStates(rd.readStates);
      const lr = this.raw.advance(rd);
      this.opts.send(lr.messages);
      this.apply(lr.committedEntries);
      this.raw.advanceApply();
      if (rd.softState !== undefined) this.opts.onSoftState(rd.softState);
    }
    if (!this.stopped && this.raw.hasReady()) this.schedule();
  }

  private apply(entries: Entry[]): void {
    if (entries.length === 0) return;
    const outcome = this.opts.fsm.applyEntries(entries, (cc) => this.raw.applyConfChange(cc));
    this.opts.onApplied(outcome);
    this.maybeCompact();
  }

  /** maybeCompact cuts the log below the applied index once it holds compactLogEntries applied entries. */
  private maybeCompact(): void {
    const applied = this.opts.fsm.store.appliedIndex;
    const first = this.log.firstIndex();
    if (applied - first + 1 < this.compactLogEntries) return;
    const to = applied - this.keepLogEntries;
    if (to < first) return;
    this.opts.engine.write(this.log.compact(new LogBatch(), to));
    this.opts.engine.purge(4096);
    this.logger.debug({ compactedTo: to, applied }, 'placement raft log compacted');
  }
}

/**
 * writeInitialLog writes a new member's log the way etcd bootstraps one:
 * one committed AddNode entry per initial member (term 1), so every member
 * of the initial cluster starts from the same log, and a member added
 * later learns the initial membership by replaying it (or from a snapshot).
 */
export function writeInitialLog(engine: LogEngine, members: { id: number; context: Uint8Array }[]): void {
  const log = engine.storage(PLACEMENT_GROUP_ID);
  const entries: Entry[] = members.map((m, i) => ({ entryType: 1, term: 1, index: i + 1, data: encodeConfChange({ changeType: 0, nodeId: m.id, context: m.context }) }));
  const hardState: HardState = { term: 1, vote: 0, commit: entries.length };
  const batch = new LogBatch();
  log.append(batch, entries);
  log.setHardState(batch, hardState);
  engine.write(batch);
}

/** repairAfterSnapshotCrash: a crash after a snapshot reached the state machine but before the log recorded it. */
export function logIsBehindFsm(engine: LogEngine, fsm: PlacementFsm): boolean {
  return fsm.store.appliedIndex > engine.storage(PLACEMENT_GROUP_ID).lastIndex();
}

/** markSnapshotInLog records the state machine's applied point as the log's snapshot point (the repair). */
export function markSnapshotInLog(engine: LogEngine, fsm: PlacementFsm, conf: ConfState): void {
  const st = fsm.store;
  engine.write(engine.storage(PLACEMENT_GROUP_ID).applySnapshotMeta(new LogBatch(), st.appliedIndex, st.appliedTerm, conf));
}
