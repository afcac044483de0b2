import type { LockInfo, Logger, WatchHeldBy } from '@flotilla/proto';
import { physicalMs, type LockResolver } from '../txn/resolver';

/**
 * LockResolveOutcome is what one resolution of a lock that held a watch
 * came to: 'resolved' (the primary said committed or rolled back, and the
 * lock was committed or removed accordingly), 'live' (its transaction is
 * alive: its primary's TTL has not run out, so it was left alone), or
 * 'failed' (a store or the oracle did not answer).
 */
export type LockResolveOutcome = 'resolved' | 'live' | 'failed';

/** ResolveHeldLock resolves one lock the way a reader does (txn/resolver.ts: the primary's status via checkTxnStatus, then resolveLock). */
export type ResolveHeldLock = (lock: WatchHeldBy) => Promise<LockResolveOutcome>;

/**
 * resolveHeldLock resolves a lock that holds a watch back with a reader's
 * LockResolver: the lock's primary decides (checkTxnStatus: committed → the
 * lock commits at its commit ts; rolled back, or its TTL ran out by the
 * oracle's clock → rolled back; alive → 'live', left alone). The watch reads
 * nothing, so the caller's start ts it passes is the lock's own start_ts
 * (the store does not push min_commit_ts with it: percolator.ts).
 */
export async function resolveHeldLock(r: LockResolver, lock: WatchHeldBy): Promise<LockResolveOutcome> {
  const info: LockInfo = { key: lock.key, primary: lock.primary, startTs: lock.startTs, ttlMs: lock.ttlMs, kind: 'put', minCommitTs: 0n, txnSize: 1 };
  const live = await r.resolve([info], lock.startTs);
  return live.length === 0 ? 'resolved' : 'live';
}

/**
 * onePerLock wraps resolve so that the watches of one client resolving the
 * same lock (several watches over one Region are held by it at once) share
 * one resolution in flight instead of each sending its own checkTxnStatus;
 * an entry lives only while its resolution runs.
 */
export function onePerLock(resolve: ResolveHeldLock): ResolveHeldLock {
  const running = new Map<string, Promise<LockResolveOutcome>>();
  return (lock) => {
    const id = lockId(lock);
    let p = running.get(id);
    if (p === undefined) {
      p = resolve(lock).finally(() => running.delete(id));
      running.set(id, p);
    }
    return p;
  };
}

/** LockResolveRule tunes LockResolveTrigger; the defaults are DEFAULT_LOCK_RESOLVE_RULE. */
export interface LockResolveRule {
  /** afterMs: how long one lock must have held a feed (by this client's clock, from the first hint naming it) before it is resolved. */
  afterMs: number;
  /** maxConcurrent: resolutions in flight at once for one watch. */
  maxConcurrent: number;
  /** backoffMs: the wait after a 'live' or 'failed' outcome, doubled each time up to maxBackoffMs. */
  backoffMs: number;
  maxBackoffMs: number;
}

/**
 * DEFAULT_LOCK_RESOLVE_RULE: a lock that held a feed for 5 s is resolved
 * (TiCDC waits 20 s; a watch here is expected to keep up within seconds,
 * and a transaction that commits normally releases its locks in
 * milliseconds, so 5 s of one lock is almost surely an abandoned one; and
 * even then the primary decides, a live transaction is never aborted).
 */
export const DEFAULT_LOCK_RESOLVE_RULE: LockResolveRule = { afterMs: 5_000, maxConcurrent: 2, backoffMs: 1_000, maxBackoffMs: 10_000 };

/** TTL_SLACK_MS: after a 'live' answer, the next try comes this long after the lock's TTL runs out by the client's clock (the primary judges by the oracle's). */
const TTL_SLACK_MS = 250;

/** MAX_TRACKED bounds the locks one trigger remembers (a watch has one hint per held feed; past this the oldest are forgotten). */
const MAX_TRACKED = 4_096;

interface Tracked {
  firstMs: number;
  /** notBeforeMs: no resolution starts before this (backoff after an outcome). */
  notBeforeMs: number;
  failures: number;
  inFlight: boolean;
}

/**
 * LockResolveTrigger is the rule for when a watch resolves a lock that a
 * store named as holding one of its feeds (issue #18): once the same lock
 * has been named for rule.afterMs, with at most rule.maxConcurrent
 * resolutions in flight, one at a time per lock, and after a 'live' or
 * 'failed' outcome only after a backoff (doubling up to maxBackoffMs). It
 * only decides when to ask; whether the lock goes is the primary's answer
 * (checkTxnStatus: rolled back only once its TTL ran out by the oracle's
 * clock, committed if the primary committed), as for any reader. It keeps
 * no timers: the store names a held lock about once a second
 * (WATCH_LIMITS.lockHintIntervalMs), and each naming is a chance to act.
 */
