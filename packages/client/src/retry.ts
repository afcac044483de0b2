import type { Peer, Region, RegionError } from '@flotilla/proto';
import { ClientError, type ClientErrorCode, type ConnectionError } from './errors';

/** RetryState is the budget of one client call (or one branch of a batch): its deadline and attempts so far. */
export interface RetryState {
  readonly op: string;
  readonly deadline: number;
  attempts: number;
  backoffs: number;
  /** rotate picks the next peer when the leader is unknown or unreachable. */
  rotate: number;
  /** leaderless: the peers that answered NotLeader without naming a leader during this call (see invalidateRegion 'whenPeersExhausted'). */
  leaderless?: Set<number>;
  lastRegionError?: RegionError;
  lastCause?: unknown;
  /** attemptTimeoutMs overrides the client's per-attempt bound (admin commands that wait for a commit use the whole deadline). */
  attemptTimeoutMs?: number;
}

/** RetryBudget is what bounds every call of one client: its deadline, its attempts, and the backoff between them. */
export interface RetryBudget {
  readonly timeoutMs: number;
  readonly maxRetries: number;
  /** backoff: exponential with equal jitter, from baseMs doubling up to maxMs. */
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
}

/**
 * RetryPolicy hands out a RetryState per call and spends it: it counts the
 * attempts, ends the call when the budget is gone or the client is closed,
 * and sleeps the backoff between attempts.
 */
export class RetryPolicy {
  constructor(
    private readonly budget: RetryBudget,
    private readonly isClosed: () => boolean,
  ) {}

  /** newState starts the budget of one call; throws Closed on a closed client. */
  newState(op: string, attemptTimeoutMs?: number): RetryState {
    if (this.isClosed()) throw new ClientError('Closed', `${op}: client is closed`);
    const st: RetryState = { op, deadline: Date.now() + this.budget.timeoutMs, attempts: 0, backoffs: 0, rotate: 0 };
    if (attemptTimeoutMs !== undefined) st.attemptTimeoutMs = attemptTimeoutMs;
    return st;
  }

  /** spend counts one attempt against the budget; throws Timeout / RetriesExhausted / Closed when it is gone. */
  spend(st: RetryState, count = true): void {
    if (this.isClosed()) throw new ClientError('Closed', `${st.op}: client is closed`, st.lastRegionError, st.lastCause);
    if (Date.now() >= st.deadline) {
      throw new ClientError('Timeout', `${st.op}: no success within ${this.budget.timeoutMs} ms after ${st.attempts} attempts${causeText(st)}`, st.lastRegionError, st.lastCause);
    }
    if (st.attempts > this.budget.maxRetries) {
      throw new ClientError('RetriesExhausted', `${st.op}: gave up after ${st.attempts} attempts${causeText(st)}`, st.lastRegionError, st.lastCause);
    }
    if (count) st.attempts++;
  }

  /** sleepBackoff waits an exponentially growing, jittered delay (at least minMs), never past the deadline. */
  async sleepBackoff(st: RetryState, minMs = 0): Promise<void> {
    const { baseMs, maxMs } = this.budget.backoff;
    const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(st.backoffs, 30));
    st.backoffs++;
    const delay = Math.max(minMs, ceiling / 2 + Math.random() * (ceiling / 2));
    const wait = Math.min(delay, Math.max(0, st.deadline - Date.now()));
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

/** raceDeadline settles with p, or rejects (retryable) once the deadline passes, so a slow placement cannot hold a call past it. */
export function raceDeadline<T>(p: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`placement ${what} still unanswered at the call's deadline`)), Math.max(0, deadline - Date.now()));
  });
  p.catch(() => {}); // a rejection after the race is decided has nobody to tell
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function causeText(st: RetryState): string {
  return st.lastCause instanceof Error ? `; last failure: ${st.lastCause.message}` : '';
}

// ---- what each failure does -------------------------------------------

/**
 * RetryCase names what one attempt ran into: a RegionError the store
 * answered with (NotLeader split in two by whether it names another peer),
 * or a failure before any answer: no peer to try, a store placement does
 * not know, a socket that failed, a token the store refused.
 */
