// bench/vs-etcd.ts — Flotilla side by side with etcd (issue #19 item 9).
//
//   pnpm bench:vs-etcd [--quick] [--rounds N] [--seconds S] [--soak [--soak-minutes M]]
//
// etcd: Debian's etcd-server (installed with apt-get when missing and apt is
// usable; otherwise the etcd rows are skipped with the reason printed), 3
// members on loopback, default flags (fsync per WAL write), driven by a small
// gRPC client talking to the leader (vs-etcd-etcd.ts says why that client).
// Flotilla: placement + 3 stores as child processes (LocalCluster, production
// profile, default durability: synchronous=FULL raft log), on 1 Region and
// then on 16 pre-split Regions of the same cluster. The systems run
// ALTERNATELY, never at the same time; each round starts fresh clusters and
// the order of the systems flips from round to round.
//
// Same workloads for both, closed-loop clients in this process, 100-byte
// values unless noted: put (new keys spread over the key space) at 1, 16, 64
// and 256 clients; linearizable get of loaded keys at 1 and 64; YCSB A (50 %
// reads, 50 % updates) and B (95 / 5) at 64 over the loaded keys, uniform;
// 100-key batches at 16 (Flotilla batchPut, etcd one Txn of 100 puts); 16 KiB
// puts at 16. --quick: put at 1 and 256, get at 64, one round.
//
// Per case: ops/s, p50/p99/p99.9, server CPU per op (sum of the server
// processes' user+system CPU from /proc over the measured window: 3 etcd
// members; Flotilla's 3 stores and placement) and client CPU per op (this
// process, process.cpuUsage()). stdout: one JSON line per case (medians over
// rounds) and one per ratio (Flotilla / etcd); stderr: progress, the machine's
// load, a markdown table.
//
// --soak: Flotilla only, YCSB A at 64 clients for 10 minutes (--soak-minutes):
// per-minute throughput, errors, store RSS and raft.db size; at the end the
// live log bytes read back from each store's raft.db (vs-etcd-soak.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient, EtcdCluster, ensureEtcd } from './vs-etcd-etcd';
import { keyOf, load, progress, startFlotilla, type Kv } from './vs-etcd-flotilla';
import { loadAverage, measure, median, percentile, type Measured } from './vs-etcd-run';
import { runSoak } from './vs-etcd-soak';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const ROUNDS = Number(argOf('--rounds', quick ? '1' : '2'));
const WINDOW_MS = Number(argOf('--seconds', quick ? '5' : '10')) * 1000;
const WARMUP_MS = quick ? 1500 : 2000;
const WARMUP_PHASE_MS = quick ? 4000 : 5000;
const LOADED_KEYS = quick ? 2000 : 20_000;
const VALUE = Buffer.alloc(100, 'v');
const VALUE_16K = Buffer.alloc(16 * 1024, 'w');


interface CaseSpec {
  op: string;
  concurrency: number;
  valueBytes: number;
  run: (kv: Kv, r: () => number, next: () => number) => Promise<void>;
}

const loadedKey = (r: () => number): Buffer => keyOf(Math.floor(r() * LOADED_KEYS));
const mustGet = async (kv: Kv, key: Uint8Array): Promise<void> => {
  if ((await kv.get(key)) < 0) throw new Error(`loaded key ${Buffer.from(key).toString()} is missing`);
};
/** newKey lands next to a random loaded key, so new keys spread over every Region. */
const newKey = (r: () => number, n: number): Buffer => Buffer.concat([loadedKey(r), Buffer.from(`/${n}`)]);

function cases(): CaseSpec[] {
  const put = (c: number): CaseSpec => ({ op: 'put', concurrency: c, valueBytes: 100, run: (kv, r, next) => kv.put(newKey(r, next()), VALUE) });
  const get = (c: number): CaseSpec => ({ op: 'get', concurrency: c, valueBytes: 100, run: (kv, r) => mustGet(kv, loadedKey(r)) });
  const ycsb = (op: string, reads: number): CaseSpec => ({
    op, concurrency: 64, valueBytes: 100, run: (kv, r) => (r() < reads ? mustGet(kv, loadedKey(r)) : kv.put(loadedKey(r), VALUE)),
  });
  if (quick) return [put(1), put(256), get(64)];
  return [
    put(1), put(16), put(64), put(256), get(1), get(64), ycsb('ycsb-a', 0.5), ycsb('ycsb-b', 0.95),
    {
      op: 'batch-put-100', concurrency: 16, valueBytes: 100, run: (kv, r) => {
        const base = Math.floor(r() * (LOADED_KEYS - 100));
        return kv.batchPut(Array.from({ length: 100 }, (_, j) => [keyOf(base + j), VALUE] as [Uint8Array, Uint8Array]));
      },
    },
    { op: 'put-16k', concurrency: 16, valueBytes: 16 * 1024, run: (kv, r, next) => kv.put(newKey(r, next()), VALUE_16K) },
  ];
}

