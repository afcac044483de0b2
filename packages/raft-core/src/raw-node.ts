// RawNode: the thread-safe-free driving API over Raft, in raft-rs's shape
// (Ready / advance / LightReady, with asynchronous persistence support).
import type { Config } from './config';
import { encodeConfChangeEntry } from './confchange-codec';
import { assert, StepLocalMsgError, StepPeerNotFoundError } from './errors';
import { Raft, makeMessage } from './raft';
import type { SoftState, StateRole } from './raft';
import type { ReadState } from './read-only';
import { getStatus } from './status';
import type { Status } from './status';
import type { Storage } from './storage';
import { EntryType, MessageType, isLocalMessage, isResponseMessage } from './types';
import type { ConfChange, ConfChangeV2, ConfState, Entry, HardState, Message, Snapshot } from './types';
import { payloadSize } from './util';

export type { StateRole, SoftState };

/**
 * Ready is everything a host must do after raft made progress.
 *
 * Contract: persist `snapshot`, `entries` and `hardState` BEFORE sending
 * `persistedMessages` (votes, vote responses, MsgAppResp). `messages`
 * (leader MsgApp, heartbeats, forwarded proposals, ...) may be sent at
 * once, even before the leader's own append is durable. Apply
 * `committedEntries` (and `snapshot`) to the state machine.
 */
export interface Ready {
  /** number identifies this Ready; increasing. Pass it to onPersistReady. */
  number: number;
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  persistedMessages: Message[];
  /** mustSync: the write must be fsynced (new entries, term or vote change, snapshot). */
  mustSync: boolean;
}

/** LightReady is what becomes available once a Ready is durable (raft-rs). */
export interface LightReady {
  /** commitIndex is set when the commit index moved; it is also reported in the next Ready's hardState. */
  commitIndex?: number;
  committedEntries: Entry[];
  /** messages may be sent at once. */
  messages: Message[];
}

/** ReadyRecord remembers what a Ready asked to persist, to act on it once durable. */
interface ReadyRecord {
  number: number;
  lastEntryIndex: number; // 0 = no entries
  lastEntryTerm: number;
  snapshotIndex: number; // 0 = no snapshot
}

/**
 * Empty arrays in a Ready are shared and frozen: most Readies carry only
 * messages, and this saves allocations. Treat Ready arrays as read-only.
 */
const EMPTY_ENTRIES: Entry[] = Object.freeze([]) as unknown as Entry[];
const EMPTY_READ_STATES: ReadState[] = Object.freeze([]) as unknown as ReadState[];

/** SnapshotStatus is the host's report on a snapshot it tried to send. */
export type SnapshotStatus = 'finish' | 'failure';

export class RawNode {
  readonly raft: Raft;
  private prevLeaderId: number;
  private prevRaftState: StateRole;
  private prevTerm: number;
  private prevVote: number;
  private prevCommit: number;
  private readyNumber = 0;
  private records: ReadyRecord[] = [];

  /** constructor throws ConfigError for a bad config. */
  constructor(config: Config, storage: Storage) {
    this.raft = new Raft(config, storage);
    // Proposals between two Readies are broadcast once, in the next Ready.
    this.raft.deferBcastAppend = true;
    this.prevLeaderId = this.raft.leaderId;
    this.prevRaftState = this.raft.state;
    this.prevTerm = this.raft.term;
    this.prevVote = this.raft.vote;
    this.prevCommit = this.raft.raftLog.committed;
  }

  /** tick advances the logical clock by one tick (election and heartbeat timers). */
  tick(): void {
    this.raft.tick();
  }

  /** campaign makes this peer start an election (pre-vote first if enabled). */
  campaign(): void {
    const m = makeMessage(MessageType.MsgHup, 0);
    m.from = this.raft.id;
    this.raft.step(m);
  }

  /** propose appends data to the log (leader) or forwards it. Throws ProposalDroppedError. */
  propose(data: Uint8Array, context?: Uint8Array): void {
    const m = makeMessage(MessageType.MsgProp, 0);
    m.from = this.raft.id;
    m.entries = [{ entryType: EntryType.EntryNormal, term: 0, index: 0, data, context }];
    this.raft.step(m);
  }

