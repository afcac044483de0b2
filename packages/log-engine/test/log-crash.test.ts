import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LogEngine } from '../src/index';
import { runAndKill } from './crash/run-child';
import { cloneModel, describeDifference, modelAfter, nextBatch } from './crash/log-workload';
import { tempDir } from './helpers';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash', 'log-child.ts');

// Crash test with real processes: a child writes batches and acknowledges
// each durable one; we SIGKILL it at random moments, reopen the database and
// check that it holds exactly the state after some prefix of the batches
// that includes every acknowledged one (no batch lost, none partly visible).
describe.each([
  ['sync', 11],
  ['worker', 10],
] as const)('log engine survives SIGKILL (%s writer)', (mode, kills) => {
  it(`keeps every acknowledged batch over ${kills} kills`, async () => {
    const file = path.join(tempDir('flotilla-log-crash-'), 'raft.db');
    let durable = 0;
    let x = mode === 'sync' ? 17 : 29;
    const rnd = (n: number) => ((x = (x * 48271) % 2147483647), x % n);
    for (let k = 0; k < kills; k++) {
      const acked = await runAndKill(child, [file, String(durable + 1), mode], 1 + rnd(30), rnd(60));
      expect(acked).toBeGreaterThan(durable);
      const engine = LogEngine.open({ path: file });
      try {
        // The kill may land after a commit but before its ack: accept the
        // first prefix at or beyond the last ack that matches exactly.
        const model = modelAfter(acked);
        let found: number | undefined;
        const probe = cloneModel(model);
        for (let n = acked; n <= acked + 5; n++) {
          if (n > acked) nextBatch(n, probe);
          if (describeDifference(engine, probe) === undefined) {
            found = n;
            break;
          }
        }
        if (found === undefined) expect.fail(`after kill ${k}: state matches no prefix >= ${acked}: ${describeDifference(engine, model)}`);
        durable = found;
      } finally {
        await engine.close();
      }
    }
    expect(durable).toBeGreaterThan(kills);
  });
});
