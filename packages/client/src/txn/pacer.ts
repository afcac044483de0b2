import type { TxnTrace } from './trace';

/** PacerOptions: exponential backoff with equal jitter, from baseMs doubling up to maxMs. */
export interface PacerOptions {
  readonly baseMs: number;
  readonly maxMs: number;
}

/**
 * DEFAULT_TXN_BACKOFF: conflict retries from 5 ms doubling to 500 ms. A
 * shorter cap (100 ms) was tried at 64 contenders on the zipfian hot set:
 * retries slept a third as long but each call ran ~40 % more attempts and
 * more calls ran out of retries (bench:txn --trace), so the cap stays.
 */
export const DEFAULT_TXN_BACKOFF: PacerOptions = { baseMs: 5, maxMs: 500 };

/**
 * LOCK_WAIT_MAX_MS caps one wait for another transaction's lock. A live
 * lock is normally gone within a commit's few round trips, so waiting long
 * for it only adds latency (and the lock of a dead client is rolled back by
 * TTL, not by waiting longer between looks).
 */
export const LOCK_WAIT_MAX_MS = 100;

/**
 * WaitKind: what a wait is for. Each kind backs off on its own (TiKV keeps
 * one backoff per error type): a transaction that waited for locks does not
 * start its conflict retries at a long delay, and the other way round.
 *   lock   another transaction's live lock is in the way (reads, prewrites)
 *   retry  the transaction aborted with a retryable reason and runs again
 */
export type WaitKind = 'lock' | 'retry';

/**
 * Pacer is the waiting of one transactional call: it knows the call's
 * deadline and sleeps a growing, jittered delay between tries (waiting on a
 * live lock, retrying after a write conflict), never past the deadline.
 */
export class Pacer {
  private readonly waits: Record<WaitKind, number> = { lock: 0, retry: 0 };

  constructor(
    readonly deadline: number,
    private readonly opts: PacerOptions = DEFAULT_TXN_BACKOFF,
    private readonly trace?: TxnTrace,
  ) {}

  expired(): boolean {
    return Date.now() >= this.deadline;
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - Date.now());
  }

  /** wait sleeps the next backoff of kind (cut at the deadline); returns false, without sleeping, once the deadline has passed. */
  async wait(kind: WaitKind = 'retry'): Promise<boolean> {
    if (this.expired()) return false;
    const maxMs = kind === 'lock' ? Math.min(this.opts.maxMs, LOCK_WAIT_MAX_MS) : this.opts.maxMs;
    const ceiling = Math.min(maxMs, this.opts.baseMs * 2 ** Math.min(this.waits[kind], 30));
    this.waits[kind]++;
    const delay = Math.min(ceiling / 2 + Math.random() * (ceiling / 2), this.remainingMs());
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    this.trace?.(kind === 'lock' ? 'sleepLock' : 'sleepRetry', delay);
    return true;
  }

  /** reset starts kind's backoff over (after progress: the locks in the way are gone). */
  reset(kind: WaitKind = 'lock'): void {
    this.waits[kind] = 0;
  }
}
