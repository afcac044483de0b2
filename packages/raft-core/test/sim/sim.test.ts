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
/** ROUNDS per seed in CI (the CLI default is longer); replay commands name it. */
const ROUNDS = 1500;

describe('raft deterministic simulation', () => {
  for (let lo = START; lo < START + SEEDS; lo += CHUNK) {
    const hi = Math.min(lo + CHUNK, START + SEEDS);
    it(`seeds ${lo}..${hi - 1}`, () => {
      const failures: string[] = [];
      let committed = 0;
      for (let seed = lo; seed < hi; seed++) {
        try {
          committed += runSeed({ seed, rounds: ROUNDS }).committed;
        } catch (err) {
          const what = err instanceof SimViolation ? err.message : `seed ${seed}: ${(err as Error).stack ?? String(err)}`;
          failures.push(`${what}\n  replay: ${replayCommand(seed, { rounds: ROUNDS })}`);
        }
      }
      expect(failures, failures.join('\n')).toEqual([]);
      // The workload must actually have committed entries, or the checkers checked nothing.
      expect(committed).toBeGreaterThan(hi - lo);
    });
  }

  // The checkers must be able to fail: a host that loses its hard state
  // (so a restarted node may vote twice in a term) is caught by a checker —
  // a SimViolation, not merely a raft assertion — within a bounded number of
  // seeds. A host that acknowledges before persisting is caught too, usually
  // by raft's own assertion that a follower's commit never passes its log.
  it('catches a host that loses its hard state with a checker', () => {
    const caught: string[] = [];
    for (let seed = 1; seed <= 120 && caught.length === 0; seed++) {
      try {
        runSeed({ seed, rounds: ROUNDS, inject: 'lose-hardstate' });
      } catch (err) {
        if (err instanceof SimViolation) caught.push(err.message);
      }
    }
    expect(caught.length, 'no seed exposed the lost hard state').toBeGreaterThan(0);
  });

  it('catches a host that acknowledges before persisting', () => {
    const caught: string[] = [];
    for (let seed = 1; seed <= 120 && caught.length === 0; seed++) {
      try {
        runSeed({ seed, rounds: ROUNDS, inject: 'ack-before-persist' });
      } catch (err) {
        caught.push((err as Error).message);
      }
    }
    expect(caught.length, 'no seed exposed the early acknowledgement').toBeGreaterThan(0);
    expect(caught[0]).toMatch(/raft invariant violated|safety|matching|completeness|linearizability/);
  });

  it('is deterministic: a seed replays to the same result', () => {
    expect(runSeed({ seed: 4242 })).toEqual(runSeed({ seed: 4242 }));
  });
});
