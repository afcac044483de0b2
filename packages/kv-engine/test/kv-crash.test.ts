import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { KvEngine } from '../src/index';
// The same crash harness as the log engine's: spawn a writer, SIGKILL it after some acknowledged writes.
import { runAndKill } from '@flotilla/log-engine/test-support/run-and-kill';
import { cloneModel, describeDifference, modelAfter, nextBatch } from './crash/kv-workload';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crash', 'kv-child.ts');

// Crash test with real processes: the child applies batches (data + applied
// index in one transaction) and acknowledges each; we SIGKILL it at random
// moments and check after reopening that the database is exactly the state
// after a prefix including every acknowledged batch — so each Region's
// applied index matches exactly the data present.
it('KV engine keeps every acknowledged batch and matching applied indexes over 20 kills', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-kv-crash-')), 'kv.db');
  let durable = 0;
  let x = 41;
  const rnd = (n: number) => ((x = (x * 48271) % 2147483647), x % n);
  for (let k = 0; k < 20; k++) {
    const acked = await runAndKill(child, [file, String(durable + 1)], 1 + rnd(40), rnd(50));
    expect(acked).toBeGreaterThan(durable);
    const engine = KvEngine.open({ path: file });
    try {
      const probe = cloneModel(modelAfter(acked));
      let found: number | undefined;
      const first = describeDifference(engine, probe);
      if (first === undefined) found = acked;
      else {
        nextBatch(acked + 1, probe);
        if (describeDifference(engine, probe) === undefined) found = acked + 1;
      }
      if (found === undefined) expect.fail(`after kill ${k}: state matches neither batch ${acked} nor ${acked + 1}: ${first}`);
      durable = found;
    } finally {
      engine.close();
    }
  }
  expect(durable).toBeGreaterThan(20);
});
