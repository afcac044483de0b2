import { describe, expect, it } from 'vitest';
import type { WatchHeldBy } from '@flotilla/proto';
import { LockResolveTrigger, onePerLock, type LockResolveOutcome } from '../src/watch/lock-resolve';

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

  it('after a live answer, tries again just after the TTL it was named with runs out', () => {
    const t = new LockResolveTrigger(rule);
    const nowMs = 1_000_000;
    const a = { ...lock(BigInt(nowMs) << 18n), ttlMs: 3_000 }; // taken now, 3 s TTL
    t.named(a, nowMs);
    expect(t.named(a, nowMs + 5_000)).toBe(true); // 5 s: past the TTL, yet the primary said alive (a heartbeat extended it)
    t.finished(a, 'live', nowMs + 5_000);
    expect(t.named(a, nowMs + 5_999)).toBe(false);
    expect(t.named(a, nowMs + 6_000)).toBe(true); // the doubling backoff, 1 s
    const b = { ...lock(BigInt(nowMs) << 18n, 'b'), ttlMs: 7_000 };
    t.named(b, nowMs);
    expect(t.named(b, nowMs + 5_000)).toBe(true);
    t.finished(b, 'live', nowMs + 5_000); // 2 s of TTL left: next try 250 ms after it runs out
    expect(t.named(b, nowMs + 7_249)).toBe(false);
    expect(t.named(b, nowMs + 7_250)).toBe(true);
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

  it('onePerLock: the watches of one client share a resolution of the same lock while it runs', async () => {
    const calls: bigint[] = [];
    const pending: ((o: LockResolveOutcome) => void)[] = [];
    const resolve = onePerLock((l) => {
      calls.push(l.startTs);
      return new Promise<LockResolveOutcome>((r) => pending.push(r));
    });
    const a = resolve(lock(1n));
    const b = resolve(lock(1n));
    const c = resolve(lock(2n));
    expect(calls).toEqual([1n, 2n]);
    pending[0]!('resolved');
    pending[1]!('live');
    expect(await Promise.all([a, b, c])).toEqual(['resolved', 'resolved', 'live']);
    // Once it settled, the same lock named again is resolved again (the outcome may differ now).
    void resolve(lock(1n));
    expect(calls).toEqual([1n, 2n, 1n]);
  });
});
