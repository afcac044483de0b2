// bench/gc.ts — what MVCC GC costs foreground writes (issue #17: removing
// 1 M old versions costs foreground put throughput <= 10 % while it runs).
//
//   pnpm bench:gc [--quick] [--versions N] [--runs R] [--concurrency C] [--window-seconds S] [--batch-rows N] [--max-rows-per-s N]
//
// Starts placement + 3 stores as real child processes (LocalCluster, the
// production profile: one Region, so GC batches and the foreground puts
// share one Raft group), with a GC life time of 1 s and stores that poll the
// safe point every 500 ms. A service safe point holds GC back while each
// run writes N old versions (transactions of 1,000 keys; K keys x V
// versions), warms up, and measures raw put throughput (C puts in flight,
// 100 B values) in three S-second windows: GC idle, GC running (the
// service safe point moved past the garbage), GC idle again once every
// store reported the versions removed. The figure is the median over runs
// of the GC window's puts/s over the mean of the idle windows around it.
// --max-rows-per-s sets the stores' gcMaxRowsPerSec (0: no cap). One
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
const WINDOW_MS = Number(argOf('--window-seconds', quick ? '4' : '10')) * 1000;
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

/** measure runs the put load for WINDOW_MS and returns puts per second. */
async function measure(client: FlotillaClient, prefix: string): Promise<number> {
  const load = startLoad(client, prefix);
  await new Promise((res) => setTimeout(res, WINDOW_MS));
  return (await load.stop()) / (WINDOW_MS / 1000);
}

/**
 * oneRun: write the garbage, warm up, then three equal windows of the same
 * put load: idle (GC held back), while GC removes the garbage (from the
 * moment the safe point passes it), and idle again once GC is done. The
 * ratio compares the GC window with the mean of the idle windows around it.
 */
async function oneRun(client: FlotillaClient, pd: PlacementClient, r: number): Promise<Record<string, number | string>> {
  await writeGarbage(client, r);
  const mark = await client.timestamp();
  await measure(client, `fg${r}w`); // warm-up after the bulk writes, not counted
  const idleBefore = await measure(client, `fg${r}a`);
  const before = await removed(pd);
  const garbage = KEYS * (PER_KEY - 1);
  await pd.updateServiceSafePoint('bench-gc', mark, 3_600_000);
  await waitFor('the safe point to reach the garbage', async () => (await pd.getGcSafePoint()) >= mark, 60_000);
  const t0 = Date.now();
  const during = await measure(client, `fg${r}b`);
  const removedInWindow = (await removed(pd)) - before;
  await waitFor('GC to remove the garbage', async () => (await removed(pd)) - before >= garbage, 1_800_000);
  const gcMs = Date.now() - t0;
  const stillRunning = gcMs > WINDOW_MS + 1000;
  const idleAfter = await measure(client, `fg${r}c`);
  const idle = (idleBefore + idleAfter) / 2;
  return {
    bench: 'gc',
    run: r,
    batch_rows: BATCH_ROWS,
    max_rows_per_s: MAX_ROWS_PER_S,
    versions_removed: (await removed(pd)) - before,
    gc_s: +(gcMs / 1000).toFixed(2),
    versions_per_s: Math.round(garbage / (gcMs / 1000)),
    gc_ran_whole_window: stillRunning ? 1 : 0,
    removed_reported_in_window: removedInWindow,
    concurrency: CONCURRENCY,
    idle_before_put_per_s: Math.round(idleBefore),
    gc_put_per_s: Math.round(during),
    idle_after_put_per_s: Math.round(idleAfter),
    ratio: +(during / idle).toFixed(3),
  };
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
  process.stdout.write(JSON.stringify({ bench: 'gc', case: 'summary', runs: rows.length, versions_per_run: KEYS * (PER_KEY - 1), batch_rows: BATCH_ROWS, max_rows_per_s: MAX_ROWS_PER_S, concurrency: CONCURRENCY, median_ratio: median, median_cost_pct: +((1 - median) * 100).toFixed(1) }) + '\n');
  process.stderr.write(['| run | versions removed | GC s | versions/s | idle puts/s (before, after) | puts/s during GC | ratio |', '|---|---|---|---|---|---|---|', ...rows.map((r) => `| ${r['run']} | ${r['versions_removed']} | ${r['gc_s']} | ${r['versions_per_s']} | ${r['idle_before_put_per_s']}, ${r['idle_after_put_per_s']} | ${r['gc_put_per_s']} | ${r['ratio']} |`)].join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:gc failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