export class LockResolveTrigger {
  private readonly tracked = new Map<string, Tracked>();
  private inFlight = 0;

  constructor(readonly rule: LockResolveRule = DEFAULT_LOCK_RESOLVE_RULE) {}

  /** named is told each time a store names lock as holding a feed; true: the caller must resolve it now and report the outcome to finished. */
  named(lock: WatchHeldBy, nowMs: number): boolean {
    const id = lockId(lock);
    let t = this.tracked.get(id);
    if (t === undefined) {
      if (this.tracked.size >= MAX_TRACKED) this.forgetOldest();
      t = { firstMs: nowMs, notBeforeMs: nowMs + this.rule.afterMs, failures: 0, inFlight: false };
      this.tracked.set(id, t);
    }
    if (t.inFlight || nowMs < t.notBeforeMs || this.inFlight >= this.rule.maxConcurrent) return false;
    t.inFlight = true;
    this.inFlight++;
    return true;
  }

  /**
   * finished records the outcome of a resolution named returned true for
   * (nowMs: wall-clock ms, as the lock's start_ts's physical part); after
   * 'resolved' the lock is forgotten (named again, it waits afterMs anew).
   * After 'live' the next try waits until just after the lock's TTL runs
   * out (at most maxBackoffMs), or, once it has (heartbeats extended the
   * primary's), the doubling backoff, as after 'failed'.
   */
  finished(lock: WatchHeldBy, outcome: LockResolveOutcome, nowMs: number): void {
    const id = lockId(lock);
    const t = this.tracked.get(id);
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (t === undefined) return;
    t.inFlight = false;
    if (outcome === 'resolved') {
      this.tracked.delete(id);
      return;
    }
    t.failures++;
    const backoff = Math.min(this.rule.maxBackoffMs, this.rule.backoffMs * 2 ** Math.min(t.failures - 1, 20));
    // A live transaction whose lock TTL (as named) has not run out by this clock: ask again just after it does, not a doubled backoff later.
    const ttlLeftMs = physicalMs(lock.startTs) + lock.ttlMs - nowMs;
    t.notBeforeMs = nowMs + (outcome === 'live' && ttlLeftMs > 0 ? Math.min(this.rule.maxBackoffMs, ttlLeftMs + TTL_SLACK_MS) : backoff);
  }

  /** heldForMs: how long lock has been named (0 when it is not tracked), for logs. */
  heldForMs(lock: WatchHeldBy, nowMs: number): number {
    const t = this.tracked.get(lockId(lock));
    return t === undefined ? 0 : nowMs - t.firstMs;
  }

  /** size: locks tracked now (tests). */
  get size(): number {
    return this.tracked.size;
  }

  private forgetOldest(): void {
    for (const [id, t] of this.tracked) {
      if (t.inFlight) continue;
      this.tracked.delete(id);
      return;
    }
  }
}

/**
 * HeldLockResolver runs a trigger's decisions: each lock named for long
 * enough is resolved by resolve (the client's lock resolver), its outcome
 * fed back, and what happened logged. A resolve that throws counts as
 * 'failed' (backoff, then the next naming tries again): a watch never
 * fails because of it.
 */
export class HeldLockResolver {
  private readonly trigger: LockResolveTrigger;
  /** resolved: locks this watch resolved (its stats: how often an abandoned lock held it). */
  resolved = 0;

  constructor(
    private readonly resolve: ResolveHeldLock,
    private readonly logger: Logger,
    rule?: LockResolveRule,
  ) {
    this.trigger = new LockResolveTrigger(rule);
  }

  /** named: a store said lock holds a feed of this watch. */
  named(lock: WatchHeldBy): void {
    const now = Date.now();
    if (!this.trigger.named(lock, now)) return;
    const heldMs = this.trigger.heldForMs(lock, now);
    void this.resolve(lock).then(
      (outcome) => {
        const fields = { startTs: String(lock.startTs), heldMs, outcome };
        if (outcome === 'resolved') {
          this.resolved++;
          this.logger.info(fields, 'watch: resolved a lock that held the watch back');
        }
        else this.logger.debug(fields, 'watch: a lock holds the watch back; its transaction is alive or its primary did not answer, trying again later');
        this.trigger.finished(lock, outcome, Date.now());
      },
      (e: unknown) => {
        this.logger.debug({ startTs: String(lock.startTs), err: (e as Error).message }, 'watch: resolving a lock that held the watch back failed; trying again later');
        this.trigger.finished(lock, 'failed', Date.now());
      },
    );
  }
}

function lockId(l: WatchHeldBy): string {
  let hex = '';
  for (const b of l.key) hex += b.toString(16).padStart(2, '0');
  return `${l.startTs}/${hex}`;
}
