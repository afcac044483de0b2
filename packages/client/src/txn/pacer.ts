/** PacerOptions: exponential backoff with equal jitter, from baseMs doubling up to maxMs. */
export interface PacerOptions {
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_TXN_BACKOFF: PacerOptions = { baseMs: 5, maxMs: 500 };

/**
 * Pacer is the waiting of one transactional call: it knows the call's
 * deadline and sleeps a growing, jittered delay between tries (waiting on a
 * live lock, retrying after a write conflict), never past the deadline.
 */
export class Pacer {
  private waits = 0;

  constructor(
    readonly deadline: number,
    private readonly opts: PacerOptions = DEFAULT_TXN_BACKOFF,
  ) {}

  expired(): boolean {
    return Date.now() >= this.deadline;
  }

  remainingMs(): number {
    return Math.max(0, this.deadline - Date.now());
  }

  /** wait sleeps the next backoff (cut at the deadline); returns false, without sleeping, once the deadline has passed. */
  async wait(): Promise<boolean> {
    if (this.expired()) return false;
    const ceiling = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** Math.min(this.waits, 30));
    this.waits++;
    const delay = Math.min(ceiling / 2 + Math.random() * (ceiling / 2), this.remainingMs());
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    return true;
  }

  /** reset starts the backoff over (after progress). */
  reset(): void {
    this.waits = 0;
  }
}
