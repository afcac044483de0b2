import type { RegionError } from '@flotilla/proto';
import { ClientError } from './errors';

/** RetryState is the budget of one client call (or one branch of a batch): its deadline and attempts so far. */
export interface RetryState {
  readonly op: string;
  readonly deadline: number;
  attempts: number;
  backoffs: number;
  /** rotate picks the next peer when the leader is unknown or unreachable. */
  rotate: number;
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