  /** proposeConfChange proposes a v1 or v2 membership change. Throws ProposalDroppedError. */
  proposeConfChange(cc: ConfChange | ConfChangeV2, context?: Uint8Array): void {
    const { entryType, data } = encodeConfChangeEntry(cc);
    const m = makeMessage(MessageType.MsgProp, 0);
    m.from = this.raft.id;
    m.entries = [{ entryType, term: 0, index: 0, data, context }];
    this.raft.step(m);
  }

  /**
   * step feeds a message from the network. Local messages are refused
   * (StepLocalMsgError), as are responses from peers not in the
   * configuration (StepPeerNotFoundError).
   */
  step(m: Message): void {
    if (isLocalMessage(m.msgType)) throw new StepLocalMsgError();
    if (isResponseMessage(m.msgType) && !this.raft.prs.progress.has(m.from)) throw new StepPeerNotFoundError();
    this.raft.step(m);
  }

  /** applyConfChange applies a committed conf change entry's change and returns the new ConfState. */
  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** transferLeader asks the leader to hand leadership to transferee. */
  transferLeader(transferee: number): void {
    const m = makeMessage(MessageType.MsgTransferLeader, 0);
    m.from = transferee;
    this.raft.step(m);
  }

  /** readIndex requests a read index; the answer arrives as a ReadState carrying ctx. */
  readIndex(ctx: Uint8Array): void {
    const m = makeMessage(MessageType.MsgReadIndex, 0);
    m.entries = [{ entryType: EntryType.EntryNormal, term: 0, index: 0, data: ctx }];
    this.raft.step(m);
  }

  /** reportUnreachable tells raft that the last message to id was probably lost. */
  reportUnreachable(id: number): void {
    const m = makeMessage(MessageType.MsgUnreachable, 0);
    m.from = id;
    this.raft.step(m);
  }

  /** reportSnapshot tells raft whether the snapshot sent to id was applied. */
  reportSnapshot(id: number, status: SnapshotStatus): void {
    const m = makeMessage(MessageType.MsgSnapStatus, 0);
    m.from = id;
    m.reject = status === 'failure';
    this.raft.step(m);
  }

  /** requestSnapshot asks the leader for a snapshot (raft-rs); throws RequestSnapshotDroppedError. */
  requestSnapshot(): void {
    this.raft.requestSnapshot();
  }

  status(): Status {
    return getStatus(this.raft);
  }

  /** hasReady is true when ready() would return something to do. */
  hasReady(): boolean {
    const r = this.raft;
    r.flushBcastAppend();
    if (r.leaderId !== this.prevLeaderId || r.state !== this.prevRaftState) return true;
    if (r.term !== this.prevTerm || r.vote !== this.prevVote || r.raftLog.committed !== this.prevCommit) return true;
    if (r.msgs.length > 0 || r.msgsAfterAppend.length > 0) return true;
    if (r.raftLog.unstable.nextSnapshot() !== undefined) return true;
    if (r.raftLog.hasNextUnstableEnts()) return true;
    if (r.readStates.length > 0) return true;
    return r.raftLog.hasNextCommittedEnts();
  }

