import { VoteResult } from './types';
import type { AckedIndexer, VoteLookup } from './types';

/**
 * MajorityConfig is a set of voter IDs that decides by simple majority.
 * It is immutable; `ids` is sorted ascending so iteration order (and hence
 * message order) is deterministic.
 */
export class MajorityConfig {
  readonly ids: readonly number[];
  private readonly set: Set<number>;
  /** scratch is reused by committedIndex to avoid allocating per call. */
  private readonly scratch: number[];

  constructor(ids: Iterable<number> = []) {
    const set = new Set(ids);
    this.set = set;
    this.ids = [...set].sort((a, b) => a - b);
    this.scratch = new Array<number>(this.ids.length).fill(0);
  }

  get size(): number {
    return this.ids.length;
  }

  has(id: number): boolean {
    return this.set.has(id);
  }

  toString(): string {
    return `(${this.ids.join(' ')})`;
  }

  /**
   * committedIndex is the largest index acknowledged by a majority. An empty
   * configuration returns Infinity so that a joint configuration with an
   * empty half behaves like its other half.
   */
  committedIndex(l: AckedIndexer): number {
    const n = this.ids.length;
    if (n === 0) return Infinity;
    const srt = this.scratch;
    // Insertion sort, descending: n is tiny (3-7) in practice.
    for (let i = 0; i < n; i++) {
      const v = l.ackedIndex(this.ids[i]!) ?? 0;
      let j = i;
      while (j > 0 && srt[j - 1]! < v) {
        srt[j] = srt[j - 1]!;
        j--;
      }
      srt[j] = v;
    }
    // With n voters, the (n/2+1)-th largest value is acknowledged by a majority.
    return srt[(n >> 1)]!;
  }

  /** voteResult decides an election: Won with a majority of grants, Lost when that is impossible. */
  voteResult(votes: VoteLookup): VoteResult {
    const n = this.ids.length;
    if (n === 0) return VoteResult.Won; // by convention, like etcd
    let granted = 0;
    let missing = 0;
    for (let i = 0; i < n; i++) {
      const v = votes.vote(this.ids[i]!);
      if (v === undefined) missing++;
      else if (v) granted++;
    }
    const q = (n >> 1) + 1;
    if (granted >= q) return VoteResult.Won;
    if (granted + missing >= q) return VoteResult.Pending;
    return VoteResult.Lost;
  }
}