export type RetryCase = RegionError['type'] | 'NotLeaderWithHint' | 'Unreachable' | 'Unauthorized' | 'NoPeer' | 'StoreUnknown';

/** Failure is one failed attempt: its case and what the client knows about where it went. */
export interface Failure {
  readonly case: RetryCase;
  readonly region: Region;
  /** peer and address: where the request went, once the attempt got that far. */
  readonly peer?: Peer;
  readonly address?: string;
  readonly regionError?: RegionError;
  readonly cause?: ConnectionError;
}

/**
 * Backoff says whether the client waits before the next attempt:
 *   always        exponential with jitter
 *   afterHops     only once the call has made HINT_HOPS attempts (following a leader hint is one hop)
 *   unlessLearned only when the error taught the cache nothing it could insert
 *   atLeastAsked  always, and at least the backoffMs the busy store asked for
 *   never         the call ends here
 */
export type Backoff = 'always' | 'afterHops' | 'unlessLearned' | 'atLeastAsked' | 'never';

/** HINT_HOPS: attempts after which following a NotLeader hint also backs off (a leader hint that keeps moving is an election, not a hop). */
export const HINT_HOPS = 3;

/**
 * RetryAction is what the client does about one RetryCase, in this order:
 * fail (throw), store, invalidateRegion, clearLeader, learn, backoff; then
 * the caller re-routes through the (updated) cache.
 */
export interface RetryAction {
  /**
   * fail ends the call with a ClientError of `code`: 'always', or
   * 'unlessResendable' when the request may already have applied and must
   * not be sent a second time.
   */
  readonly fail?: { readonly code: ClientErrorCode; readonly when: 'always' | 'unlessResendable'; readonly message: (op: string, f: Failure) => string };
  /**
   * store: what the client forgets about the store the request went to.
   *   reconnect    drop its socket and cached address (it answered as another store)
   *   down         try it last for a while (placement does not know it)
   *   unreachable  reconnect + down, and forget every cached leader on it
   */
  readonly store?: 'reconnect' | 'down' | 'unreachable';
  /**
   * invalidateRegion drops the Region from the cache, so the next locate
   * asks placement (or finds what `learn` inserted). 'whenPeersExhausted':
   * only once every voter the cached Region lists has answered this way
   * during the call; the cached peer list may be stale (cached before
   * replicas were added), and its peers may all sit in a partitioned
   * minority that never learns the new leader, so asking placement is the
   * only way out (TiKV's client reloads the Region on a leaderless NotLeader
   * for the same reason).
   */
  readonly invalidateRegion: boolean | 'whenPeersExhausted';
  /** clearLeader forgets the Region's leader, so the next attempt tries its peers in turn. */
  readonly clearLeader: boolean;
  /** learn: what the error teaches the cache, a leader hint or the Regions the store now holds. */
  readonly learn?: 'leaderHint' | 'currentRegions';
  readonly backoff: Backoff;
}

const storeOf = (f: Failure): string => `store ${f.peer?.storeId} (${f.address})`;
const regionErrorMessage = (f: Failure): string => (f.regionError && 'message' in f.regionError ? f.regionError.message : '');

/**
 * RETRY_ACTIONS is the one place that says how the client reacts to each
 * failure. A request is resendable when it is idempotent (reads, split),
 * when it is a put/delete/batchPut/deleteRange and retryWritesInFlight is
 * on, or when it provably never left the client. Any other request that
 * may have applied (cas, merge, and by default every write) ends in
 * Undetermined rather than risking a second apply.
 */
