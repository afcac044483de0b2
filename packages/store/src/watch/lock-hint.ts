import { WATCH_LIMITS, type WatchHeldBy } from '@flotilla/proto';
import { physicalMs, type LockRow } from '@flotilla/kv-engine';
import type { Feed } from './feed';

/** hintedAtMs: when each feed's progress last named the lock holding it (performance.now()); a WeakMap so an ended feed takes its entry with it. */
const hintedAtMs = new WeakMap<Feed, number>();

/**
 * lockHint says whether this pass's progress for feed f must name lock, the
 * lock that holds f's resolved ts below the pass's timestamp t (issue #18:
 * a lock an abandoned transaction left behind stalls every watch over it
 * until someone resolves it; the watcher does, client/src/watch/lock-resolve.ts).
 * Only a lock that has held the feed for WATCH_LIMITS.lockHintAfterMs of
 * oracle time (t's physical part minus the lock's start_ts's: both from the
 * oracle, so no local clock enters) is named, so the locks of transactions
 * that commit in a moment cost nothing; and at most every
 * lockHintIntervalMs per feed, so a stuck Region with many feeds sends a
 * hint per feed a second, not one per pass.
 */
export function lockHint(f: Feed, lock: LockRow | undefined, t: bigint, nowMs = performance.now()): WatchHeldBy | undefined {
  if (lock === undefined || f.ended || f.catchingUp) return undefined;
  const heldMs = physicalMs(t) - physicalMs(lock.startTs);
  if (heldMs < WATCH_LIMITS.lockHintAfterMs) return undefined;
  const last = hintedAtMs.get(f);
  if (last !== undefined && nowMs - last < WATCH_LIMITS.lockHintIntervalMs) return undefined;
  hintedAtMs.set(f, nowMs);
  return { key: lock.key, primary: lock.primary, startTs: lock.startTs, ttlMs: lock.ttlMs };
}
