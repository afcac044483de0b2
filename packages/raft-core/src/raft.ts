// Raft: the consensus state machine, in the shape of etcd raft's raft.go
// (with raft-rs's priority elections and persisted-index tracking).
//
// It is pure: inputs are step(msg) and tick(); outputs accumulate in `msgs`
// (may be sent at once) and `msgsAfterAppend` (send only after the entries
// and hard state produced alongside them are durable), plus the log and
// readStates. RawNode turns these into Ready.
import type { Logger, ReadOnlyOption, ResolvedConfig } from './config';
import { silentLogger, validateConfig } from './config';
import type { Config } from './config';
import { Changer } from './confchange/changer';
import type { ChangeResult } from './confchange/changer';
import { restoreConfState } from './confchange/restore';
import { confChangeAsV2, confChangeEnterJoint, confChangeLeaveJoint, decodeConfChangeEntry } from './confchange-codec';
import { assert, ConfChangeDecodeError, ProposalDroppedError, RequestSnapshotDroppedError } from './errors';
import { RaftLog } from './log';
import { VoteResult } from './quorum/types';
import { ReadOnly, encodeRound } from './read-only';
import type { ReadState } from './read-only';
import { CompactedError, SnapshotTemporarilyUnavailableError } from './storage';
import type { Storage } from './storage';
import { ProgressState } from './tracker/progress';
import type { Progress } from './tracker/progress';
import { ProgressTracker, describeTrackerConfig } from './tracker/progress-tracker';
import type { ProgressMap, TrackerConfig } from './tracker/progress-tracker';
import { EntryType, MessageType } from './types';
import type { ConfChange, ConfChangeV2, ConfState, Entry, HardState, Message, Snapshot } from './types';
import { describeConfState, describeMessage, messageTypeName, payloadSize } from './util';

/** StateRole is the role of a raft peer. */
export type StateRole = 'Follower' | 'Candidate' | 'Leader' | 'PreCandidate';
export const StateRole = {
  Follower: 'Follower',
  Candidate: 'Candidate',
  Leader: 'Leader',
  PreCandidate: 'PreCandidate',
} as const;

/** SoftState is volatile state that hosts may want to observe (not persisted). */
export interface SoftState {
  leaderId: number;
  raftState: StateRole;
}

/** CampaignType says why an election starts. */
export type CampaignType = 'CampaignPreElection' | 'CampaignElection' | 'CampaignTransfer';

/** CAMPAIGN_TRANSFER is the vote context that forces a vote despite leader lease (leader transfer). */
export const CAMPAIGN_TRANSFER = new TextEncoder().encode('CampaignTransfer');

function isCampaignTransfer(ctx: Uint8Array | undefined): boolean {
  if (ctx === undefined || ctx.length !== CAMPAIGN_TRANSFER.length) return false;
  for (let i = 0; i < ctx.length; i++) if (ctx[i] !== CAMPAIGN_TRANSFER[i]) return false;
  return true;
}

/** makeMessage builds a Message with every field present, so all messages share one object shape. */
export function makeMessage(msgType: MessageType, to: number): Message {
  return {
    msgType,
    to,
    from: 0,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    commitTerm: 0,
    snapshot: undefined,
    requestSnapshot: 0,
    reject: false,
    rejectHint: 0,
    context: undefined,
    priority: 0,
  };
}

function voteRespMsgType(t: MessageType): MessageType {
  if (t === MessageType.MsgRequestVote) return MessageType.MsgRequestVoteResponse;
  if (t === MessageType.MsgRequestPreVote) return MessageType.MsgRequestPreVoteResponse;
  throw new Error(`raft invariant violated: not a vote message: ${t}`);
}

const MAX_PENDING_READ_INDEX_MESSAGES = 65536;

export class Raft {
  readonly id: number;
  term = 0;
  vote = 0;
  readStates: ReadState[] = [];
  raftLog: RaftLog;
  prs: ProgressTracker;
  state: StateRole = StateRole.Follower;
  /** isLearner is true when this peer is a learner in the current config. */
  isLearner = false;
  /** msgs may be sent immediately. */
  msgs: Message[] = [];
  /** msgsAfterAppend must wait until the entries and hard state produced with them are durable. */
  msgsAfterAppend: Message[] = [];
  leaderId = 0;
  /** leadTransferee is the target of an ongoing leader transfer, or 0. */
  leadTransferee = 0;
  /**
   * leaseForfeited: this leader sent a MsgTimeoutNow in its current term, so
   * it must not trust a leader lease again until the term ends (reset()).
   *
   * A lease holds because voters that heard from the leader within an
   * election timeout refuse to vote; a MsgTimeoutNow makes its receiver
   * campaign with CAMPAIGN_TRANSFER, which voters grant despite that. The
   * message can arrive arbitrarily late — after the transfer was abandoned
   * and the lease trusted again (6.5 s late was seen, issue #15) — and
   * elect a new leader while this one serves lease reads. Of the fixes:
   *  - the transferee dropping a MsgTimeoutNow of an older term does not
   *    help: the late message carries the current term;
   *  - dropping it after a newer heartbeat fails when the transferee heard
   *    nothing since (the case of a partition) and is still forced;
   *  - an expiry in the message needs clocks the peers share;
   * while a leader that sent one message whose effect it cannot bound
   * gives up the shortcut locally, at no protocol change, and only for the
   * rest of a term that attempted a transfer (normally that term ends with
   * the transfer). A MsgTimeoutNow of term T forces at most an election of
   * term T+1, so no later leader's lease is at risk. Reads meanwhile go
   * through ReadIndex rounds (lease-based mode falls back to 'safe'), and
   * hosts keeping their own lease (the store's operation/query.ts) must
   * check this flag too.
   */
  leaseForfeited = false;
  /**
   * pendingConfIndex is the log index of the latest pending conf change;
   * a new one may only be proposed once the log is applied past it.
   */
  pendingConfIndex = 0;
  /** uncommittedSize is the payload bytes of uncommitted entries (leader only). */
  uncommittedSize = 0;
  readOnly: ReadOnly;
  electionElapsed = 0;
  heartbeatElapsed = 0;
  checkQuorum: boolean;
  preVote: boolean;
  heartbeatTimeout: number;
  electionTimeout: number;
  randomizedElectionTimeout = 0;
  minElectionTimeout: number;
  maxElectionTimeout: number;
  disableProposalForwarding: boolean;
  priority: number;
  skipBcastCommit: boolean;
  /** pendingRequestSnapshot: the index at which this follower asked the leader for a snapshot, or 0. */
  pendingRequestSnapshot = 0;
  /** pendingReadIndexMessages wait until the leader committed an entry of its term. */
  pendingReadIndexMessages: Message[] = [];
  /**
   * deferBcastAppend: instead of sending a MsgApp per proposal, mark
   * `bcastPending` and send once when flushed (RawNode flushes before
   * building a Ready). This batches proposals into few messages.
   */
  deferBcastAppend = false;
  bcastPending = false;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly random: () => number;
  readonly logger: Logger;
  readonly config: ResolvedConfig;
  private readonly debug: boolean;
  /** infoOn: build info messages only for a logger that wants them (the default logger is silent). */
  private readonly infoOn: boolean;

