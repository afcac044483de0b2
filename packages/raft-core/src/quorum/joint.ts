import { MajorityConfig } from './majority';
import { VoteResult } from './types';
import type { AckedIndexer, VoteLookup } from './types';

/**
 * JointConfig is the incoming and outgoing majority configurations of joint
 * consensus. Outside joint consensus the outgoing half is empty; decisions
 * then reduce to the incoming half's.
 */
export class JointConfig {
  constructor(
    readonly incoming: MajorityConfig = new MajorityConfig(),
    readonly outgoing: MajorityConfig = new MajorityConfig(),
  ) {}

  /** isJoint is true when the outgoing half is non-empty. */
  isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  /** has is true when id votes in either half. */
  has(id: number): boolean {
    return this.incoming.has(id) || this.outgoing.has(id);
  }

  /** ids returns every voter of both halves, sorted, without duplicates. */
  ids(): number[] {
    if (this.outgoing.size === 0) return [...this.incoming.ids];
    return [...new Set([...this.incoming.ids, ...this.outgoing.ids])].sort((a, b) => a - b);
  }

  toString(): string {
    return this.outgoing.size > 0 ? `${this.incoming.toString()}&&${this.outgoing.toString()}` : this.incoming.toString();
  }

  /** committedIndex is the minimum of both halves: an index must be committed by both majorities. */
  committedIndex(l: AckedIndexer): number {
    const a = this.incoming.committedIndex(l);
    if (this.outgoing.size === 0) return a;
    const b = this.outgoing.committedIndex(l);
    return a < b ? a : b;
  }

  /** voteResult is Won only when both halves won, Lost when either lost. */
  voteResult(votes: VoteLookup): VoteResult {
    const r1 = this.incoming.voteResult(votes);
    const r2 = this.outgoing.voteResult(votes);
    if (r1 === r2) return r1;
    if (r1 === VoteResult.Lost || r2 === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }
}