/** Row is one JSON line (the shape, plus errors, rounds and the bytes a case moved). */
interface Row {
  bench: 'vs-etcd';
  system: 'etcd' | 'flotilla';
  op: string;
  concurrency: number;
  regions: number;
  ops_per_s: number;
  p50_ms: number;
  p99_ms: number;
  p999_ms: number;
  server_cpu_ms_per_op: number;
  client_cpu_ms_per_op: number;
  mb_per_s: number;
  errors: number;
  rounds: number;
}

const results = new Map<string, Measured[]>();
const caseKey = (system: string, op: string, c: number, regions: number): string => `${system}|${op}|${c}|${regions}`;

/**
 * warmUp runs single-client puts and gets for a few seconds before a
 * system's cases (and again after Flotilla's split), as bench/cluster.ts
 * does: right after start-up a Node server runs cold code, and the first
 * case would measure V8 optimizing it. etcd gets the same phase.
 */
async function warmUp(kv: Kv, pids: () => number[]): Promise<void> {
  let n = 0;
  await measure(1, 0, WARMUP_PHASE_MS, pids, (r) => (n++ % 2 === 0 ? kv.put(newKey(r, -n), VALUE) : mustGet(kv, loadedKey(r))));
}

async function runCases(system: 'etcd' | 'flotilla', regions: number, kv: Kv, pids: () => number[]): Promise<void> {
  await warmUp(kv, pids);
  let seq = 0;
  for (const c of cases()) {
    const m = await measure(c.concurrency, WARMUP_MS, WINDOW_MS, pids, (r) => c.run(kv, r, () => seq++));
    const list = results.get(caseKey(system, c.op, c.concurrency, regions)) ?? [];
    list.push(m);
    results.set(caseKey(system, c.op, c.concurrency, regions), list);
    progress(`${system} regions=${regions} ${c.op} x${c.concurrency}: ${Math.round(m.ops / m.seconds)} ops/s, p50 ${percentile(m.latenciesMs, 50).toFixed(2)} ms, p99 ${percentile(m.latenciesMs, 99).toFixed(2)} ms, server ${(m.serverCpuMs / Math.max(1, m.ops)).toFixed(3)} ms/op, errors ${m.errors}, load ${loadAverage()}`);
  }
}