  constructor(c: Config, storage: Storage) {
    const cfg = validateConfig(c);
    this.config = cfg;
    this.id = cfg.id;
    this.raftLog = new RaftLog(storage, cfg.maxCommittedSizePerReady);
    this.maxMsgSize = cfg.maxSizePerMsg;
    this.maxUncommittedSize = cfg.maxUncommittedEntriesSize === 0 ? Infinity : cfg.maxUncommittedEntriesSize;
    this.prs = new ProgressTracker(cfg.maxInflightMsgs, cfg.maxInflightBytes);
    this.electionTimeout = cfg.electionTick;
    this.heartbeatTimeout = cfg.heartbeatTick;
    this.minElectionTimeout = cfg.minElectionTick;
    this.maxElectionTimeout = cfg.maxElectionTick;
    this.checkQuorum = cfg.checkQuorum;
    this.preVote = cfg.preVote;
    this.readOnly = new ReadOnly(cfg.readOnlyOption);
    this.disableProposalForwarding = cfg.disableProposalForwarding;
    this.priority = cfg.priority;
    this.skipBcastCommit = cfg.skipBcastCommit;
    this.random = cfg.random;
    this.logger = cfg.logger;
    this.debug = cfg.logger.isDebugEnabled?.() ?? false;
    this.infoOn = cfg.logger.isInfoEnabled?.() ?? cfg.logger !== silentLogger;

    const { hardState, confState } = storage.initialState();
    const res = restoreConfState(new Changer(this.prs, this.raftLog.lastIndex()), confState);
    const cs = this.switchToConfig(res.config, res.progress);
    assertConfStatesEquivalent(confState, cs);

    if (hardState.term !== 0 || hardState.vote !== 0 || hardState.commit !== 0) this.loadState(hardState);
    if (cfg.applied > 0) {
      if (cfg.applied > this.raftLog.committed) {
        // The host applied entries handed out after a commit advance (e.g.
        // from a LightReady) whose hard state it had not yet persisted.
        // They were committed and are in the durable log, so the commit
        // index may safely catch up with them.
        assert(
          cfg.applied <= this.raftLog.lastIndex(),
          `applied(${cfg.applied}) is out of range [committed(${this.raftLog.committed}), lastIndex(${this.raftLog.lastIndex()})]`,
        );
        if (this.infoOn) this.logger.info(`${this.id} raising commit ${this.raftLog.committed} to applied ${cfg.applied} on restart`);
        this.raftLog.committed = cfg.applied;
      }
      this.raftLog.appliedTo(cfg.applied);
    }
    this.becomeFollower(this.term, 0);
    if (this.infoOn) this.logger.info(`newRaft ${this.id} [peers: ${this.prs.voterNodes().join(',')}, term: ${this.term}, commit: ${this.raftLog.committed}, applied: ${this.raftLog.applied}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}]`);
  }

  get readOnlyOption(): ReadOnlyOption {
    return this.readOnly.option;
  }

