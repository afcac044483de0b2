// bench/redis.ts — the Redis protocol front beside the Flotilla client, on one cluster in one run.
//
//   pnpm bench:redis [--quick] [--requests N] [--seconds S]
//
// Starts placement + 3 stores (LocalCluster, production profile, free
// ports, temp dir) and `flotilla redis` as a child process, then:
//   1. redis-benchmark -p PORT -t set,get,incr -n N -c 50 -P 16 -q --csv
//      (issue #20's acceptance command; N = 100000, --quick 10000), and the
//      front's error replies during it (INFO stats total_error_replies);
//   2. the Flotilla client's own put and get from this process on the same
//      cluster, with 50 calls in flight (redis-benchmark's -c) and with 800
//      (its -c x -P), for S seconds each (default 10, --quick 3), on the
//      same one key redis-benchmark uses without -r.
// One JSON line per case on stdout; a markdown table on stderr; the load
// average is in every row (the machine is shared). Needs redis-tools.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';
import { errorReplies, startRedisFront } from './redis-front';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const REQUESTS = Number(argOf('--requests', quick ? '10000' : '100000'));
const CASE_MS = Number(argOf('--seconds', quick ? '3' : '10')) * 1000;
const CLIENTS = 50;
const PIPELINE = 16;
const KEY = 'key:__rand_int__'; // redis-benchmark's SET/GET key when -r is not given
const VALUE = 'x'.repeat(3); // redis-benchmark's default -d 3

const progress = (s: string): boolean => process.stderr.write(`[bench:redis] ${s}\n`);

interface Row {
  bench: 'redis';
  tool: 'redis-benchmark' | 'flotilla-client';
  op: string;
  concurrency: number;
  pipeline: number;
  ops: number;
  ops_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  load_avg_1m: number;
}

function need(bin: string): string {
  const p = ['/usr/bin', '/usr/local/bin'].map((d) => join(d, bin)).find((x) => existsSync(x));
  if (!p) {
    process.stderr.write(`bench:redis needs ${bin} (Debian redis-tools: apt-get install redis-tools)\n`);
    process.exit(2);
  }
  return p;
}

/** redisBenchmark runs the acceptance command and returns one row per test (SET, GET, INCR). */
function redisBenchmark(bin: string, cli: string, port: number): Row[] {
  const before = errorReplies(cli, port);
  progress(`redis-benchmark -p ${port} -t set,get,incr -n ${REQUESTS} -c ${CLIENTS} -P ${PIPELINE} -q --csv`);
  const csv = execFileSync(bin, ['-p', String(port), '-t', 'set,get,incr', '-n', String(REQUESTS), '-c', String(CLIENTS), '-P', String(PIPELINE), '-q', '--csv'], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const errors = errorReplies(cli, port) - before;
  const rows: Row[] = [];
  for (const line of csv.trim().split('\n').slice(1)) {
    const f = JSON.parse(`[${line}]`) as string[];
    rows.push({ bench: 'redis', tool: 'redis-benchmark', op: f[0]!.toLowerCase(), concurrency: CLIENTS, pipeline: PIPELINE, ops: REQUESTS, ops_per_s: Math.round(Number(f[1])), p50_ms: Number(f[4]), p99_ms: Number(f[6]), errors, load_avg_1m: round(loadavg()[0]!) });
  }
  return rows;
}

const round = (n: number): number => Math.round(n * 100) / 100;

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

/** clientCase keeps `inFlight` client calls going for CASE_MS and measures each. */
async function clientCase(op: 'put' | 'get', inFlight: number, client: FlotillaClient): Promise<Row> {
  const latencies: number[] = [];
  let errors = 0;
  const end = Date.now() + CASE_MS;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        try {
          if (op === 'put') await client.put(KEY, VALUE);
          else await client.get(KEY);
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { bench: 'redis', tool: 'flotilla-client', op, concurrency: inFlight, pipeline: 1, ops: latencies.length, ops_per_s: Math.round(latencies.length / seconds), p50_ms: round(percentile(latencies, 50)), p99_ms: round(percentile(latencies, 99)), errors, load_avg_1m: round(loadavg()[0]!) };
}

async function main(): Promise<void> {
  const bench = need('redis-benchmark');
  const cli = need('redis-cli');
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-redis-'));
  const logger = makeLogger('warn', 'bench-redis');
  progress(`starting placement + 3 stores in ${dir}`);
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger });
  let front: { port: number; stop: () => void } | undefined;
  let client: FlotillaClient | undefined;
  const rows: Row[] = [];
  try {
    front = await startRedisFront(cluster.placement.address);
    client = await FlotillaClient.connect({ placement: cluster.placement.address });
    await client.put(KEY, VALUE);
    rows.push(...redisBenchmark(bench, cli, front.port));
    for (const r of rows) console.log(JSON.stringify(r));
    for (const op of ['put', 'get'] as const) {
      for (const inFlight of [CLIENTS, CLIENTS * PIPELINE]) {
        progress(`flotilla client ${op}, ${inFlight} in flight, ${CASE_MS / 1000} s`);
        const row = await clientCase(op, inFlight, client);
        rows.push(row);
        console.log(JSON.stringify(row));
      }
    }
  } finally {
    client?.close();
    front?.stop();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const head = '| tool | op | in flight | pipeline | ops | ops/s | p50 ms | p99 ms | errors | load 1m |';
  const lines = rows.map((r) => `| ${r.tool} | ${r.op} | ${r.concurrency} | ${r.pipeline} | ${r.ops} | ${r.ops_per_s} | ${r.p50_ms} | ${r.p99_ms} | ${r.errors} | ${r.load_avg_1m} |`);
  process.stderr.write(`\n${head}\n|${'---|'.repeat(10)}\n${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:redis failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
