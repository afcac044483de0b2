import { expect, it } from 'vitest';
import { chaosSeed, runChaos } from './fixtures/chaos-run';

// The lock checker catches a planted bug on real processes: `pnpm chaos
// --workload lock --plant-bug` makes contender 0 take the lock once, then
// drop its lease (its keepalives stop) and go on writing the fenced register
// with its stale token and without the fence check, as a holder that ignores
// the loss of its lease would. Once the next holder has written, contender
// 0's writes come after a higher token: the run must exit 1 naming that.
// Loopback, 8 s of faults: the bug, not the faults, is what is shown.

const seed = chaosSeed();
const flags = ['--duration-s', '8', '--seed', String(seed), '--workload', 'lock', '--plant-bug'];
const replay = `pnpm chaos ${flags.join(' ')}`;

it(`catches a holder that ignores the loss of its lease and writes with a stale token (seed ${seed})`, async () => {
  const r = await runChaos(flags);
  expect(r.code, `expected exit 1 (a violation); replay: ${replay}\n${r.err.slice(-4000)}`).toBe(1);
  const s = r.summary as { checker: string; plantBug: boolean };
  expect(s.plantBug).toBe(true);
  expect(s.checker).toBe('violation');
  expect(r.err).toMatch(/contender 0 wrote with token \d+ after contender [1-9]\d* had written with the higher token \d+: two holders' writes interleave out of token order/);
}, 120_000);
