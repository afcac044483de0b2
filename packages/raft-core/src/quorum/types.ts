/** VoteResult is the outcome of counting votes in a (majority or joint) configuration. */
export const VoteResult = {
  /** Pending: the result is not decided yet; more votes may decide it. */
  Pending: 'pending',
  /** Lost: enough rejections that the vote can no longer be won. */
  Lost: 'lost',
  /** Won: a quorum granted. */
  Won: 'won',
} as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/**
 * AckedIndexer returns the acknowledged (durable) index of a voter, or
 * undefined when it is unknown. An interface instead of a closure so the
 * commit computation on every MsgAppResp allocates nothing.
 */
export interface AckedIndexer {
  ackedIndex(id: number): number | undefined;
}

/** VoteLookup returns true (granted), false (rejected) or undefined (not voted). */
export interface VoteLookup {
  vote(id: number): boolean | undefined;
}
