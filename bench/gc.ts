// bench/gc.ts — what MVCC GC costs foreground writes (issue #17: removing
// 1 M old versions costs foreground put throughput <= 10 % while it runs).
//
//   pnpm bench:gc [--quick] [--versions N] [--runs R] [--concurrency C] [--baseline-seconds S]
//
// Starts placement + 3 stores as real child processes (LocalCluster, the
// production profile: one Region, so GC batches and the foreground puts
// share one Raft group), with a GC life time of 1 s and stores that poll the
// safe point every 500 ms. A service safe point holds GC back while each
// run writes N old versions (transactions of 1,000 keys; K keys x V
// versions) and then measures raw put throughput (C puts in flight, 100 B
// values) for S seconds with GC idle; then the service safe point moves past
// the garbage and the same load runs while GC removes it, until every store
// reports the versions removed. Runs alternate idle and GC windows; the
// figure is the median over runs of gc_put_per_s / idle_put_per_s. One
// JSON line per run and a summary line on stdout; a markdown table and
// progress on stderr. Benchmarks report; they do not fail.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';
import { PlacementClient } from '@flotilla/placement';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const VERSIONS = Number(argOf('--versions', quick ? '20000' : '1000000'));
const RUNS = Number(argOf('--runs', '3'));
const CONCURRENCY = Number(argOf('--concurrency', '32'));
const BASELINE_MS = Number(argOf('--baseline-seconds', quick ? '3' : '10')) * 1000;
const KEYS = Math.min(10_000, Math.max(100, Math.round(Math.sqrt(VERSIONS) * 10)));
const PER_KEY = Math.max(2, Math.ceil(VERSIONS / KEYS));
const TXN_KEYS = 1000;
const BATCH_ROWS = Number(argOf('--batch-rows', '256'));
const MAX_ROWS_PER_S = Number(argOf('--max-rows-per-s', '0'));
const VALUE = 'v'.repeat(100);
const log = (s: string): void => void process.stderr.write(`[bench:gc] ${s}\n`);

interface Load {
  stop(): Promise<number>;
  done(): number;
}

/** startLoad keeps CONCURRENCY raw puts in flight on fresh keys until stopped; returns how many completed. */
function startLoad(client: FlotillaClient, prefix: string): Load {
  let stopped = false;
  let done = 0;
  let seq = 0;
  const worker = async (): Promise<void> => {
    while (!stopped) {
      await client.put(`${prefix}/${seq++}`, VALUE);
      done++;
    }
  };
  const all = Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return {
    stop: async () => {
      stopped = true;
      await all;
      return done;
    },
    done: () => done,
  };
}

