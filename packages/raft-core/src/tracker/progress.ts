import { Inflights } from './inflights';

/** ProgressState is how the leader currently replicates to a follower. */
export const ProgressState = {
  /** Probe: at most one MsgApp per heartbeat interval until the match point is found. */
  Probe: 'Probe',
  /** Replicate: entries stream optimistically, bounded by Inflights. */
  Replicate: 'Replicate',
  /** Snapshot: a snapshot is in flight; nothing else is sent until it is reported. */
  Snapshot: 'Snapshot',
} as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

/**
 * Progress is the leader's view of one follower's log.
 * Invariant: 0 <= match < next.
 */
export class Progress {
  match: number;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** pendingSnapshot is the index of the snapshot in flight (Snapshot state), else 0. */
  pendingSnapshot = 0;
  /** recentActive is true if the follower was heard from since the last check-quorum round. */
  recentActive = false;
  /** probeSent: in Probe state, a MsgApp went out and we wait for its answer or a heartbeat response. */
  probeSent = false;
  /**
   * pendingRequestSnapshot is the index at which the follower asked for a
   * snapshot (raft-rs request_snapshot), or 0. The next send is a snapshot.
   */
  pendingRequestSnapshot = 0;
  /** sentCommit is the highest commit index sent to this follower (avoids redundant commit-only appends). */
  sentCommit = 0;
  isLearner: boolean;
  inflights: Inflights;

  constructor(next: number, inflights: Inflights, isLearner = false, match = 0) {
    this.next = next;
    this.match = match;
    this.inflights = inflights;
    this.isLearner = isLearner;
  }

  clone(): Progress {
    const p = new Progress(this.next, this.inflights.clone(), this.isLearner, this.match);
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.recentActive = this.recentActive;
    p.probeSent = this.probeSent;
    p.sentCommit = this.sentCommit;
    p.pendingRequestSnapshot = this.pendingRequestSnapshot;
    return p;
  }

  /** reset puts the progress back to Probe at `next` with match 0 (a new term). */
  reset(next: number): void {
    this.match = 0;
    this.next = next;
    this.sentCommit = 0;
    this.recentActive = false;
    this.pendingRequestSnapshot = 0;
    this.resetState(ProgressState.Probe);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** becomeProbe: after a snapshot, probe from just past it; otherwise from match+1. */
  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingRequestSnapshot = 0;
    this.pendingSnapshot = snapshotIndex;
  }

  /**
   * sentEntries records that a MsgApp with `entries` entries (of `bytes`
   * payload) went out: optimistically advance next in Replicate, pause in
   * Probe until the follower answers.
   */
  sentEntries(entries: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (entries > 0) {
        this.next += entries;
        this.inflights.add(this.next - 1, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  /** canBumpCommit: the follower could learn a higher commit index than we sent it. */
  canBumpCommit(index: number): boolean {
    return index > this.sentCommit && this.sentCommit < this.next - 1;
  }

  /** sentCommitTo records the commit index carried by a message to this follower. */
  sentCommitTo(commit: number): void {
    if (commit > this.sentCommit) this.sentCommit = commit;
  }

  /**
   * maybeUpdate is called on an accepting MsgAppResp for index n. It returns
   * false if the response is stale (n <= match).
   */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  /**
   * maybeDecrTo adjusts next after a rejected MsgApp for index `rejected`;
   * matchHint is the follower's hint (after findConflictByTerm). Returns false
   * if the rejection is stale. A non-zero requestSnapshot is a follower's
   * snapshot request (raft-rs): it is never stale and does not move next.
   */
  maybeDecrTo(rejected: number, matchHint: number, requestSnapshot = 0): boolean {
    if (this.state === ProgressState.Replicate) {
      // Stale rejection: we already know the follower matches up to `match`.
      if (rejected < this.match || (rejected === this.match && requestSnapshot === 0)) return false;
      if (requestSnapshot === 0) this.next = this.match + 1;
      else this.pendingRequestSnapshot = requestSnapshot;
      return true;
    }
    // In Probe, the rejection must be for the probe we sent (index next-1).
    if (this.next - 1 !== rejected && requestSnapshot === 0) return false;
    if (requestSnapshot === 0) this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    else if (this.pendingRequestSnapshot === 0) this.pendingRequestSnapshot = requestSnapshot;
    this.probeSent = false;
    return true;
  }

  /** isPaused: no MsgApp may be sent now (probe outstanding, window full, or snapshot in flight). */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }

  toString(): string {
    let s = `${this.state} match=${this.match} next=${this.next}`;
    if (this.isLearner) s += ' learner';
    if (this.isPaused()) s += ' paused';
    if (this.pendingSnapshot > 0) s += ` pendingSnap=${this.pendingSnapshot}`;
    if (!this.recentActive) s += ' inactive';
    const n = this.inflights.count();
    if (n > 0) s += ` inflight=${n}${this.inflights.full() ? '[full]' : ''}`;
    return s;
  }
}
