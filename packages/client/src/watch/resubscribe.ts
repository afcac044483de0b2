import type { Peer, WatchEvent } from '@flotilla/proto';
import type { RegionWithLeader } from '@flotilla/placement/client';
import type { FeedSocket } from './socket';
import { decodeValue } from '../txn/value';

/** Segment is one feed: [start, end) of one Region on its leader's store, with the events it holds above the watch's revision. */
export interface Segment {
  start: Uint8Array;
  end: Uint8Array;
  /** region: the Region the feed was opened on (a fast re-subscribe reuses it: a leader move keeps the epoch). */
  region: RegionWithLeader['region'];
  /** fastTries: fast re-subscribes in a row that have not yet made progress (bounded by MAX_FAST_TRIES). */
  fastTries: number;
  feedId: number;
  socket: FeedSocket | undefined;
  from: bigint;
  resolved: bigint;
  buffer: WatchEvent[];
  done: boolean;
  /** moved: the feed replaces one that ended NotLeader at atMs (performance.now()); cleared at its first progress (StallLog). */
  moved?: { atMs: number; subscribedAtMs?: number };
}


/** LeaderMoveStall: one leader move as the watch saw it: ms from the NotLeader end to the new feed's subscribe, and to its first progress. */
export interface LeaderMoveStall {
  toSubscribeMs: number;
  toProgressMs: number;
  fast: boolean;
}

/** StallLog keeps the last 256 leader-move stalls (bench:watch --timeline prints them). */
export class StallLog {
  private readonly stalls: LeaderMoveStall[] = [];

  add(moved: { atMs: number; subscribedAtMs?: number }, nowMs: number, fast: boolean): void {
    if (this.stalls.length >= 256) this.stalls.shift();
    this.stalls.push({ toSubscribeMs: (moved.subscribedAtMs ?? nowMs) - moved.atMs, toProgressMs: nowMs - moved.atMs, fast });
  }

  list(): readonly LeaderMoveStall[] {
    return [...this.stalls];
  }
}

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

/** withoutLease: the event with its values decoded (a stored value may record its lease, txn/value.ts; a watcher sees the user's bytes). */
export function withoutLease(e: WatchEvent): WatchEvent {
  if (e.value === undefined && e.prevValue === undefined) return e;
  const out: WatchEvent = { ...e };
  if (e.value !== undefined) out.value = decodeValue(e.value).value;
  if (e.prevValue !== undefined) out.prevValue = decodeValue(e.prevValue).value;
  return out;
}
