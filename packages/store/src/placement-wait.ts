import { PlacementError } from '@flotilla/placement';
import type { StoreLogger } from './context';

// placement-wait.ts: how start-up waits for a placement that does not
// answer. Placement may be restarting, or on the far side of a partition;
// a store that cannot do without it (a new store needs a store ID) waits,
// retrying with capped exponential backoff and one log line per attempt,
// instead of exiting. The delays carry no jitter on purpose: they must not
// draw randomness outside the simulation's seed.

/** PLACEMENT_BACKOFF: first retry after baseMs, doubling up to maxMs. */
export const PLACEMENT_BACKOFF = { baseMs: 500, maxMs: 10_000 } as const;

/** isPlacementUnreachable: placement did not answer (timeout, no connection), as opposed to answering with an error. */
export function isPlacementUnreachable(e: unknown): boolean {
  return e instanceof PlacementError && e.retryable;
}

/** backoffMs is the delay before retry number `attempt` (1-based). */
export function backoffMs(attempt: number, backoff: { baseMs: number; maxMs: number } = PLACEMENT_BACKOFF): number {
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(30, attempt - 1));
}

/**
 * untilPlacementAnswers runs call until placement answers it. While
 * placement is unreachable it logs, at warn, "waiting for placement: <what>"
 * with the attempt and the next delay, and tries again; any answer that is
 * an error (Unauthorized, InvalidArgument...) is thrown at once.
 */
export async function untilPlacementAnswers<T>(call: () => Promise<T>, logger: StoreLogger, ctx: { placement: string; what: string }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await call();
      if (attempt > 1) logger.warn({ placement: ctx.placement, attempts: attempt }, `placement answered; ${ctx.what}: done`);
      return result;
    } catch (e) {
      if (!isPlacementUnreachable(e)) throw e;
      const retryInMs = backoffMs(attempt);
      logger.warn({ placement: ctx.placement, attempt, retryInMs, err: (e as Error).message }, `waiting for placement: ${ctx.what}`);
      await new Promise((resolve) => setTimeout(resolve, retryInMs));
    }
  }
}
