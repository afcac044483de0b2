import { describe, expect, it } from 'vitest';
import { runSimulation } from '../src/simulation';

// Budget: the seeds below take about 20-40 s on the shared 2-core CI box
// (each seed is ~23 s of virtual time: cluster start, 15 s of workload under
// faults, then the liveness phase). `pnpm sim --seeds N` runs more.
//
// Every fault runs here, as in the CLI's defaults (STORE_BUGS.md #1, #2, #3
// and #5, which made some of these seeds fail, are fixed).
const SEEDS_3 = Array.from({ length: 16 }, (_, i) => i + 1);
const SEEDS_5 = [200, 201, 202];

function summary(r: Awaited<ReturnType<typeof runSimulation>>): string {
  return `seed ${r.seed}: ${r.failures.join('\n')}\nreplay: pnpm sim --seed ${r.seed} --seeds 1 --verbose`;
}

describe('whole-cluster simulation', () => {
  it('the same seed gives the same history and fault log (determinism)', async () => {
    const a = await runSimulation({ seed: 3, safetyMs: 8_000 });
    const b = await runSimulation({ seed: 3, safetyMs: 8_000 });
    expect(a.history.length).toBeGreaterThan(50);
    expect(b.digest).toBe(a.digest);
    expect(b.faultLog).toEqual(a.faultLog);
  }, 120_000);

  it.each(SEEDS_3)('3 stores, seed %i: safety under faults, then liveness', async (seed) => {
    const r = await runSimulation({ seed });
    expect(r.ok, summary(r)).toBe(true);
    expect(r.linearizability).toBe('ok');
    expect(r.stats.finalReads).toBe(24);
    // The workload ran. Not more: a seed may spend most of its safety phase without a
    // quorum (seed 1 has two of its three stores isolated from 8.2 s to 18.3 s: about 80 acks).
    expect(r.stats.acknowledged).toBeGreaterThan(50);
  }, 120_000);

  it.each(SEEDS_5)('5 stores, seed %i', async (seed) => {
    const r = await runSimulation({ seed, stores: 5 });
    expect(r.ok, summary(r)).toBe(true);
  }, 120_000);

  // A stale read is caught only when the replica it read lagged a write that was
  // acknowledged before the read began, so a given seed can miss it: of seeds 1-10,
  // nine catch it (seed 2 missed it before the store carve, seed 1 after).
  // Seed 3 caught it with both.
  it('catches a store that serves stale reads (injected bug)', async () => {
    const r = await runSimulation({ seed: 3, injectStaleReads: true });
    expect(r.ok).toBe(false);
    expect(r.linearizability).toBe('illegal');
    expect(r.failures.join('\n')).toContain('linearizability violated');
  }, 120_000);
});
