// bench/hot.ts — one hot Region: throughput with load-based split off and on.
//
//   pnpm bench:hot [--quick] [--rounds N] [--clients 64] [--seconds S]
//                  [--warm-seconds S] [--qps Q] [--op get|put|mixed]
//
// Starts placement + 3 stores as real child processes (LocalCluster, the
// production profile: the Region never splits by size here), loads 2,000
// keys into the one Region, then has `clients` closed-loop clients hammer
// random keys of that one range. Each round runs twice, alternating:
//   off  store tuning loadSplitQps 0, loadSplitBytesPerSec 0 (the old path)
//   on   loadSplitQps Q (default 1000), 3 windows of 1 s
// A run warms up for --warm-seconds (load split and balance-leader act
// meanwhile), then measures --seconds. One JSON line per run on stdout
// (mode, ops_per_s, p50/p99, regions and leader stores after), a markdown
// table with the medians per mode on stderr, and the load average at the
// start and end of each run (the machine is shared: report it). Benchmarks
// report; they do not fail.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const ROUNDS = Number(argOf('--rounds', quick ? '1' : '3'));
const CLIENTS = Number(argOf('--clients', '64'));
const MEASURE_MS = Number(argOf('--seconds', quick ? '4' : '10')) * 1000;
const WARM_MS = Number(argOf('--warm-seconds', quick ? '8' : '15')) * 1000;
const QPS = Number(argOf('--qps', '1000'));
const OP = argOf('--op', 'mixed');
if (!['get', 'put', 'mixed'].includes(OP)) throw new Error(`--op: get, put or mixed, not ${OP}`);
const KEYS = 2000;
const VALUE = 'v'.repeat(100);
const keyOf = (i: number): string => `hot/${String(i).padStart(6, '0')}`;
const progress = (s: string): boolean => process.stderr.write(`[bench:hot] ${s}\n`);
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

interface Row {
  bench: 'hot';
  mode: 'off' | 'on';
  round: number;
  op: string;
  clients: number;
  ops: number;
  ops_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  regions_after: number;
  leader_stores_after: number;
  load_start: string;
  load_end: string;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function run(mode: 'off' | 'on', round: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-hot-'));
  const tuningPath = join(dir, 'tuning.json');
  const tuning = mode === 'off' ? { loadSplitQps: 0, loadSplitBytesPerSec: 0 } : { loadSplitQps: QPS, loadSplitBytesPerSec: 0, loadSplitWindowMs: 1000, loadSplitWindows: 3 };
  writeFileSync(tuningPath, JSON.stringify(tuning));
  const loadStart = load();
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger: makeLogger('warn', 'bench-hot'), tuningPath });
  const client = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
  try {
    for (const deadline = Date.now() + 180_000; ; await new Promise((r) => setTimeout(r, 300))) {
      const rs = await client.regions();
      if (rs.length === 1 && rs[0]!.region.peers.filter((p) => p.role === 'voter').length === 3) break;
      if (Date.now() > deadline) throw new Error('Region 1 not replicated to 3 stores after 180 s');
    }
    for (let i = 0; i < KEYS; i += 500) await client.batchPut(Array.from({ length: Math.min(500, KEYS - i) }, (_, j) => [keyOf(i + j), VALUE] as [string, string]));
    progress(`${mode} round ${round}: ${CLIENTS} clients, ${WARM_MS} ms warm-up then ${MEASURE_MS} ms measured (load ${load()})`);
    const latencies: number[] = [];
    let errors = 0;
    const start = Date.now();
    const measureFrom = start + WARM_MS;
    const end = measureFrom + MEASURE_MS;
    const worker = async (w: number): Promise<void> => {
      let x = 7919 * (w + 1);
      while (Date.now() < end) {
        x = (x * 1103515245 + 12345) >>> 0;
        const k = keyOf(x % KEYS);
        const put = OP === 'put' || (OP === 'mixed' && (x & 0x10000) !== 0);
        const t0 = performance.now();
        try {
          if (put) await client.put(k, VALUE);
          else await client.get(k);
        } catch {
          errors++;
          continue;
        }
        if (Date.now() >= measureFrom) latencies.push(performance.now() - t0);
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, w) => worker(w)));
    latencies.sort((a, b) => a - b);
    const rs = await client.regions();
    const row: Row = {
      bench: 'hot',
      mode,
      round,
      op: OP,
      clients: CLIENTS,
      ops: latencies.length,
      ops_per_s: Math.round(latencies.length / (MEASURE_MS / 1000)),
      p50_ms: Number(percentile(latencies, 50).toFixed(2)),
      p99_ms: Number(percentile(latencies, 99).toFixed(2)),
      errors,
      regions_after: rs.length,
      leader_stores_after: new Set(rs.map((r) => r.leader?.storeId)).size,
      load_start: loadStart,
      load_end: load(),
    };
    process.stdout.write(JSON.stringify(row) + '\n');
    return row;
  } finally {
    client.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  // Alternate off/on in one sitting so the machine's load hits both alike.
  for (let round = 1; round <= ROUNDS; round++) for (const mode of ['off', 'on'] as const) rows.push(await run(mode, round));
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? 0 : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const lines = (['off', 'on'] as const).map((mode) => {
    const rs = rows.filter((r) => r.mode === mode);
    return `| ${mode} | ${rs.length} | ${median(rs.map((r) => r.ops_per_s))} | ${median(rs.map((r) => r.p50_ms))} | ${median(rs.map((r) => r.p99_ms))} | ${rs.map((r) => r.regions_after).join(',')} | ${rs.map((r) => r.leader_stores_after).join(',')} |`;
  });
  process.stderr.write(['', `op ${OP}, ${CLIENTS} clients, medians of runs`, '| load split | runs | ops/s | p50 ms | p99 ms | regions after | leader stores after |', '|---|---|---|---|---|---|---|', ...lines, ''].join('\n'));
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench:hot] failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
