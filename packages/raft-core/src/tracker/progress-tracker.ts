import { JointConfig } from '../quorum/joint';
import type { AckedIndexer, VoteLookup } from '../quorum/types';
import { VoteResult } from '../quorum/types';
import type { ConfState } from '../types';
import type { Progress } from './progress';

/** TrackerConfig is the membership: voters (possibly joint), learners, and learners-to-be. */
export interface TrackerConfig {
  voters: JointConfig;
  /** learners never vote; disjoint from both voter halves. */
  learners: Set<number>;
  /**
   * learnersNext are outgoing voters that become learners when the joint
   * configuration is left (a voter cannot be a learner at the same time).
   */
  learnersNext: Set<number>;
  /** autoLeave: the leader proposes leaving the joint configuration once it is applied. */
  autoLeave: boolean;
}

export type ProgressMap = Map<number, Progress>;

export function emptyTrackerConfig(): TrackerConfig {
  return { voters: new JointConfig(), learners: new Set(), learnersNext: new Set(), autoLeave: false };
}

export function describeTrackerConfig(c: TrackerConfig): string {
  let s = `voters=${c.voters.toString()}`;
  if (c.learners.size > 0) s += ` learners=(${[...c.learners].sort((a, b) => a - b).join(' ')})`;
  if (c.learnersNext.size > 0) s += ` learners_next=(${[...c.learnersNext].sort((a, b) => a - b).join(' ')})`;
  if (c.autoLeave) s += ' autoleave';
  return s;
}

/**
 * ProgressTracker holds the configuration, the per-peer Progress and the
 * votes of the current election. `ids`/`prs` mirror the progress map as
 * sorted parallel arrays so the hot paths iterate without Map iterators.
 */
export class ProgressTracker implements AckedIndexer, VoteLookup {
  config: TrackerConfig = emptyTrackerConfig();
  progress: ProgressMap = new Map();
  votes: Map<number, boolean> = new Map();
  /** ids of every tracked peer (voters and learners), ascending. */
  ids: number[] = [];
  /** prs[i] is the progress of ids[i]. */
  prs: Progress[] = [];

  constructor(
    readonly maxInflight: number,
    readonly maxInflightBytes: number,
  ) {}

  /** setConfig installs a new configuration and progress map (from the Changer). */
  setConfig(config: TrackerConfig, progress: ProgressMap): void {
    this.config = config;
    this.progress = progress;
    this.ids = [...progress.keys()].sort((a, b) => a - b);
    this.prs = this.ids.map((id) => progress.get(id)!);
  }

  ackedIndex(id: number): number | undefined {
    const pr = this.progress.get(id);
    return pr === undefined ? undefined : pr.match;
  }

  vote(id: number): boolean | undefined {
    return this.votes.get(id);
  }

  /** committed is the largest index acknowledged by a quorum of the (joint) configuration. */
  committed(): number {
    return this.config.voters.committedIndex(this);
  }

  /** isSingleton: exactly one voter and no joint configuration. */
  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && this.config.voters.outgoing.size === 0;
  }

  /** quorumActive: a quorum of voters was recently active (heard from since the last check). */
  quorumActive(): boolean {
    const lookup: VoteLookup = {
      vote: (id) => {
        const pr = this.progress.get(id);
        return pr === undefined ? undefined : pr.recentActive;
      },
    };
    return this.config.voters.voteResult(lookup) === VoteResult.Won;
  }

  /** voterNodes returns the sorted IDs of all voters (both halves). */
  voterNodes(): number[] {
    return this.config.voters.ids();
  }

  learnerNodes(): number[] {
    return [...this.config.learners].sort((a, b) => a - b);
  }

  resetVotes(): void {
    if (this.votes.size > 0) this.votes = new Map();
  }

  /** recordVote records id's vote unless it already voted (duplicates are ignored). */
  recordVote(id: number, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** tallyVotes counts the votes of voters and decides the election. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (let i = 0; i < this.ids.length; i++) {
      const id = this.ids[i]!;
      if (this.prs[i]!.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.config.voters.voteResult(this) };
  }

  /** confState returns the membership as a ConfState (sorted ID lists). */
  confState(): ConfState {
    const c = this.config;
    return {
      voters: [...c.voters.incoming.ids],
      votersOutgoing: [...c.voters.outgoing.ids],
      learners: [...c.learners].sort((a, b) => a - b),
      learnersNext: [...c.learnersNext].sort((a, b) => a - b),
      autoLeave: c.autoLeave,
    };
  }
}
