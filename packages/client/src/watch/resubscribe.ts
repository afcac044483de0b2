import type { Peer, WatchEvent } from '@flotilla/proto';
import type { RegionWithLeader } from '@flotilla/placement/client';

/** MAX_FAST_TRIES bounds the fast re-subscribes of a range that make no progress; then it is covered through placement with backoff. */
export const MAX_FAST_TRIES = 4;

/** Carry is what a fast re-subscribe keeps of the feed it replaces: complete up to from, with its events at or below from. */
export interface Carry {
  from: bigint;
  buffer: WatchEvent[];
  fastTries: number;
}

/**
 * nextLeaderGuess: where a feed that ended NotLeader goes next: the hint
 * when it is a voter of the Region, else the voter after the one that
 * refused (one further per try: a transfer's old leader steps down before
 * it knows its successor, and the next voter may be the one still campaigning).
 */
export function nextLeaderGuess(region: RegionWithLeader['region'], refused: Peer, hint: Peer | undefined, tries: number): Peer | undefined {
  const voters = region.peers.filter((p) => p.role === 'voter');
  if (hint !== undefined && voters.some((v) => v.id === hint.id)) return hint;
  const others = voters.filter((v) => v.id !== refused.id);
  if (others.length === 0) return voters[0];
  return others[tries % others.length];
}

/** electionWaitMs: how long a fast re-subscribe without a hint waits for the election (5, 10, 20, 40 ms). */
export function electionWaitMs(tries: number): number {
  return 5 * 2 ** Math.min(tries, MAX_FAST_TRIES);
}

/** backoffMs: the ordinary re-cover's jittered backoff, doubling from 10 ms to at most 1 s. */
export function backoffMs(attempt: number): number {
  const cap = Math.min(1000, 10 * 2 ** Math.min(attempt, 10));
  return cap / 2 + Math.random() * (cap / 2);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
