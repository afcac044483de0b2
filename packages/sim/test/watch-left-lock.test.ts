import { describe, expect, it } from 'vitest';
import { runTxn } from '@flotilla/client';
import { startTestCluster } from '@flotilla/store/testing';

// Found by `pnpm chaos --workload watch` (docs/watch-and-leases.md, "A lock
// left behind"): a transaction whose client goes away after prewrite, or
// after its primary committed, leaves locks that nothing resolves until
// someone reads or writes their keys, and meanwhile the resolved ts of their
// Region, hence the whole watch, stays below the lock's start_ts. The store
// now names the lock holding a feed back in its progress, and the watch
// resolves it as a reader would (client/src/watch/lock-resolve.ts): the
// primary decides, a live transaction is never aborted.
describe('a lock left behind in a watched range', () => {
  it('is resolved by the watch itself: a committed primary commits the secondary', { timeout: 30_000 }, async () => {
    const c = await startTestCluster({ stores: 3, splitKeys: ['p/5'], client: { timeoutMs: 10_000 } });
    try {
      const w = await c.client.watch('p/', { resolveLocksAfterMs: 1_000 });
      const got: string[] = [];
      void (async () => {
        for await (const e of w) if (e.type !== 'progress') got.push(`${e.type} ${Buffer.from(e.key).toString()}`);
      })();
      // The primary p/1 commits, then the client "dies": the secondary p/7 (the other Region) keeps its lock.
      const died = await runTxn(c.client.txnTransport(), (tx) => {
        tx.put('p/1', 'a');
        tx.put('p/7', 'b');
      }, { onePc: false, hooks: { afterCommitPrimary: () => { throw new Error('the client died'); } } }).catch((e: unknown) => e);
      expect(String(died)).toMatch(/the client died/);
      const t = await c.client.timestamp();
      // Nobody reads or writes p/7: the watch passes t only because it resolved the lock (committing p/7 at the primary's commit ts).
      await expect.poll(() => w.revision, { timeout: 15_000, interval: 200 }).toBeGreaterThanOrEqual(t);
      expect(got).toEqual(['put p/1', 'put p/7']);
      expect(w.stats.locksResolved).toBe(1);
      w.close();
    } finally {
      await c.close();
    }
  });

  it('waits for the TTL of a transaction that only prewrote, then rolls it back', { timeout: 30_000 }, async () => {
    const c = await startTestCluster({ stores: 3, splitKeys: ['q/5'], client: { timeoutMs: 10_000 } });
    try {
      const w = await c.client.watch('q/', { resolveLocksAfterMs: 500 });
      const got: string[] = [];
      void (async () => {
        for await (const e of w) if (e.type !== 'progress') got.push(`${e.type} ${Buffer.from(e.key).toString()}`);
      })();
      const ttlMs = 4_000;
      let startTs = 0n;
      const died = await runTxn(c.client.txnTransport(), (tx) => {
        tx.put('q/1', 'a');
        tx.put('q/7', 'b');
      }, { onePc: false, lockTtlMs: ttlMs, hooks: { afterPrewrite: (info) => { startTs = info.startTs; throw new Error('the client died'); } } }).catch((e: unknown) => e);
      expect(String(died)).toMatch(/the client died/);
      expect(startTs).toBeGreaterThan(0n);
      const t = await c.client.timestamp();
      await expect.poll(() => w.revision, { timeout: 20_000, interval: 200 }).toBeGreaterThanOrEqual(t);
      // It got past the lock only by rolling the transaction back, which checkTxnStatus allows once the TTL ran out by the oracle's clock.
      const passedAt = await c.client.timestamp();
      expect(Number(passedAt >> 18n)).toBeGreaterThanOrEqual(Number(startTs >> 18n) + ttlMs);
      expect(got).toEqual([]);
      expect(w.stats.locksResolved).toBeGreaterThanOrEqual(1); // both locks, once each Region named its own
      expect(await (await c.client.snapshot()).batchGet(['q/1', 'q/7'])).toEqual([null, null]);
      w.close();
    } finally {
      await c.close();
    }
  });
});
