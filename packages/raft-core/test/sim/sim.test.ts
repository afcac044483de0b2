// sim.test: the deterministic simulation over many seeds. Each seed is one
// randomized run (faults, workload, membership changes) followed by a healed
// liveness phase; a failure names the seed and the command that replays it.
import { describe, expect, it } from 'vitest';
import { SimViolation, replayCommand, runSeed } from './sim';

/** SEEDS is the CI budget: about 60 s on the shared 2-core machine. */
const SEEDS = Number(process.env['SIM_SEEDS'] ?? 500);
const START = Number(process.env['SIM_START'] ?? 1);
/** CHUNK seeds run per vitest test, so that progress is visible and one failure does not hide the rest. */
const CHUNK = 50;

describe('raft deterministic simulation', () => {
  for (let lo = START; lo < START + SEEDS; lo += CHUNK) {
    const hi = Math.min(lo + CHUNK, START + SEEDS);
    it(`seeds ${lo}..${hi - 1}`, () => {
      const failures: string[] = [];
      let committed = 0;
      for (let seed = lo; seed < hi; seed++) {
        try {
          committed += runSeed({ seed }).committed;
        } catch (err) {
          const what = err instanceof SimViolation ? err.message : `seed ${seed}: ${(err as Error).stack ?? String(err)}`;
          failures.push(`${what}\n  replay: ${replayCommand(seed)}`);
        }
      }
      expect(failures, failures.join('\n')).toEqual([]);
      // The workload must actually have committed entries, or the checkers checked nothing.
      expect(committed).toBeGreaterThan(hi - lo);
    });
  }

  // The checkers must be able to fail: a host that breaks the durability
  // contract on purpose is caught by a checker (a SimViolation, not merely a
  // raft assertion) within a bounded number of seeds.
  for (const inject of ['lose-hardstate', 'ack-before-persist'] as const) {
    it(`catches a host that breaks durability (${inject})`, () => {
      const caught: string[] = [];
      for (let seed = 1; seed <= 120 && caught.length === 0; seed++) {
        try {
          runSeed({ seed, inject });
        } catch (err) {
          if (err instanceof SimViolation) caught.push(err.message);
        }
      }
      expect(caught.length, 'no seed exposed the injected durability bug').toBeGreaterThan(0);
    });
  }

  it('is deterministic: a seed replays to the same result', () => {
    expect(runSeed({ seed: 4242 })).toEqual(runSeed({ seed: 4242 }));
  });
});
