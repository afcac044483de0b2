import { describe, expect, it, vi } from 'vitest';
import { silentLogger, WATCH_LIMITS } from '@flotilla/proto';
import { SafePointRefused, WatchShared, type PooledSocket } from '../src/watch/shared';

// What the watches of one client share (issue #18 Performance: 10,000
// watchers on one client): one socket per store, counted, paused while any
// watch asks; one GC service safe point at the smallest open revision.

class FakeSocket implements PooledSocket {
  usable = true;
  paused = false;
  feedCount = 0;
  closed = false;
  constructor(readonly address: string) {}
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  close(): void {
    this.closed = true;
    this.usable = false;
  }
}

describe('WatchShared', () => {
  it('shares one socket per address until its last user releases it, and pauses it while any user asks', () => {
    const opened: FakeSocket[] = [];
    const shared = new WatchShared<FakeSocket>((a) => {
      const s = new FakeSocket(a);
      opened.push(s);
      return s;
    }, undefined, silentLogger);
    const a1 = shared.acquire('s1');
    const a2 = shared.acquire('s1');
    const b = shared.acquire('s2');
    expect(a1).toBe(a2);
    expect(opened.map((s) => s.address)).toEqual(['s1', 's2']);
    shared.pause(a1);
    shared.pause(a2);
    shared.resume(a1);
    expect(a1.paused).toBe(true); // one user still asks
    shared.resume(a2);
    expect(a1.paused).toBe(false);
    shared.release(a1);
    expect(a1.closed).toBe(false);
    shared.release(a2);
    expect(a1.closed).toBe(true);
    expect(b.closed).toBe(false);
    // A failed socket is replaced for the next user; feed IDs are unique across the client.
    b.usable = false;
    expect(shared.acquire('s2')).not.toBe(b);
    expect(new Set([shared.feedId(), shared.feedId(), shared.feedId()]).size).toBe(3);
  });

  it('opens another socket to a store once one holds nearly as many feeds as a store takes on one connection', () => {
    const shared = new WatchShared<FakeSocket>((a) => new FakeSocket(a), undefined, silentLogger);
    const first = shared.acquire('s1');
    first.feedCount = WATCH_LIMITS.maxFeedsPerConnection - 1;
    expect(shared.full(first)).toBe(true);
    const second = shared.acquire('s1');
    expect(second).not.toBe(first);
    expect(shared.acquire('s1')).toBe(second);
    first.feedCount = 0; // its feeds ended: it has room again, and it is still shared
    expect(shared.acquire('s1')).toBe(first);
  });

  it('keeps one service safe point at the smallest revision of its watches, refuses a start below GC, and removes it with the last watch', async () => {
    const sent: { id: string; ts: bigint; ttlMs: number }[] = [];
    let gc = 100n;
    const shared = new WatchShared<FakeSocket>((a) => new FakeSocket(a), async (id, ts, ttlMs) => {
      sent.push({ id, ts, ttlMs });
      await new Promise((r) => setImmediate(r));
      return { accepted: ttlMs === 0 || ts >= gc, gcSafePoint: gc };
    }, silentLogger);
    let revA = 500n;
    const a = {};
    const b = {};
    const c = {};
    await shared.hold(a, () => revA);
    // Two opens at once: each send carries the smallest revision registered when it goes, so the last one holds 200.
    await Promise.all([shared.hold(b, () => 200n), shared.hold(c, () => 300n)]);
    expect(sent.at(-1)!.ts).toBe(200n);
    expect(new Set(sent.map((s) => s.id)).size).toBe(1);
    await expect(shared.hold({}, () => 50n)).rejects.toBeInstanceOf(SafePointRefused);
    revA = 600n;
    shared.unhold(b);
    shared.unhold(c);
    expect(sent.every((s) => s.ttlMs > 0)).toBe(true); // a watch is still open
    shared.unhold(a);
    await vi.waitFor(() => expect(sent.at(-1)).toMatchObject({ ts: 0n, ttlMs: 0 }), { timeout: 2000 });
  });
});