  softState(): SoftState {
    return { leaderId: this.leaderId, raftState: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  /** readMessages returns and clears all outgoing messages (both kinds); for tests and simple drivers. */
  readMessages(): Message[] {
    this.flushBcastAppend();
    const out = this.msgs.length === 0 ? this.msgsAfterAppend : this.msgs.concat(this.msgsAfterAppend);
    this.msgs = [];
    this.msgsAfterAppend = [];
    return out;
  }

  /** loadStateForTest sets term, vote and commit as if loaded from storage (tests). */
  loadStateForTest(term: number, vote: number, commit: number): void {
    this.loadState({ term, vote, commit });
  }

  private loadState(hs: HardState): void {
    assert(
      hs.commit >= this.raftLog.committed && hs.commit <= this.raftLog.lastIndex(),
      `${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
    );
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---- sending ----------------------------------------------------------

  /** send stamps from/term and queues m as immediate or after-append. */
  send(m: Message): void {
    if (m.from === 0) m.from = this.id;
    const t = m.msgType;
    if (t === MessageType.MsgRequestVote || t === MessageType.MsgRequestVoteResponse || t === MessageType.MsgRequestPreVote || t === MessageType.MsgRequestPreVoteResponse) {
      // Vote messages carry the term they are about (which may differ from ours for pre-votes).
      assert(m.term !== 0, `term should be set when sending ${messageTypeName(t)}`);
    } else {
      assert(m.term === 0, `term should not be set when sending ${messageTypeName(t)} (was ${m.term})`);
      // Proposals and read requests are forwarded without a term: they are local in nature.
      if (t !== MessageType.MsgProp && t !== MessageType.MsgReadIndex) m.term = this.term;
    }
    if (t === MessageType.MsgAppResp || t === MessageType.MsgRequestVote || t === MessageType.MsgRequestVoteResponse) {
      // These acknowledge or depend on state that must be durable first:
      // accepted entries, our term and our vote.
      this.msgsAfterAppend.push(m);
    } else {
      this.msgs.push(m);
    }
  }

  /** sendAppend sends a MsgApp (possibly empty) to `to` unless it is paused. */
  sendAppend(to: number): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * maybeSendAppend sends entries from pr.next to `to` (or a snapshot if
   * they were compacted). Returns true if a message was sent.
   */
  maybeSendAppend(to: number, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    if (pr.pendingRequestSnapshot !== 0) return this.maybeSendSnapshot(to, pr);
    const prevIndex = pr.next - 1;
    const prevTerm = this.raftLog.maybeTerm(prevIndex);
    if (prevTerm === undefined) {
      // The log was compacted past what the follower has: send a snapshot instead.
      return this.maybeSendSnapshot(to, pr);
    }
    let ents: Entry[];
    try {
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch (e) {
      if (e instanceof CompactedError) return this.maybeSendSnapshot(to, pr);
      throw e;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    const m = makeMessage(MessageType.MsgApp, to);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = this.raftLog.committed;
    this.send(m);
    let bytes = 0;
    for (let i = 0; i < ents.length; i++) bytes += payloadSize(ents[i]!);
    pr.sentEntries(ents.length, bytes);
    pr.sentCommitTo(Math.min(this.raftLog.committed, prevIndex + ents.length));
    return true;
  }

  private maybeSendSnapshot(to: number, pr: Progress): boolean {
    if (!pr.recentActive) {
      if (this.debug) this.logger.debug(`${this.id} ignore sending snapshot to ${to} since it is not recently active`);
      return false;
    }
    let snapshot: Snapshot;
    try {
      snapshot = this.raftLog.snapshot(to, pr.pendingRequestSnapshot);
    } catch (e) {
      if (e instanceof SnapshotTemporarilyUnavailableError) {
        if (this.debug) this.logger.debug(`${this.id} failed to send snapshot to ${to} because snapshot is temporarily unavailable`);
        return false;
      }
      throw e;
    }
    assert(snapshot.metadata.index !== 0, 'need non-empty snapshot');
    const sindex = snapshot.metadata.index;
    if (this.debug) this.logger.debug(`${this.id} [firstindex: ${this.raftLog.firstIndex()}, commit: ${this.raftLog.committed}] sent snapshot[index: ${sindex}, term: ${snapshot.metadata.term}] to ${to} [${pr.toString()}]`);
    pr.becomeSnapshot(sindex);
    const m = makeMessage(MessageType.MsgSnapshot, to);
    m.snapshot = snapshot;
    this.send(m);
    return true;
  }

  /** sendHeartbeat sends a heartbeat; the commit is capped at the follower's match so it never exceeds its log. */
  private sendHeartbeat(to: number, ctx: Uint8Array | undefined): void {
    const pr = this.prs.progress.get(to)!;
    const commit = Math.min(pr.match, this.raftLog.committed);
    const m = makeMessage(MessageType.MsgHeartbeat, to);
    m.commit = commit;
    m.context = ctx;
    this.send(m);
    pr.sentCommitTo(commit);
  }

  /** bcastAppend sends MsgApp to every peer but ourselves. */
  bcastAppend(): void {
    const ids = this.prs.ids;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id !== this.id) this.sendAppend(id);
    }
  }

  /** flushBcastAppend sends the broadcast deferred by proposals (see deferBcastAppend). */
  flushBcastAppend(): void {
    if (this.bcastPending) {
      this.bcastPending = false;
      if (this.state === StateRole.Leader) this.bcastAppend();
    }
  }

  /** bcastHeartbeat sends the periodic heartbeat; it carries the newest pending read round, so its acks also confirm that round. */
  bcastHeartbeat(): void {
    const last = this.readOnly.lastPendingRound();
    this.bcastHeartbeatWithCtx(last === undefined ? undefined : encodeRound(last));
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    const ids = this.prs.ids;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    }
  }

  // ---- commit and append ------------------------------------------------

  /** maybeCommit advances the commit index to what a quorum acknowledged (current-term entries only). */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.prs.committed(), this.term);
  }

  /**
   * appendEntry assigns term/index to es and appends them. Returns false
   * (appending nothing) if the uncommitted size limit would be exceeded.
   * The leader's own match advances only when the entries are persisted
   * (onPersistEntries).
   */
  appendEntry(es: Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      const e = es[i]!;
      e.term = this.term;
      e.index = li + 1 + i;
    }
    if (!this.increaseUncommittedSize(es)) {
      if (this.debug) this.logger.debug(`${this.id} appending new entries to log would exceed uncommitted entry size limit; dropping proposal`);
      return false;
    }
    this.raftLog.append(es);
    return true;
  }

  private increaseUncommittedSize(es: Entry[]): boolean {
    let s = 0;
    for (let i = 0; i < es.length; i++) s += payloadSize(es[i]!);
    // Always allow a proposal when nothing is uncommitted, so a single large
    // entry cannot block progress forever; empty entries always pass.
    if (this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > this.maxUncommittedSize) return false;
    this.uncommittedSize += s;
    return true;
  }

  /** reduceUncommittedSize accounts for entries that were committed (handed out for applying). */
  reduceUncommittedSize(s: number): void {
    if (s > this.uncommittedSize) this.uncommittedSize = 0;
    else this.uncommittedSize -= s;
  }

  // ---- ticking ----------------------------------------------------------

  tick(): void {
    if (this.state === StateRole.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  /** tickElection is run by non-leaders: campaign after the randomized election timeout. */
  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      const m = makeMessage(MessageType.MsgHup, 0);
      m.from = this.id;
      this.step(m);
    }
  }

  /** tickHeartbeat is run by leaders: heartbeats, check-quorum, and leader transfer timeout. */
  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        const m = makeMessage(MessageType.MsgCheckQuorum, 0);
        m.from = this.id;
        this.step(m);
      }
      // A transfer that did not finish within an election timeout is aborted.
      if (this.state === StateRole.Leader && this.leadTransferee !== 0) this.abortLeaderTransfer();
    }
    if (this.state !== StateRole.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      const m = makeMessage(MessageType.MsgBeat, 0);
      m.from = this.id;
      this.step(m);
    }
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  resetRandomizedElectionTimeout(): void {
    const span = this.maxElectionTimeout - this.minElectionTimeout;
    let r = Math.floor(this.random() * span);
    if (!(r >= 0 && r < span)) r = 0; // a misbehaving random source must not break the range
    this.randomizedElectionTimeout = this.minElectionTimeout + r;
  }

  // ---- role changes -------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = 0;
    }
    this.leaderId = 0;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.leaseForfeited = false;
    this.prs.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    const prs = this.prs.prs;
    for (let i = 0; i < prs.length; i++) {
      const pr = prs[i]!;
      pr.reset(lastIndex + 1);
      if (this.prs.ids[i] === this.id) pr.match = this.raftLog.persisted;
    }
    this.pendingConfIndex = 0;
    this.pendingRequestSnapshot = 0;
    this.uncommittedSize = 0;
    this.readOnly.reset();
    this.pendingReadIndexMessages = [];
    this.bcastPending = false;
  }

  becomeFollower(term: number, lead: number): void {
    this.reset(term);
    this.leaderId = lead;
    this.state = StateRole.Follower;
    if (this.infoOn) this.logger.info(`${this.id} became follower at term ${this.term}`);
  }

  becomeCandidate(): void {
    assert(this.state !== StateRole.Leader, 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateRole.Candidate;
    if (this.infoOn) this.logger.info(`${this.id} became candidate at term ${this.term}`);
  }

  /** becomePreCandidate changes role only: term and vote stay, so a failed pre-vote disturbs nobody. */
  becomePreCandidate(): void {
    assert(this.state !== StateRole.Leader, 'invalid transition [leader -> pre-candidate]');
    this.prs.resetVotes();
    this.leaderId = 0;
    this.state = StateRole.PreCandidate;
    if (this.infoOn) this.logger.info(`${this.id} became pre-candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    assert(this.state !== StateRole.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.leaderId = this.id;
    this.state = StateRole.Leader;
    const pr = this.prs.progress.get(this.id);
    if (pr !== undefined) {
      // Our own progress is Replicate: we never send to ourselves.
      pr.becomeReplicate();
      pr.match = this.raftLog.persisted;
      pr.next = this.raftLog.lastIndex() + 1;
      pr.recentActive = true;
    }
    // Conservatively treat any unapplied entry as a possible conf change,
    // so no new conf change is proposed until everything is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // The empty entry commits all previous-term entries (§5.4.2); it does not
    // count toward the uncommitted size limit.
    const empty: Entry = { entryType: EntryType.EntryNormal, term: 0, index: 0, data: new Uint8Array(0) };
    assert(this.appendEntry([empty]), 'empty entry was dropped');
    if (this.infoOn) this.logger.info(`${this.id} became leader at term ${this.term}`);
  }

  /** promotable: a voter without a pending snapshot may campaign. */
  promotable(): boolean {
    const pr = this.prs.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  private hup(t: CampaignType): void {
    if (this.state === StateRole.Leader) {
      if (this.debug) this.logger.debug(`${this.id} ignoring MsgHup because already leader`);
      return;
    }
    if (!this.promotable()) {
      this.logger.warn(`${this.id} is unpromotable and can not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger.warn(`${this.id} cannot campaign at term ${this.term} since there are still pending configuration changes to apply`);
      return;
    }
    if (this.infoOn) this.logger.info(`${this.id} is starting a new election at term ${this.term}`);
    this.campaign(t);
  }

  /** hasUnappliedConfChanges scans committed-but-unapplied entries (in pages) for a conf change. */
  private hasUnappliedConfChanges(): boolean {
    const log = this.raftLog;
    if (log.applied >= log.committed) return false;
    let lo = log.applied + 1;
    const hi = log.committed + 1;
    while (lo < hi) {
      let ents: Entry[];
      try {
        ents = log.slice(lo, hi, log.maxApplyingEntsSize);
      } catch {
        return false;
      }
      if (ents.length === 0) break;
      for (const e of ents) if (e.entryType !== EntryType.EntryNormal) return true;
      lo += ents.length;
    }
    return false;
  }

  /** campaign starts a (pre-)election and asks every voter for its vote. */
  campaign(t: CampaignType): void {
    if (!this.promotable()) {
      this.logger.warn(`${this.id} is unpromotable; campaign() should have been called`);
      return;
    }
    let voteMsg: MessageType;
    let term: number;
    if (t === 'CampaignPreElection') {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgRequestPreVote;
      // Pre-votes are sent for the next term, without increasing our own.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgRequestVote;
      term = this.term;
    }
    // Vote for ourselves. (Our vote is durable before the vote requests go
    // out, since MsgRequestVote is an after-append message.)
    const res = this.poll(this.id, voteRespMsgType(voteMsg), true);
    if (res === VoteResult.Won) {
      // Single-voter configuration: we won at once.
      if (t === 'CampaignPreElection') this.campaign('CampaignElection');
      else this.becomeLeader();
      return;
    }
    const ids = this.prs.voterNodes();
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of ids) {
      if (id === this.id) continue;
      if (this.infoOn) this.logger.info(`${this.id} [logterm: ${lastTerm}, index: ${lastIndex}] sent ${messageTypeName(voteMsg)} request to ${id} at term ${this.term}`);
      const m = makeMessage(voteMsg, id);
      m.term = term;
      m.index = lastIndex;
      m.logTerm = lastTerm;
      m.commit = this.raftLog.committed;
      m.priority = this.priority;
      if (t === 'CampaignTransfer') m.context = CAMPAIGN_TRANSFER;
      this.send(m);
    }
  }

  private poll(id: number, t: MessageType, v: boolean): VoteResult {
    if (this.infoOn) {
      if (this.infoOn) this.logger.info(`${this.id} received ${messageTypeName(t)}${v ? '' : ' rejection'} from ${id} at term ${this.term}`);
    }
    this.prs.recordVote(id, v);
    return this.prs.tallyVotes().result;
  }

  // ---- stepping ---------------------------------------------------------

  /**
   * step is the entry point for every message. It throws
   * ProposalDroppedError when a proposal cannot be accepted.
   */
  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.msgType === MessageType.MsgRequestVote || m.msgType === MessageType.MsgRequestPreVote) {
        const force = isCampaignTransfer(m.context);
        const inLease = this.checkQuorum && this.leaderId !== 0 && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // Leader lease: we heard from a leader within the election timeout,
          // so we neither update our term nor grant a vote (§9.6 / §4.2.3).
          if (this.infoOn) this.logger.info(`${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote}] ignored ${messageTypeName(m.msgType)} from ${m.from} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}: lease is not expired (remaining ticks: ${this.electionTimeout - this.electionElapsed})`);
          return;
        }
      }
      if (m.msgType === MessageType.MsgRequestPreVote) {
        // Never change our term in response to a pre-vote.
      } else if (m.msgType === MessageType.MsgRequestPreVoteResponse && !m.reject) {
        // We send pre-votes with a future term; on a quorum we bump our term then.
      } else {
        if (this.infoOn) this.logger.info(`${this.id} [term: ${this.term}] received a ${messageTypeName(m.msgType)} message with higher term from ${m.from} [term: ${m.term}]`);
        const t = m.msgType;
        if (t === MessageType.MsgApp || t === MessageType.MsgHeartbeat || t === MessageType.MsgSnapshot) this.becomeFollower(m.term, m.from);
        else this.becomeFollower(m.term, 0);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.msgType === MessageType.MsgHeartbeat || m.msgType === MessageType.MsgApp)) {
        // A stale leader (e.g. partitioned and now back) would otherwise never
        // learn our term, and with check-quorum / pre-vote we might never
        // campaign to tell it. This response makes it step down.
        this.send(makeMessage(MessageType.MsgAppResp, m.from));
      } else if (m.msgType === MessageType.MsgRequestPreVote) {
        // Reject with our term so the pre-candidate learns it is stale.
        if (this.infoOn) this.logger.info(`${this.id} rejected ${messageTypeName(m.msgType)} from ${m.from} at term ${this.term}`);
        const r = makeMessage(MessageType.MsgRequestPreVoteResponse, m.from);
        r.term = this.term;
        r.reject = true;
        this.send(r);
      } else if (this.debug) {
        this.logger.debug(`${this.id} [term: ${this.term}] ignored a ${messageTypeName(m.msgType)} message with lower term from ${m.from} [term: ${m.term}]`);
      }
      return;
    }

    switch (m.msgType) {
      case MessageType.MsgHup:
        this.hup(this.preVote ? 'CampaignPreElection' : 'CampaignElection');
        return;
      case MessageType.MsgRequestVote:
      case MessageType.MsgRequestPreVote:
        this.handleVoteRequest(m);
        return;
      default:
        switch (this.state) {
          case StateRole.Leader:
            this.stepLeader(m);
            return;
          case StateRole.Candidate:
          case StateRole.PreCandidate:
            this.stepCandidate(m);
            return;
          default:
            this.stepFollower(m);
        }
    }
  }

  private handleVoteRequest(m: Message): void {
    // We can vote if this is a repeat of a vote we cast, or we have not voted
    // and know no leader in this term, or it is a pre-vote for a future term.
    const canVote =
      this.vote === m.from || (this.vote === 0 && this.leaderId === 0) || (m.msgType === MessageType.MsgRequestPreVote && m.term > this.term);
    // Priority elections (raft-rs): with an equally up-to-date log we only
    // vote for candidates whose priority is at least ours.
    if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm) && (m.index > this.raftLog.lastIndex() || this.priority <= m.priority)) {
      if (this.infoOn) this.logger.info(`${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote}] cast ${messageTypeName(m.msgType)} for ${m.from} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`);
      // The response carries the message's term, not ours: for a pre-vote our
      // term stays, and the pre-candidate must recognize the answer.
      const r = makeMessage(voteRespMsgType(m.msgType), m.from);
      r.term = m.term;
      this.send(r);
      if (m.msgType === MessageType.MsgRequestVote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      if (this.infoOn) this.logger.info(`${this.id} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${this.vote}] rejected ${messageTypeName(m.msgType)} from ${m.from} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`);
      const r = makeMessage(voteRespMsgType(m.msgType), m.from);
      r.term = this.term;
      r.reject = true;
      this.send(r);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.msgType) {
      case MessageType.MsgBeat:
        this.bcastHeartbeat();
        return;
      case MessageType.MsgCheckQuorum:
        if (!this.prs.quorumActive()) {
          this.logger.warn(`${this.id} stepped down to follower since quorum is not active`);
          this.becomeFollower(this.term, 0);
        }
        // Mark everyone (but ourselves) inactive for the next round.
        for (let i = 0; i < this.prs.ids.length; i++) {
          if (this.prs.ids[i] !== this.id) this.prs.prs[i]!.recentActive = false;
        }
        return;
      case MessageType.MsgProp:
        this.stepLeaderProp(m);
        return;
      case MessageType.MsgReadIndex:
        // Only one voter (ourselves): answer at once.
        if (this.prs.isSingleton()) {
          const resp = this.responseToReadIndexReq(m, this.raftLog.committed);
          if (resp !== undefined) this.send(resp);
          return;
        }
        // A new leader does not know the commit index until it committed an
        // entry of its own term (§6.4): postpone the read until then.
        if (!this.committedEntryInCurrentTerm()) {
          if (this.pendingReadIndexMessages.length < MAX_PENDING_READ_INDEX_MESSAGES) this.pendingReadIndexMessages.push(m);
          return;
        }
        this.sendMsgReadIndexResponse(m);
        return;
    }

    const pr = this.prs.progress.get(m.from);
    if (pr === undefined) {
      if (this.debug) this.logger.debug(`${this.id} no progress available for ${m.from}`);
      return;
    }
    switch (m.msgType) {
      case MessageType.MsgAppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.MsgHeartbeatResponse:
        this.handleHeartbeatResponse(m, pr);
        return;
      case MessageType.MsgSnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (!m.reject) {
          pr.becomeProbe();
          if (this.infoOn) this.logger.info(`${this.id} snapshot succeeded, resumed sending replication messages to ${m.from} [${pr.toString()}]`);
        } else {
          // The snapshot failed: forget it so the next probe may send a fresh one.
          pr.pendingSnapshot = 0;
          pr.becomeProbe();
          if (this.infoOn) this.logger.info(`${this.id} snapshot failed, resumed sending replication messages to ${m.from} [${pr.toString()}]`);
        }
        // Wait for the follower's MsgAppResp (success) or a heartbeat response
        // (failure) before the next MsgApp.
        pr.probeSent = true;
        return;
      case MessageType.MsgUnreachable:
        // The last MsgApp was probably lost: fall back to probing.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        if (this.debug) this.logger.debug(`${this.id} failed to send message to ${m.from} because it is unreachable [${pr.toString()}]`);
        return;
      case MessageType.MsgTransferLeader: {
        if (pr.isLearner) {
          if (this.infoOn) this.logger.info(`${this.id} is learner. Ignored transferring leadership`);
          return;
        }
        const leadTransferee = m.from;
        const last = this.leadTransferee;
        if (last !== 0) {
          if (last === leadTransferee) {
            if (this.infoOn) this.logger.info(`${this.id} [term ${this.term}] transfer leadership to ${leadTransferee} is in progress, ignores request to same node ${leadTransferee}`);
            return;
          }
          this.abortLeaderTransfer();
          if (this.infoOn) this.logger.info(`${this.id} [term ${this.term}] abort previous transferring leadership to ${last}`);
        }
        if (leadTransferee === this.id) {
          if (this.debug) this.logger.debug(`${this.id} is already leader. Ignored transferring leadership to self`);
          return;
        }
        if (this.infoOn) this.logger.info(`${this.id} [term ${this.term}] starts to transfer leadership to ${leadTransferee}`);
        // The transfer must finish within one election timeout.
        this.electionElapsed = 0;
        this.leadTransferee = leadTransferee;
        if (pr.match === this.raftLog.lastIndex()) {
          this.sendTimeoutNow(leadTransferee);
          if (this.infoOn) this.logger.info(`${this.id} sends MsgTimeoutNow to ${leadTransferee} immediately as ${leadTransferee} already has up-to-date log`);
        } else {
          this.sendAppend(leadTransferee);
        }
        return;
      }
    }
  }

  private stepLeaderProp(m: Message): void {
    assert(m.entries.length > 0, `${this.id} stepped empty MsgProp`);
    if (!this.prs.progress.has(this.id)) {
      // We were removed from the configuration while leader.
      throw new ProposalDroppedError(`${this.id} is not in the configuration`);
    }
    if (this.leadTransferee !== 0) {
      throw new ProposalDroppedError(`${this.id} [term ${this.term}] transfer leadership to ${this.leadTransferee} is in progress; dropping proposal`);
    }
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      if (e.entryType === EntryType.EntryNormal) continue;
      let cc: ConfChangeV2;
      try {
        cc = decodeConfChangeEntry(e.entryType, e.data);
      } catch (err) {
        if (err instanceof ConfChangeDecodeError) throw new ProposalDroppedError(`undecodable conf change: ${err.message}`);
        throw err;
      }
      const alreadyPending = this.pendingConfIndex > this.raftLog.applied;
      const alreadyJoint = this.prs.config.voters.outgoing.size > 0;
      const wantsLeaveJoint = cc.changes.length === 0;
      let failedCheck = '';
      if (alreadyPending) failedCheck = `possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.raftLog.applied})`;
      else if (alreadyJoint && !wantsLeaveJoint) failedCheck = 'must transition out of joint config first';
      else if (!alreadyJoint && wantsLeaveJoint) failedCheck = 'not in joint state; refusing empty conf change';
      if (failedCheck !== '') {
        // Replace the change with an empty normal entry: the proposal still
        // occupies its index (callers waiting on it see it apply as a no-op).
        if (this.infoOn) this.logger.info(`${this.id} ignoring conf change ${describeTrackerConfig(this.prs.config)} at config: ${failedCheck}`);
        m.entries[i] = { entryType: EntryType.EntryNormal, term: 0, index: 0, data: new Uint8Array(0) };
      } else {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      }
    }
    if (!this.appendEntry(m.entries)) throw new ProposalDroppedError('uncommitted entries size limit exceeded');
    if (this.deferBcastAppend) this.bcastPending = true;
    else this.bcastAppend();
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      if (this.debug) this.logger.debug(`${this.id} received MsgAppResp(rejected, hint: (index ${m.rejectHint}, term ${m.logTerm})) from ${m.from} for index ${m.index}`);
      // Fast backtracking: the follower told us (rejectHint, logTerm) = the
      // largest index at which its term is <= the term of our probe. Skip
      // straight to the last index where our log can match.
      let nextProbeIdx = m.rejectHint;
      if (m.logTerm > 0) nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbeIdx, m.requestSnapshot)) {
        if (this.debug) this.logger.debug(`${this.id} decreased progress of ${m.from} to [${pr.toString()}]`);
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      if (m.requestSnapshot !== 0) this.maybeCommitRequestedSnapshotIndex(m, pr);
      return;
    }
    // Update tracking if the response raises match, or confirms a probe.
    if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === ProgressState.Probe)) {
      if (pr.state === ProgressState.Probe) {
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.raftLog.firstIndex()) {
        // The follower caught up past the compaction point (e.g. via a
        // snapshot from elsewhere): resume normal replication.
        if (this.debug) this.logger.debug(`${this.id} recovered from needing snapshot, resumed sending replication messages to ${m.from} [${pr.toString()}]`);
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Replicate) {
        pr.inflights.freeLE(m.index);
      }
      if (this.maybeCommit()) {
        this.releasePendingReadIndexMessages();
        if (!this.skipBcastCommit) this.bcastAppend();
        else if (m.from !== this.id) this.maybeSendAppend(m.from, false);
      } else if (m.from !== this.id && pr.canBumpCommit(this.raftLog.committed)) {
        // The follower's commit is behind: tell it (possibly with an empty MsgApp).
        this.sendAppend(m.from);
      }
      // Flow control may now allow several messages (probe -> replicate, or
      // freeLE covered several inflights): send as many as allowed.
      if (m.from !== this.id) {
        let guard = this.prs.maxInflight + 1;
        while (guard-- > 0 && this.maybeSendAppend(m.from, false)) {
          /* keep sending */
        }
      }
      if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
        if (this.infoOn) this.logger.info(`${this.id} sent MsgTimeoutNow to ${m.from} after received MsgAppResp`);
        this.sendTimeoutNow(m.from);
      }
    }
  }

  /**
   * maybeCommitRequestedSnapshotIndex counts a follower's snapshot request
   * as the acknowledgement it also is: the follower's log holds ours up to
   * the request index, durably.
   *
   * A follower requests a snapshot at its last index, which may be above our
   * commit, and then refuses appends until it has one; the snapshot can
   * only be made at or above the request index (the Storage contract), that
   * is once we have applied it, so committed it. If the followers waiting
   * for snapshots leave the others short of a quorum, nothing else can
   * commit that index, and commit, apply and snapshot wait on each other
   * for ever (raft-rs, whose requestSnapshot this is, does not count the
   * request either; its MemStorage raises a snapshot's index to the
   * request index, which hides the hole from its tests).
   *
   * Counting the request is safe: the follower sends it only after its log
   * through the request index is durable (MsgAppResp goes out with
   * persistedMessages); the entry there is of the term the request carries,
   * which is ours, so by Log Matching that log equals ours up to there; and
   * within our term the follower never truncates below it (it appends
   * nothing while waiting, and the snapshot it restores is at or above the
   * request index).
   */
  private maybeCommitRequestedSnapshotIndex(m: Message, pr: Progress): void {
    const index = m.requestSnapshot;
    // Only an entry of our own term makes the Log Matching argument above.
    if (index > this.raftLog.lastIndex() || !this.raftLog.matchTerm(index, this.term)) return;
    if (!pr.maybeUpdate(index)) return;
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      if (!this.skipBcastCommit) this.bcastAppend();
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // If the window is full, a lost MsgApp would stall replication forever:
    // the heartbeat response proves the follower is alive, so free a slot.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    // Also probe a caught-up follower in Probe state (e.g. after
    // reportUnreachable): its answer moves it back to Replicate (etcd).
    if (pr.match < this.raftLog.lastIndex() || pr.state === ProgressState.Probe || pr.canBumpCommit(this.raftLog.committed)) {
      this.sendAppend(m.from);
    }

    // The context is a read round (read-only.ts), never a caller's context.
    // Rounds are pending in 'safe' mode, and in 'lease-based' mode once the
    // lease was forfeited; otherwise heartbeats carry no context.
    if (m.context === undefined || m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined) return;
    const lookup = { vote: (id: number) => acks.get(id) };
    if (this.prs.config.voters.voteResult(lookup) !== VoteResult.Won) return;
    const rss = this.readOnly.advance(m);
    for (const rs of rss) {
      const resp = this.responseToReadIndexReq(rs.req, rs.index);
      if (resp !== undefined) this.send(resp);
    }
  }

  private stepCandidate(m: Message): void {
    // A pre-candidate only counts pre-vote responses, a candidate only votes:
    // a stale vote from an earlier pre-campaign must not count.
    const myVoteRespType = this.state === StateRole.PreCandidate ? MessageType.MsgRequestPreVoteResponse : MessageType.MsgRequestVoteResponse;
    switch (m.msgType) {
      case MessageType.MsgProp:
        throw new ProposalDroppedError(`${this.id} no leader at term ${this.term}; dropping proposal`);
      case MessageType.MsgApp:
        this.becomeFollower(m.term, m.from); // always m.term == this.term
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnapshot:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTimeoutNow:
        if (this.debug) this.logger.debug(`${this.id} [term ${this.term} state ${this.state}] ignored MsgTimeoutNow from ${m.from}`);
        return;
      default:
        if (m.msgType !== myVoteRespType) return;
    }
    const res = this.poll(m.from, m.msgType, !m.reject);
    if (res === VoteResult.Won) {
      if (this.state === StateRole.PreCandidate) {
        this.campaign('CampaignElection');
      } else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (res === VoteResult.Lost) {
      // A pre-vote rejection with a higher term was handled in step(); here
      // the term stays.
      this.becomeFollower(this.term, 0);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.msgType) {
      case MessageType.MsgProp:
        if (this.leaderId === 0) throw new ProposalDroppedError(`${this.id} no leader at term ${this.term}; dropping proposal`);
        if (this.disableProposalForwarding) {
          throw new ProposalDroppedError(`${this.id} not forwarding to leader ${this.leaderId} at term ${this.term}; dropping proposal`);
        }
        m.to = this.leaderId;
        this.send(m);
        return;
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnapshot:
        this.electionElapsed = 0;
        this.leaderId = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTransferLeader:
        if (this.leaderId === 0) {
          if (this.infoOn) this.logger.info(`${this.id} no leader at term ${this.term}; dropping leader transfer msg`);
          return;
        }
        m.to = this.leaderId;
        this.send(m);
        return;
      case MessageType.MsgTimeoutNow:
        if (this.infoOn) this.logger.info(`${this.id} [term ${this.term}] received MsgTimeoutNow from ${m.from} and starts an election to get leadership`);
        // Leader transfer: campaign at once, skipping pre-vote and forcing votes past the lease.
        this.hup('CampaignTransfer');
        return;
      case MessageType.MsgReadIndex:
        if (this.leaderId === 0) {
          if (this.infoOn) this.logger.info(`${this.id} no leader at term ${this.term}; dropping index reading msg`);
          return;
        }
        m.to = this.leaderId;
        this.send(m);
        return;
      case MessageType.MsgReadIndexResp:
        if (m.entries.length !== 1) {
          this.logger.error(`${this.id} invalid format of MsgReadIndexResp from ${m.from}, entries count: ${m.entries.length}`);
          return;
        }
        this.readStates.push({ index: m.index, requestCtx: m.entries[0]!.data });
        return;
    }
  }

  /**
   * requestSnapshot asks the leader for a snapshot at least as new as our
   * last index (raft-rs), e.g. when the host's state machine must be rebuilt.
   * Throws RequestSnapshotDroppedError when it cannot be asked now.
   */
  requestSnapshot(): void {
    if (this.state === StateRole.Leader) throw new RequestSnapshotDroppedError('cannot request a snapshot on the leader');
    if (this.leaderId === 0) throw new RequestSnapshotDroppedError('no leader to request a snapshot from');
    if (this.raftLog.hasPendingSnapshot()) throw new RequestSnapshotDroppedError('a snapshot is already pending');
    if (this.pendingRequestSnapshot !== 0) throw new RequestSnapshotDroppedError('a snapshot request is already pending');
    const requestIndex = this.raftLog.lastIndex();
    if (this.raftLog.zeroTermOnOutOfBounds(requestIndex) !== this.term) {
      // Our last entry must come from the current leader, so the leader has it.
      throw new RequestSnapshotDroppedError('last entry is not from the current term');
    }
    this.pendingRequestSnapshot = requestIndex;
    this.sendRequestSnapshot();
  }

  private sendRequestSnapshot(): void {
    const m = makeMessage(MessageType.MsgAppResp, this.leaderId);
    m.index = this.raftLog.committed;
    m.reject = true;
    m.rejectHint = this.raftLog.lastIndex();
    m.requestSnapshot = this.pendingRequestSnapshot;
    m.commit = this.raftLog.committed;
    this.send(m);
  }

  /** handleAppendEntries is the follower side of MsgApp (§5.3). */
  handleAppendEntries(m: Message): void {
    if (this.pendingRequestSnapshot !== 0) {
      // Until the requested snapshot arrives, keep asking instead of appending.
      this.sendRequestSnapshot();
      return;
    }
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit matches the leader's log (Log Matching):
      // tell the leader where we are.
      const r = makeMessage(MessageType.MsgAppResp, m.from);
      r.index = this.raftLog.committed;
      r.commit = this.raftLog.committed;
      this.send(r);
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      const r = makeMessage(MessageType.MsgAppResp, m.from);
      r.index = lastNew;
      r.commit = this.raftLog.committed;
      this.send(r);
      return;
    }
    if (this.debug) this.logger.debug(`${this.id} [logterm: ${this.raftLog.zeroTermOnOutOfBounds(m.index)}, index: ${m.index}] rejected MsgApp [logterm: ${m.logTerm}, index: ${m.index}] from ${m.from}`);
    // Return a hint: the largest index <= min(m.index, lastIndex) whose term
    // is <= m.logTerm, so the leader can skip whole terms when backtracking.
    const hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    const hint = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    const r = makeMessage(MessageType.MsgAppResp, m.from);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = hint.index;
    r.logTerm = hint.term;
    r.commit = this.raftLog.committed;
    this.send(r);
  }

  handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    const r = makeMessage(MessageType.MsgHeartbeatResponse, m.from);
    r.context = m.context;
    this.send(r);
  }

  handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s === undefined) return;
    const r = makeMessage(MessageType.MsgAppResp, m.from);
    if (this.restore(s)) {
      if (this.infoOn) this.logger.info(`${this.id} [commit: ${this.raftLog.committed}] restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
      r.index = this.raftLog.lastIndex();
    } else {
      if (this.infoOn) this.logger.info(`${this.id} [commit: ${this.raftLog.committed}] ignored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
      r.index = this.raftLog.committed;
    }
    r.commit = this.raftLog.committed;
    this.send(r);
  }

  /**
   * restore installs a snapshot if it is newer than our commit and we are in
   * its configuration. Returns false if it was ignored (or only fast-forwarded
   * our commit because we already have the entry).
   */
  restore(s: Snapshot): boolean {
    // A snapshot at our commit index is only useful if we asked for one.
    if (s.metadata.index < this.raftLog.committed) return false;
    // A pending request is answered only by a snapshot at or above it.
    const requested = this.pendingRequestSnapshot !== 0 && s.metadata.index >= this.pendingRequestSnapshot;
    if (s.metadata.index === this.raftLog.committed && !requested) return false;
    // Committed entries handed out for applying come first: restoring now
    // would let their conf changes apply on top of the snapshot's config.
    if (this.raftLog.applying > this.raftLog.applied) return false;
    if (this.state !== StateRole.Follower) {
      // Defense in depth: only a follower restores; bump the term so a new
      // leader gets elected rather than two leaders sharing a term.
      this.logger.warn(`${this.id} attempted to restore snapshot as leader; should never happen`);
      this.becomeFollower(this.term + 1, 0);
      return false;
    }
    const cs = s.metadata.confState;
    const found = cs.voters.includes(this.id) || cs.learners.includes(this.id) || cs.votersOutgoing.includes(this.id);
    if (!found) {
      this.logger.warn(`${this.id} attempted to restore snapshot but it is not in the ConfState ${describeConfState(cs)}; should never happen`);
      return false;
    }
    if (!requested && this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the snapshot's last entry: just fast-forward the commit.
      if (this.infoOn) this.logger.info(`${this.id} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] fast-forwarded commit to snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    this.pendingRequestSnapshot = 0;
    // Rebuild the configuration from scratch from the snapshot's ConfState.
    this.prs = new ProgressTracker(this.prs.maxInflight, this.prs.maxInflightBytes);
    const res = restoreConfState(new Changer(this.prs, this.raftLog.lastIndex()), cs);
    assertConfStatesEquivalent(cs, this.switchToConfig(res.config, res.progress));
    const pr = this.prs.progress.get(this.id)!;
    pr.maybeUpdate(pr.next - 1);
    return true;
  }

  // ---- persistence callbacks ------------------------------------------

  /**
   * onPersistEntries is called when entries up to (index, term) are durable.
   * The leader counts its own log toward the commit quorum only from here.
   */
  onPersistEntries(index: number, term: number): void {
    this.raftLog.stableTo(index, term);
    if (!this.raftLog.maybePersist(index, term)) return;
    if (this.state !== StateRole.Leader) return;
    const pr = this.prs.progress.get(this.id);
    if (pr === undefined) return;
    if (pr.maybeUpdate(index) && this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      if (!this.skipBcastCommit) this.bcastAppend();
    }
  }

  /** onPersistSnap is called when the snapshot at index is durable and applied by the host. */
  onPersistSnap(index: number): void {
    this.raftLog.stableSnapTo(index);
    this.raftLog.maybePersistSnap(index);
    if (index > this.raftLog.applied) {
      if (this.raftLog.committed < index) this.raftLog.committed = index;
      this.raftLog.appliedTo(index);
    }
  }

  /**
   * appliedTo records applied entries; if the config is joint with
   * auto-leave and it is now applied, the leader proposes leaving it.
   */
  appliedTo(index: number): void {
    const newApplied = Math.max(index, this.raftLog.applied);
    this.raftLog.appliedTo(newApplied);
    if (this.prs.config.autoLeave && newApplied >= this.pendingConfIndex && this.state === StateRole.Leader) {
      // An empty ConfChangeV2 (zero-length data) leaves the joint config. It
      // may be dropped if a leader transfer is in progress; we retry on the
      // next apply.
      const m = makeMessage(MessageType.MsgProp, 0);
      m.from = this.id;
      m.entries = [{ entryType: EntryType.EntryConfChangeV2, term: 0, index: 0, data: new Uint8Array(0) }];
      try {
        this.step(m);
        if (this.infoOn) this.logger.info(`${this.id} initiating automatic transition out of joint configuration ${describeTrackerConfig(this.prs.config)}`);
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e;
        if (this.debug) this.logger.debug(`not initiating automatic transition out of joint configuration: ${e.message}`);
      }
    }
  }

  // ---- configuration --------------------------------------------------

  /** applyConfChange applies a committed conf change and returns the new ConfState. */
  applyConfChange(input: ConfChange | ConfChangeV2): ConfState {
    const cc = confChangeAsV2(input);
    const changer = new Changer(this.prs, this.raftLog.lastIndex());
    let res: ChangeResult;
    if (confChangeLeaveJoint(cc)) {
      res = changer.leaveJoint();
    } else {
      const { enter, autoLeave } = confChangeEnterJoint(cc);
      res = enter ? changer.enterJoint(autoLeave, cc.changes) : changer.simple(cc.changes);
    }
    return this.switchToConfig(res.config, res.progress);
  }

  /**
   * switchToConfig installs a configuration. A leader that was removed or
   * demoted steps down; otherwise it commits what the new quorum allows and
   * probes new peers.
   */
  switchToConfig(cfg: TrackerConfig, progress: ProgressMap): ConfState {
    this.prs.setConfig(cfg, progress);
    if (this.infoOn) this.logger.info(`${this.id} switched to configuration ${describeTrackerConfig(cfg)}`);
    const cs = this.prs.confState();
    const pr = this.prs.progress.get(this.id);
    this.isLearner = pr !== undefined && pr.isLearner;
    if ((pr === undefined || this.isLearner) && this.state === StateRole.Leader) {
      this.becomeFollower(this.term, 0);
      return cs;
    }
    if (this.state !== StateRole.Leader || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      this.bcastAppend();
    } else {
      for (let i = 0; i < this.prs.ids.length; i++) {
        const id = this.prs.ids[i]!;
        if (id !== this.id) this.maybeSendAppend(id, false);
      }
    }
    if (this.leadTransferee !== 0 && !this.prs.config.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  // ---- reads and transfers --------------------------------------------

  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnOutOfBounds(this.raftLog.committed) === this.term;
  }

  /** responseToReadIndexReq answers a read: locally as a ReadState, or with MsgReadIndexResp to the requester. */
  private responseToReadIndexReq(req: Message, readIndex: number): Message | undefined {
    if (req.from === 0 || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.entries[0]!.data });
      return undefined;
    }
    const m = makeMessage(MessageType.MsgReadIndexResp, req.from);
    m.index = readIndex;
    m.entries = req.entries;
    return m;
  }

