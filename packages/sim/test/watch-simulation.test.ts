import { describe, expect, it } from 'vitest';
import { runTxnSimulation, type TxnSimOptions, type TxnSimResult } from '../src/txn/simulation';

// The watch checker in the deterministic simulation (issue #18): watchers
// (@flotilla/client's Watch over simulated links to the stores' real
// change feeds) beside the list-append or bank workload, under the
// simulation's faults (store crashes and restarts, partitions, splits,
// merges, leader transfers, conf changes, placement crashes, message
// drops and delays, watch link cuts), checked against the transactions'
// recorded commits. A seed replays exactly:
//   npx tsx packages/sim/src/txn/cli.ts --workload list-append --watch --seed S --safety-ms 2000 --keys 6
// The short sweep here is 2 s of faults per seed on 6 Regions;
// FLOTILLA_WATCH_SIM_SEEDS=N runs N seeds of each workload instead of the default.

const SHORT = { safetyMs: 2_000, keys: 6 } as const;
const SEEDS = Number(process.env['FLOTILLA_WATCH_SIM_SEEDS'] ?? 0) || 5;

function summary(r: TxnSimResult): string {
  return `seed ${r.seed}: ${r.failures.join('\n').slice(0, 4000)}\nwatch ${JSON.stringify(r.watch?.summary)}\nfaults ${JSON.stringify(r.faults)}`;
}

/** digests: the sweep's list-append digests by seed, for the replay test. */
const digests = new Map<number, { digest: string; faultLog: string[] }>();

const run = (seed: number, workload: TxnSimOptions['workload'], extra: Partial<TxnSimOptions> = {}) => runTxnSimulation({ seed, workload, ...SHORT, watch: {}, ...extra });

describe('watch checker in the simulation', () => {
  for (const workload of ['list-append', 'bank'] as const) {
    it(`${workload}: ${SEEDS} seeds, every watcher delivers exactly the committed writes of its range`, async () => {
      const failed: string[] = [];
      let events = 0;
      let resubscribes = 0;
      for (let seed = 1; seed <= SEEDS; seed++) {
        const r = await run(seed, workload);
        if (!r.ok) failed.push(summary(r));
        if (workload === 'list-append' && r.watch) digests.set(seed, { digest: r.watch.digest, faultLog: r.faultLog });
        events += r.watch?.summary['watchEvents'] ?? 0;
        resubscribes += r.watch?.summary['resubscribes'] ?? 0;
      }
      expect(failed, failed.join('\n\n')).toEqual([]);
      // The sweep exercised something: events were checked, and feeds ended and were re-subscribed under the faults.
      expect(events).toBeGreaterThan(20 * SEEDS);
      expect(resubscribes).toBeGreaterThan(SEEDS);
    }, 60_000 + SEEDS * 30_000);
  }

  it('replays: the same seed gives the same commits and deliveries (after other seeds ran in the process)', async () => {
    if (!digests.has(3)) {
      const r = await run(3, 'list-append');
      digests.set(3, { digest: r.watch!.digest, faultLog: r.faultLog });
    }
    const a = digests.get(3)!;
    const b = await run(3, 'list-append');
    expect(b.ok, summary(b)).toBe(true);
    expect(b.watch!.digest).toBe(a.digest);
    expect(b.faultLog).toEqual(a.faultLog);
  }, 120_000);

  // The planted bugs (adapter.ts): the links lose one event, or deliver one twice. No faults, so no
  // re-subscription can drop the tampered buffer and hide it; the checker alone must catch each.
  it.each([
    ['drop', 'missed'],
    ['duplicate', 'duplicated'],
  ] as const)('catches a link that plants a %s: the watcher has a %s event, with its first divergence', async (plant, kind) => {
    const r = await run(1, 'list-append', { faults: false, watch: { plant } });
    expect(r.ok).toBe(false);
    const f = r.watch!.result.failures;
    expect(f.length).toBeGreaterThan(0);
    expect(f.some((x) => x.kinds[kind] === 1)).toBe(true);
    expect(r.failures.join('\n')).toMatch(/watch checker: watcher W\d+ .* from \d+ .*at event #\d+, revision \d+: expected .* delivered /);
  }, 120_000);
});