export const RETRY_ACTIONS: { readonly [C in RetryCase]: RetryAction } = {
  // Follow the hint at once: the new leader is one hop away.
  NotLeaderWithHint: { invalidateRegion: false, clearLeader: false, learn: 'leaderHint', backoff: 'afterHops' },
  // No leader known (an election is running, or the peer is cut off): try
  // another peer after a pause; once every cached peer said so, ask placement.
  NotLeader: { invalidateRegion: 'whenPeersExhausted', clearLeader: true, backoff: 'always' },
  // The Region split or merged: the answer carries the Regions the store holds now.
  EpochNotMatch: { invalidateRegion: true, clearLeader: false, learn: 'currentRegions', backoff: 'unlessLearned' },
  KeyNotInRegion: { invalidateRegion: true, clearLeader: true, backoff: 'always' },
  RegionNotFound: { invalidateRegion: true, clearLeader: true, backoff: 'always' },
  ServerIsBusy: { invalidateRegion: false, clearLeader: false, backoff: 'atLeastAsked' },
  StoreNotMatch: { store: 'reconnect', invalidateRegion: true, clearLeader: false, backoff: 'always' },
  // Proposed, then lost track of: it may still apply. A write must not be
  // sent again (it could apply twice); a read may.
  Undetermined: {
    fail: { code: 'Undetermined', when: 'unlessResendable', message: (op, f) => `${op}: ${regionErrorMessage(f)}; it may or may not have been applied` },
    invalidateRegion: false,
    clearLeader: true,
    backoff: 'always',
  },
  StaleCommand: { invalidateRegion: false, clearLeader: true, backoff: 'always' },
  Unavailable: { invalidateRegion: false, clearLeader: true, backoff: 'always' },
  InvalidRequest: {
    fail: { code: 'InvalidArgument', when: 'always', message: (op, f) => `${op}: the store rejected the request: ${regionErrorMessage(f)}` },
    invalidateRegion: false,
    clearLeader: false,
    backoff: 'never',
  },
  // The socket failed. With the request in flight it may have applied
  // (see retryWritesInFlight); before it left, anything may be resent.
  Unreachable: {
    fail: {
      code: 'Undetermined',
      when: 'unlessResendable',
      message: (op, f) => `${op}: connection to ${storeOf(f)} failed with the request in flight; it may or may not have been applied: ${f.cause?.message}`,
    },
    store: 'unreachable',
    invalidateRegion: true,
    clearLeader: false,
    backoff: 'always',
  },
  Unauthorized: {
    fail: { code: 'Unauthorized', when: 'always', message: (op, f) => `${op}: ${storeOf(f)} refused the connection: missing or wrong API token` },
    invalidateRegion: false,
    clearLeader: false,
    backoff: 'never',
  },
  NoPeer: { invalidateRegion: true, clearLeader: false, backoff: 'always' },
  StoreUnknown: { store: 'down', invalidateRegion: true, clearLeader: false, backoff: 'always' },
};

/** regionErrorCase is the RetryCase of a RegionError from peer: a NotLeader naming another peer is a hint to follow. */
export function regionErrorCase(e: RegionError, peer: Peer): RetryCase {
  if (e.type === 'NotLeader' && e.leader && e.leader.id !== peer.id) return 'NotLeaderWithHint';
  return e.type;
}

/** shouldBackOff says whether recover() waits before the next attempt (see Backoff). */
export function shouldBackOff(backoff: Backoff, st: RetryState, learned: boolean): boolean {
  switch (backoff) {
    case 'always':
    case 'atLeastAsked':
      return true;
    case 'afterHops':
      return st.attempts > HINT_HOPS;
    case 'unlessLearned':
      return !learned;
    case 'never':
      return false;
  }
}

/** askedBackoffMs is the least wait a failure asks for: a busy store's backoffMs, else 0. */
export function askedBackoffMs(f: Failure): number {
  return f.regionError?.type === 'ServerIsBusy' ? f.regionError.backoffMs : 0;
}

/**
 * peersExhausted records that f's peer answered without a leader and says
 * whether every voter of the cached Region now has (then it starts over,
 * so the reloaded Region's peers get their own round).
 */
export function peersExhausted(f: Failure, st: RetryState): boolean {
  if (!f.peer) return false;
  const seen = (st.leaderless ??= new Set());
  seen.add(f.peer.id);
  const voters = f.region.peers.filter((p) => p.role === 'voter');
  const all = (voters.length > 0 ? voters : f.region.peers).every((p) => seen.has(p.id));
  if (all) seen.clear();
  return all;
}
