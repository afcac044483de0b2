import { afterEach, describe, expect, it } from 'vitest';
import { runTxnSimulation, type TxnSimResult } from '../src/txn/simulation';

// The transaction workloads in the deterministic simulation: @flotilla/client's
// Percolator driver (runTxn over SimTxnTransport) against 3 real stores, the
// keys pre-split into 8 Regions, 5 s of virtual time under the simulation's
// faults (crashes, partitions, splits, merges, leader transfers, conf
// changes, placement crashes), then healing and a final read that must
// commit. Each seed is ~15-25 s of wall time on the shared 2-core box.
//
// Math.random (the driver's backoff jitter) is seeded for each run, so a
// seed replays exactly: npx tsx packages/sim/src/txn/cli.ts --workload W --seed S.
// Seed 1's bank run reported wrong totals twice on the tree of 07:25 (before
// the jitter was seeded, so not replayable); it passes on the tree of 08:13.
// docs/chaos.md, "Transaction workloads", keeps the lead.
const BANK_SEEDS = [1, 2, 3, 4];
const LIST_APPEND_SEEDS = [2, 3];
const SAFETY_MS = 5_000;

function summary(r: TxnSimResult): string {
  return `seed ${r.seed}: ${r.failures.join('\n').slice(0, 4000)}\nverdict ${JSON.stringify(r.verdict?.summary)}\nfaults ${JSON.stringify(r.faults)}`;
}

afterEach(() => {
  delete process.env['FLOTILLA_UNSAFE_SKIP_WRITE_CONFLICT'];
});

describe('transactions in the simulation (real driver, real stores)', () => {
  it.each(BANK_SEEDS)('bank, seed %i: every snapshot sums to the total under faults', async (seed) => {
    const r = await runTxnSimulation({ seed, workload: 'bank', safetyMs: SAFETY_MS });
    expect(r.ok, summary(r)).toBe(true);
    expect(r.regionsAtStart).toBeGreaterThanOrEqual(8);
    expect(r.verdict!.summary['reads']).toBeGreaterThan(5);
    expect(r.verdict!.summary['transfers']).toBeGreaterThan(5);
  }, 180_000);

  it.each(LIST_APPEND_SEEDS)('list-append, seed %i: no G0, G1 or G-single cycle under faults', async (seed) => {
    const r = await runTxnSimulation({ seed, workload: 'list-append', safetyMs: SAFETY_MS });
    expect(r.ok, summary(r)).toBe(true);
    expect(r.verdict!.summary['ok']).toBeGreaterThan(30);
    expect(r.verdict!.summary['edges']).toBeGreaterThan(30);
  }, 180_000);

  // The planted bug: FLOTILLA_UNSAFE_SKIP_WRITE_CONFLICT=1 turns prewrite's
  // write-conflict check off (kv-engine mvcc/percolator.ts), so concurrent
  // read-modify-writes all commit. No faults: the bug alone must be caught.
  it('catches a store that skips the write-conflict check: the bank total goes wrong', async () => {
    process.env['FLOTILLA_UNSAFE_SKIP_WRITE_CONFLICT'] = '1';
    const r = await runTxnSimulation({ seed: 1, workload: 'bank', safetyMs: SAFETY_MS, faults: false });
    expect(r.ok).toBe(false);
    expect(r.verdict!.summary['violations']).toBeGreaterThan(0);
    expect(r.failures.join('\n')).toMatch(/bank checker: read T\d+ at ts \d+: total \d+, expected 800/);
  }, 180_000);

  it('catches a store that skips the write-conflict check: list-append finds lost updates', async () => {
    process.env['FLOTILLA_UNSAFE_SKIP_WRITE_CONFLICT'] = '1';
    const r = await runTxnSimulation({ seed: 1, workload: 'list-append', safetyMs: SAFETY_MS, faults: false });
    expect(r.ok).toBe(false);
    expect(r.failures.join('\n')).toMatch(/list-append checker: (incompatible-order|lost-append|G0|G1c|G-single)/);
  }, 180_000);
});