async function etcdRound(etcd: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-vs-etcd-etcd-'));
  progress(`starting 3 etcd members in ${dir}`);
  const cluster = await EtcdCluster.start(etcd, dir);
  const client = new EtcdClient(cluster.leaderAddress);
  try {
    progress(`etcd leader at ${cluster.leaderAddress}; loading ${LOADED_KEYS} keys`);
    await load(client, LOADED_KEYS, VALUE);
    await runCases('etcd', 1, client, () => cluster.pids);
  } finally {
    client.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function flotillaRound(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-vs-etcd-flotilla-'));
  progress(`starting Flotilla (placement + 3 stores, production profile) in ${dir}`);
  const { cluster, client, kv, pids } = await startFlotilla(dir);
  try {
    progress(`loading ${LOADED_KEYS} keys`);
    await load(kv, LOADED_KEYS, VALUE);
    await runCases('flotilla', 1, kv, pids);
    for (let k = 1; k < 16; k++) await client.split(keyOf(Math.floor((k * LOADED_KEYS) / 16))).catch(() => undefined);
    const rs = await client.regions();
    const leaders: Record<string, number> = {};
    for (const r of rs) leaders[String(r.leader?.storeId ?? '?')] = (leaders[String(r.leader?.storeId ?? '?')] ?? 0) + 1;
    progress(`split into ${rs.length} Regions; leaders by store ${JSON.stringify(leaders)}`);
    await runCases('flotilla', rs.length, kv, pids);
  } finally {
    client.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function summarize(): Row[] {
  const rows: Row[] = [];
  for (const [key, ms] of results) {
    const [system, op, c, regions] = key.split('|') as [Row['system'], string, string, string];
    const valueBytes = op === 'put-16k' ? 16 * 1024 : op === 'batch-put-100' ? 100 * 100 : 100;
    const perOp = (f: (m: Measured) => number): number => median(ms.map((m) => f(m) / Math.max(1, m.ops)));
    const opsPerS = median(ms.map((m) => m.ops / m.seconds));
    rows.push({
      bench: 'vs-etcd', system, op, concurrency: Number(c), regions: Number(regions),
      ops_per_s: Math.round(opsPerS),
      p50_ms: Number(median(ms.map((m) => percentile(m.latenciesMs, 50))).toFixed(2)),
      p99_ms: Number(median(ms.map((m) => percentile(m.latenciesMs, 99))).toFixed(2)),
      p999_ms: Number(median(ms.map((m) => percentile(m.latenciesMs, 99.9))).toFixed(2)),
      server_cpu_ms_per_op: Number(perOp((m) => m.serverCpuMs).toFixed(4)),
      client_cpu_ms_per_op: Number(perOp((m) => m.clientCpuMs).toFixed(4)),
      mb_per_s: Number(((opsPerS * valueBytes) / 1e6).toFixed(2)),
      errors: ms.reduce((a, m) => a + m.errors, 0),
      rounds: ms.length,
    });
  }
  return rows;
}

function report(rows: Row[]): void {
  for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
  const table = ['', '| system | regions | op | clients | ops/s | MB/s | p50 ms | p99 ms | p99.9 ms | server CPU ms/op | client CPU ms/op | errors |', '|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) table.push(`| ${r.system} | ${r.regions} | ${r.op} | ${r.concurrency} | ${r.ops_per_s} | ${r.mb_per_s} | ${r.p50_ms} | ${r.p99_ms} | ${r.p999_ms} | ${r.server_cpu_ms_per_op} | ${r.client_cpu_ms_per_op} | ${r.errors} |`);
  table.push('', '| op | clients | Flotilla regions | ops/s ratio | p99 ratio | server CPU/op ratio |', '|---|---|---|---|---|---|');
  for (const f of rows.filter((r) => r.system === 'flotilla')) {
    const e = rows.find((r) => r.system === 'etcd' && r.op === f.op && r.concurrency === f.concurrency);
    if (e === undefined || e.ops_per_s === 0) continue;
    const ratio = {
      bench: 'vs-etcd', op: f.op, concurrency: f.concurrency, regions: f.regions,
      ratio: Number((f.ops_per_s / e.ops_per_s).toFixed(2)),
      p99_ratio: Number((f.p99_ms / Math.max(0.001, e.p99_ms)).toFixed(2)),
      server_cpu_ratio: Number((f.server_cpu_ms_per_op / Math.max(1e-6, e.server_cpu_ms_per_op)).toFixed(2)),
    };
    process.stdout.write(JSON.stringify(ratio) + '\n');
    table.push(`| ${f.op} | ${f.concurrency} | ${f.regions} | ${ratio.ratio} | ${ratio.p99_ratio} | ${ratio.server_cpu_ratio} |`);
  }
  process.stderr.write(table.join('\n') + '\n');
}

const HELP = `pnpm bench:vs-etcd [--quick] [--rounds N] [--seconds S] [--soak [--soak-minutes M]]

Flotilla (placement + 3 stores, production profile) side by side with a 3-member etcd on loopback,
run alternately; etcd-server is installed with apt-get when missing. One JSON line per case and per
ratio on stdout, progress and a markdown table on stderr.
  --quick          put at 1 and 256 clients, get at 64; one round (~3 min)
  --rounds N       rounds (default 2; 1 with --quick), medians over them
  --seconds S      measured window per case (default 10; 5 with --quick)
  --soak           Flotilla only: YCSB A at 64 clients, per-minute throughput, RSS, raft.db size
  --soak-minutes M length of the soak (default 10)
`;

async function main(): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  progress(`load average ${loadAverage()} (the systems run one at a time; other work on the machine is not under our control)`);
  if (args.includes('--soak')) return runSoak(Number(argOf('--soak-minutes', '10')), LOADED_KEYS, VALUE);
  const etcd = ensureEtcd(progress);
  if ('skip' in etcd) progress(`skipping etcd: ${etcd.skip}`);
  for (let round = 1; round <= ROUNDS; round++) {
    progress(`round ${round} of ${ROUNDS}`);
    const etcdFirst = round % 2 === 1;
    if (etcdFirst && 'path' in etcd) await etcdRound(etcd.path);
    await flotillaRound();
    if (!etcdFirst && 'path' in etcd) await etcdRound(etcd.path);
  }
  report(summarize());
  progress(`done; load average ${loadAverage()}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:vs-etcd failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
