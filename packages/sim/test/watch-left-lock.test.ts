import { describe, expect, it } from 'vitest';
import { runTxn } from '@flotilla/client';
import { startTestCluster } from '@flotilla/store/testing';

// A known gap found by `pnpm chaos --workload watch` (docs/watch-and-leases.md,
// "A lock left behind stalls a watch"): a transaction whose client goes away
// after its primary committed leaves its secondary's lock, nothing resolves
// it until someone reads or writes that key, and meanwhile the resolved ts of
// that Region, hence the whole watch, stays below the lock's start_ts. This
// test asserts what a fix must give (the watch passes a later timestamp
// within 15 s with nobody touching the key), so it fails today: it runs only
// with FLOTILLA_KNOWN_GAPS=1 (whoever fixes the gap turns it on for good).
const enabled = process.env['FLOTILLA_KNOWN_GAPS'] === '1';
if (!enabled) console.warn('watch-left-lock.test.ts: skipped: a known gap (a left-behind lock stalls a watch), run with FLOTILLA_KNOWN_GAPS=1');

describe.skipIf(!enabled)('a lock left behind in a watched range', () => {
  it('does not hold the watch back for long', { timeout: 60_000 }, async () => {
    const c = await startTestCluster({ stores: 3, splitKeys: ['p/5'], client: { timeoutMs: 10_000 } });
    try {
      const w = await c.client.watch('p/');
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
      await expect.poll(() => w.revision, { timeout: 15_000, interval: 200 }).toBeGreaterThanOrEqual(t);
      expect(got).toEqual(['put p/1', 'put p/7']);
      w.close();
    } finally {
      await c.close();
    }
  });
});
