import { describe, expect, it } from 'vitest';
import { WATCH_LIMITS, watchServerFrameSchema } from '@flotilla/proto';
import type { LockRow } from '@flotilla/kv-engine';
import type { Feed } from '../src/watch/feed';
import { lockHint } from '../src/watch/lock-hint';

const ts = (physicalMs: number): bigint => BigInt(physicalMs) << 18n;
const row = (startTs: bigint): LockRow => ({ key: new Uint8Array([1]), primary: new Uint8Array([2]), startTs, ttlMs: 3000, kind: 'put', minCommitTs: 0n, txnSize: 1, value: null });
const feed = (o: Partial<Pick<Feed, 'ended' | 'catchingUp'>> = {}): Feed => ({ ended: false, catchingUp: false, ...o }) as Feed;

// When a store's progress names the lock holding a feed back (store/src/watch/lock-hint.ts), and that the frame stays readable.
describe('lockHint', () => {
  it('names a lock once it has held the feed lockHintAfterMs of oracle time, then at most every lockHintIntervalMs', () => {
    const f = feed();
    const l = row(ts(1_000_000));
    expect(lockHint(f, l, ts(1_000_000 + WATCH_LIMITS.lockHintAfterMs - 1), 0)).toBeUndefined();
    expect(lockHint(f, l, ts(1_000_000 + WATCH_LIMITS.lockHintAfterMs), 0)).toEqual({ key: l.key, primary: l.primary, startTs: l.startTs, ttlMs: 3000 });
    expect(lockHint(f, l, ts(1_002_000), WATCH_LIMITS.lockHintIntervalMs - 1)).toBeUndefined();
    expect(lockHint(f, l, ts(1_002_000), WATCH_LIMITS.lockHintIntervalMs)).toBeDefined();
    // Per feed: another feed held by the same lock is named on its own.
    expect(lockHint(feed(), l, ts(1_002_000), WATCH_LIMITS.lockHintIntervalMs)).toBeDefined();
  });

  it('names nothing without a lock, during catch-up or after the feed ended', () => {
    const t = ts(2_000_000);
    expect(lockHint(feed(), undefined, t, 0)).toBeUndefined();
    expect(lockHint(feed({ catchingUp: true }), row(ts(1_000_000)), t, 0)).toBeUndefined();
    expect(lockHint(feed({ ended: true }), row(ts(1_000_000)), t, 0)).toBeUndefined();
  });

  it('a progress frame parses with and without the lock (older stores never send it)', () => {
    const lock = { key: new Uint8Array([1]), primary: new Uint8Array([2]), startTs: 5n, ttlMs: 3000 };
    expect(watchServerFrameSchema.parse({ t: 'progress', id: 1, resolved: 5n, lock })).toEqual({ t: 'progress', id: 1, resolved: 5n, lock });
    expect(watchServerFrameSchema.parse({ t: 'progress', id: 1, resolved: 5n })).toEqual({ t: 'progress', id: 1, resolved: 5n });
    expect(() => watchServerFrameSchema.parse({ t: 'progress', id: 1, resolved: 5n, lock: { ...lock, ttlMs: -1 } })).toThrow();
  });
});