  /**
   * ready returns the pending work and marks it as handed out: its entries
   * and snapshot will not be returned again, its committed entries count as
   * being applied. Several Readies may be outstanding (async persistence).
   */
  ready(): Ready {
    const r = this.raft;
    r.flushBcastAppend();
    const log = r.raftLog;
    const entries = log.hasNextUnstableEnts() ? log.nextUnstableEnts() : EMPTY_ENTRIES;
    const snapshot = log.unstable.nextSnapshot();
    let committedEntries = log.nextCommittedEnts();
    if (committedEntries.length === 0) committedEntries = EMPTY_ENTRIES;
    const rd: Ready = {
      number: ++this.readyNumber,
      readStates: r.readStates.length === 0 ? EMPTY_READ_STATES : r.readStates,
      entries,
      committedEntries,
      messages: r.msgs,
      persistedMessages: r.msgsAfterAppend,
      mustSync: false,
    };
    if (r.readStates.length > 0) r.readStates = [];
    r.msgs = [];
    r.msgsAfterAppend = [];
    if (r.leaderId !== this.prevLeaderId || r.state !== this.prevRaftState) {
      rd.softState = { leaderId: r.leaderId, raftState: r.state };
      this.prevLeaderId = r.leaderId;
      this.prevRaftState = r.state;
    }
    const termOrVoteChanged = r.term !== this.prevTerm || r.vote !== this.prevVote;
    if (termOrVoteChanged || log.committed !== this.prevCommit) {
      rd.hardState = { term: r.term, vote: r.vote, commit: log.committed };
      this.prevTerm = r.term;
      this.prevVote = r.vote;
      this.prevCommit = log.committed;
    }
    if (snapshot !== undefined) rd.snapshot = snapshot;
    rd.mustSync = entries.length > 0 || termOrVoteChanged || snapshot !== undefined;
    if (committedEntries.length > 0) this.acceptCommitted(committedEntries);
    log.unstable.acceptInProgress();
    if (entries.length > 0 || snapshot !== undefined) {
      const last = entries.length > 0 ? entries[entries.length - 1]! : undefined;
      this.records.push({
        number: rd.number,
        lastEntryIndex: last === undefined ? 0 : last.index,
        lastEntryTerm: last === undefined ? 0 : last.term,
        snapshotIndex: snapshot === undefined ? 0 : snapshot.metadata.index,
      });
    }
    return rd;
  }

  private acceptCommitted(ents: Entry[]): void {
    const r = this.raft;
    r.raftLog.acceptApplying(ents[ents.length - 1]!.index);
    if (r.uncommittedSize > 0) {
      let s = 0;
      for (let i = 0; i < ents.length; i++) s += payloadSize(ents[i]!);
      r.reduceUncommittedSize(s);
    }
  }

  /**
   * advance: rd was persisted synchronously and its committed entries
   * applied. Returns what became available (send its messages, apply its
   * committed entries, then call advanceApply()).
   */
  advance(rd: Ready): LightReady {
    this.onPersistReady(rd.number);
    const last = rd.committedEntries[rd.committedEntries.length - 1];
    if (last !== undefined) this.raft.appliedTo(last.index);
    return this.lightReady();
  }

  /** advanceAppend: rd was persisted synchronously; applying is reported later with advanceApply(To). */
  advanceAppend(rd: Ready): LightReady {
    this.onPersistReady(rd.number);
    return this.lightReady();
  }

  /**
   * advanceAppendAsync: rd was handed to a writer that persists Readies in
   * order; call onPersistReady(rd.number) once it is durable. Until then its
   * persistedMessages must not be sent.
   */
  advanceAppendAsync(rd: Ready): void {
    assert(rd.number <= this.readyNumber, `unknown ready number ${rd.number}`);
  }

  /**
   * onPersistReady: every Ready up to readyNumber is durable. Raft marks
   * the entries stable, the leader counts its own log toward commit, and
   * committed entries up to the durable index become available.
   */
  onPersistReady(readyNumber: number): void {
    const records = this.records;
    let n = 0;
    while (n < records.length && records[n]!.number <= readyNumber) {
      const rec = records[n]!;
      if (rec.snapshotIndex !== 0) this.raft.onPersistSnap(rec.snapshotIndex);
      if (rec.lastEntryIndex !== 0) this.raft.onPersistEntries(rec.lastEntryIndex, rec.lastEntryTerm);
      n++;
    }
    if (n > 0) this.records = n === records.length ? [] : records.slice(n);
  }

  /** advanceApply: all committed entries handed out so far are applied. */
  advanceApply(): void {
    this.raft.appliedTo(this.raft.raftLog.applying);
  }

  /** advanceApplyTo: entries up to applied are applied. */
  advanceApplyTo(applied: number): void {
    this.raft.appliedTo(applied);
  }

  /** lightReady hands out committed entries that became available and immediate messages. */
  private lightReady(): LightReady {
    const r = this.raft;
    let committedEntries = r.raftLog.nextCommittedEnts();
    if (committedEntries.length > 0) this.acceptCommitted(committedEntries);
    else committedEntries = EMPTY_ENTRIES;
    const lr: LightReady = { committedEntries, messages: r.msgs };
    r.msgs = [];
    if (r.raftLog.committed !== this.prevCommit) lr.commitIndex = r.raftLog.committed;
    return lr;
  }
}