  private sendMsgReadIndexResponse(m: Message): void {
    if (this.readOnly.option === 'safe' || this.leaseForfeited) {
      // Safe (or a forfeited lease): confirm leadership with a heartbeat
      // round of its own. The heartbeats carry the round's unique number,
      // not the caller's context, so only acks of heartbeats sent after
      // this request count.
      const round = this.readOnly.addRequest(this.raftLog.committed, m);
      if (round === undefined) return;
      const ctx = encodeRound(round);
      this.readOnly.recvAck(this.id, ctx);
      this.bcastHeartbeatWithCtx(ctx);
    } else {
      // Lease-based: rely on check-quorum's lease; no round trip.
      const resp = this.responseToReadIndexReq(m, this.raftLog.committed);
      if (resp !== undefined) this.send(resp);
    }
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (!this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.sendMsgReadIndexResponse(m);
  }

  /** sendTimeoutNow tells the transferee to campaign at once; it forfeits this term's lease (see leaseForfeited). */
  private sendTimeoutNow(to: number): void {
    this.leaseForfeited = true;
    this.send(makeMessage(MessageType.MsgTimeoutNow, to));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = 0;
  }

  /** describe is a one-line summary for debugging and test output. */
  describe(): string {
    return `${this.id} ${this.state} term=${this.term} vote=${this.vote} lead=${this.leaderId} ${this.raftLog.toString()}`;
  }

  /** describeMessages renders the outgoing messages (tests). */
  describeMessages(): string[] {
    return [...this.msgs, ...this.msgsAfterAppend].map(describeMessage);
  }
}

/** assertConfStatesEquivalent checks that a restored config matches what was asked for. */
export function assertConfStatesEquivalent(a: ConfState, b: ConfState): void {
  const norm = (cs: ConfState): string =>
    JSON.stringify({
      v: [...cs.voters].sort((x, y) => x - y),
      o: [...cs.votersOutgoing].sort((x, y) => x - y),
      l: [...cs.learners].sort((x, y) => x - y),
      n: [...cs.learnersNext].sort((x, y) => x - y),
      a: cs.autoLeave,
    });
  assert(norm(a) === norm(b), `ConfStates not equivalent after sorting:\n${describeConfState(a)}\n${describeConfState(b)}`);
}
