import { describe, expect, it } from 'vitest';
import type { WatchHeldBy } from '@flotilla/proto';
import { LockResolveTrigger } from '../src/watch/lock-resolve';

const lock = (startTs: bigint, key = 'k'): WatchHeldBy => ({ key: new TextEncoder().encode(key), primary: new TextEncoder().encode('p'), startTs, ttlMs: 3000 });
const rule = { afterMs: 5_000, maxConcurrent: 2, backoffMs: 1_000, maxBackoffMs: 4_000 };

// The rule for when a watch resolves a lock a store named as holding one of its feeds back (client/src/watch/lock-resolve.ts).
describe('LockResolveTrigger', () => {
  it('resolves a lock only once it has been named for afterMs, and one resolution per lock at a time', () => {
    const t = new LockResolveTrigger(rule);
    const a = lock(10n);
    expect(t.named(a, 0)).toBe(false);
    expect(t.named(a, 4_999)).toBe(false);
    expect(t.named(a, 5_000)).toBe(true);
    expect(t.named(a, 6_000)).toBe(false); // in flight
    t.finished(a, 'resolved', 6_100);
    expect(t.size).toBe(0);
    // Named again after it was resolved (a hint sent before the lock went): it waits afterMs anew.
    expect(t.named(a, 6_200)).toBe(false);
    expect(t.named(a, 11_200)).toBe(true);
  });

  it('backs off after a live transaction or a failure, doubling up to the cap', () => {
    const t = new LockResolveTrigger(rule);
    const a = lock(10n);
    t.named(a, 0);
    expect(t.named(a, 5_000)).toBe(true);
    t.finished(a, 'live', 5_000);
    expect(t.named(a, 5_999)).toBe(false);
    expect(t.named(a, 6_000)).toBe(true);
    t.finished(a, 'failed', 6_000);
    expect(t.named(a, 7_999)).toBe(false);
    expect(t.named(a, 8_000)).toBe(true);
    t.finished(a, 'live', 8_000);
    expect(t.named(a, 12_000)).toBe(true); // 4 s, the cap
    t.finished(a, 'live', 12_000);
    expect(t.named(a, 15_999)).toBe(false);
    expect(t.named(a, 16_000)).toBe(true);
  });

  it('bounds the resolutions in flight at once; each lock is its own (start ts, key)', () => {
    const t = new LockResolveTrigger(rule);
    const locks = [lock(1n), lock(2n), lock(2n, 'other'), lock(3n)];
    for (const l of locks) expect(t.named(l, 0)).toBe(false);
    expect(t.size).toBe(4);
    expect(locks.map((l) => t.named(l, 5_000))).toEqual([true, true, false, false]);
    t.finished(locks[0]!, 'resolved', 5_100);
    expect(locks.slice(2).map((l) => t.named(l, 5_200))).toEqual([true, false]);
  });
});