/** writeGarbage writes PER_KEY versions of KEYS transactional keys (run r's own keys), TXN_KEYS keys per transaction. */
async function writeGarbage(client: FlotillaClient, r: number): Promise<void> {
  const started = Date.now();
  let last = started;
  for (let v = 0; v < PER_KEY; v++) {
    for (let k = 0; k < KEYS; k += TXN_KEYS) {
      await client.txn((tx) => {
        for (let i = k; i < Math.min(KEYS, k + TXN_KEYS); i++) tx.put(`gc${r}/${String(i).padStart(6, '0')}`, `${VALUE}${v}`);
      });
    }
    if (Date.now() - last > 5000) {
      last = Date.now();
      log(`run ${r}: wrote ${((v + 1) * KEYS).toLocaleString('en-US')} of ${(PER_KEY * KEYS).toLocaleString('en-US')} versions (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  }
}

async function removed(pd: PlacementClient): Promise<number> {
  return (await pd.getGcStatus()).stores.reduce((n, s) => n + s.versionsRemoved, 0);
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function oneRun(client: FlotillaClient, pd: PlacementClient, r: number): Promise<Record<string, number | string>> {
  await writeGarbage(client, r);
  const mark = await client.timestamp();
  // Idle window: GC held back by the service safe point.
  const idle = startLoad(client, `fg${r}a`);
  await new Promise((res) => setTimeout(res, BASELINE_MS));
  const idleOps = await idle.stop();
  const idlePerS = idleOps / (BASELINE_MS / 1000);
  // GC window: release the garbage, run the same load until it is removed.
  const before = await removed(pd);
  const garbage = KEYS * (PER_KEY - 1);
  await pd.updateServiceSafePoint('bench-gc', mark, 3_600_000);
  await waitFor('the safe point to reach the garbage', async () => (await pd.getGcSafePoint()) >= mark, 60_000);
  const load = startLoad(client, `fg${r}b`);
  const t0 = Date.now();
  await waitFor('GC to remove the garbage', async () => (await removed(pd)) - before >= garbage, 1_800_000);
  const gcMs = Date.now() - t0;
  const gcOps = await load.stop();
  const gcPerS = gcOps / (gcMs / 1000);
  return { bench: 'gc', run: r, batch_rows: BATCH_ROWS, max_rows_per_s: MAX_ROWS_PER_S, versions_removed: (await removed(pd)) - before, gc_s: +(gcMs / 1000).toFixed(2), versions_per_s: Math.round(garbage / (gcMs / 1000)), concurrency: CONCURRENCY, idle_put_per_s: Math.round(idlePerS), gc_put_per_s: Math.round(gcPerS), ratio: +(gcPerS / idlePerS).toFixed(3) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-gc-'));
  const tuningPath = join(dir, 'tuning.json');
  writeFileSync(tuningPath, JSON.stringify({ gcIntervalMs: 500, gcBatchRows: BATCH_ROWS, ...(MAX_ROWS_PER_S > 0 ? { gcMaxRowsPerSec: MAX_ROWS_PER_S } : {}) }));
  // The placement child reads --gc-life-time-ms from its environment (flags fall back to FLOTILLA_*).
  process.env['FLOTILLA_GC_LIFE_TIME_MS'] = '1000';
  const logger = makeLogger('warn', 'bench-gc', 'json');
  log(`3 stores, ${RUNS} runs of ${(KEYS * PER_KEY).toLocaleString('en-US')} versions (${KEYS} keys x ${PER_KEY}), ${CONCURRENCY} puts in flight, GC batches of ${BATCH_ROWS} rows${MAX_ROWS_PER_S > 0 ? `, at most ${MAX_ROWS_PER_S} rows/s` : ''}`);
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger, tuningPath });
  const client = await FlotillaClient.connect({ placement: cluster.placementAddresses, timeoutMs: 60_000 });
  const pd = new PlacementClient({ addresses: cluster.placementAddresses.split(','), requestTimeoutMs: 30_000 });
  const rows: Record<string, number | string>[] = [];
  try {
    const hold = await client.timestamp();
    await pd.updateServiceSafePoint('bench-gc', hold, 3_600_000);
    for (let r = 1; r <= RUNS; r++) {
      const row = await oneRun(client, pd, r);
      rows.push(row);
      process.stdout.write(JSON.stringify(row) + '\n');
      log(`run ${r}: ${JSON.stringify(row)}`);
    }
  } finally {
    pd.close();
    client.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const ratios = rows.map((r) => r['ratio'] as number).sort((a, b) => a - b);
  const median = ratios[Math.floor(ratios.length / 2)]!;
  process.stdout.write(JSON.stringify({ bench: 'gc', case: 'summary', runs: rows.length, versions_per_run: KEYS * (PER_KEY - 1), concurrency: CONCURRENCY, median_ratio: median, median_cost_pct: +((1 - median) * 100).toFixed(1) }) + '\n');
  process.stderr.write(['| run | versions removed | GC s | versions/s | idle puts/s | puts/s during GC | ratio |', '|---|---|---|---|---|---|---|', ...rows.map((r) => `| ${r['run']} | ${r['versions_removed']} | ${r['gc_s']} | ${r['versions_per_s']} | ${r['idle_put_per_s']} | ${r['gc_put_per_s']} | ${r['ratio']} |`)].join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:gc failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
