import { describe, expect, it } from 'vitest';
import { mulberry32 } from '@flotilla/transport';
import { ModelTxnApi, type ModelMode } from '../src/txn/model';
import { startTxnWorkload, type TxnWorkloadKind } from '../src/txn/run';

// The txn harness's wiring, without a cluster: the bank and list-append
// workloads over the in-memory reference model (model.ts). A serializable or
// snapshot-isolated model must pass both checkers; the planted bug (no
// write-conflict check) must fail them.

async function run(kind: TxnWorkloadKind, mode: ModelMode, seed: number) {
  const api = new ModelTxnApi(mode, mulberry32(seed));
  let started = 0;
  const env = { nextEvent: (() => { let n = 0; return () => ++n; })(), sleep: () => Promise.resolve(), running: () => started++ < 400, thinkMs: 0 };
  const keys = Array.from({ length: kind === 'bank' ? 8 : 5 }, (_, i) => `k${i}`);
  const w = await startTxnWorkload(api, env, { kind, seed, clients: 6, keys, setupDeadlineMs: Date.now() + 10_000 });
  await w.finished;
  return { verdict: w.check(), api };
}

describe('txn workloads over the in-memory model', () => {
  for (const kind of ['bank', 'list-append'] as const) {
    it.each([1, 2, 3])(`${kind}: a serializable model passes (seed %i)`, async (seed) => {
      const { verdict, api } = await run(kind, 'serializable', seed);
      expect(verdict.ok, verdict.explanation).toBe(true);
      expect(api.commits).toBeGreaterThan(100);
      if (kind === 'list-append') expect(verdict.summary['allowedG2']).toBe(0);
    });

    it.each([1, 2, 3])(`${kind}: snapshot isolation passes (seed %i)`, async (seed) => {
      const { verdict, api } = await run(kind, 'snapshot', seed);
      expect(verdict.ok, verdict.explanation).toBe(true);
      // The clients did conflict (so the check had something to catch).
      expect(api.conflicts).toBeGreaterThan(0);
      expect(api.commits).toBeGreaterThan(100);
    });

    it(`${kind}: the planted bug (no write-conflict check) is caught`, async () => {
      const { verdict } = await run(kind, 'broken', 1);
      expect(verdict.ok).toBe(false);
      expect(verdict.explanation.length).toBeGreaterThan(0);
      if (kind === 'bank') expect(verdict.explanation).toMatch(/total \d+, expected 800/);
      else expect(verdict.explanation).toMatch(/^(G0|G1c|G-single|incompatible-order|lost-append)/m);
    });
  }
});
