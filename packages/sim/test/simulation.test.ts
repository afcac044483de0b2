import { describe, expect, it } from 'vitest';
import { runSimulation } from '../src/simulation';

// Budget: the seeds below take about 20-40 s on the shared 2-core CI box
// (each seed is ~23 s of virtual time: cluster start, 15 s of workload under
// faults, then the liveness phase). `pnpm sim --seeds N` runs more.
//
// The conf-change fault (remove a follower voter) and, with 5 stores,
// placement's balance schedulers (which move replicas back and forth) are
// off here until STORE_BUGS.md #1 is fixed: with them, many seeds end with a
// Region that lost a replica for good and fail the liveness check. The
// replace-store fault is off too (STORE_BUGS.md #3: a lost store's replicas
// are not moved within the bound). The CLI runs all of them by default.
const SEEDS_3 = Array.from({ length: 16 }, (_, i) => i + 1);
const SEEDS_5 = [200, 201, 202];

function summary(r: Awaited<ReturnType<typeof runSimulation>>): string {
  return `seed ${r.seed}: ${r.failures.join('\n')}\nreplay: pnpm sim --seed ${r.seed} --seeds 1 --no-remove-peers --verbose`;
}

describe('whole-cluster simulation', () => {
  it('the same seed gives the same history and fault log (determinism)', async () => {
    const a = await runSimulation({ seed: 3, removePeers: false, replaceStores: false, safetyMs: 8_000 });
    const b = await runSimulation({ seed: 3, removePeers: false, replaceStores: false, safetyMs: 8_000 });
    expect(a.history.length).toBeGreaterThan(50);
    expect(b.digest).toBe(a.digest);
    expect(b.faultLog).toEqual(a.faultLog);
  }, 120_000);

  it.each(SEEDS_3)('3 stores, seed %i: safety under faults, then liveness', async (seed) => {
    const r = await runSimulation({ seed, removePeers: false, replaceStores: false });
    expect(r.ok, summary(r)).toBe(true);
    expect(r.linearizability).toBe('ok');
    expect(r.stats.finalReads).toBe(24);
    expect(r.stats.acknowledged).toBeGreaterThan(100);
  }, 120_000);

  it.each(SEEDS_5)('5 stores, seed %i', async (seed) => {
    const r = await runSimulation({ seed, stores: 5, removePeers: false, replaceStores: false, balance: false });
    expect(r.ok, summary(r)).toBe(true);
  }, 120_000);

  it('catches a store that serves stale reads (injected bug)', async () => {
    const r = await runSimulation({ seed: 2, removePeers: false, replaceStores: false, injectStaleReads: true });
    expect(r.ok).toBe(false);
    expect(r.linearizability).toBe('illegal');
    expect(r.failures.join('\n')).toContain('linearizability violated');
  }, 120_000);
});
