// bench/placement.ts — placement service throughput and latency.
//
//   pnpm bench:placement [--quick] [--regions N] [--only GROUP] [--batch B] [--members M] [--heartbeats N] [--single no] [--packed yes|no|both]
//
// Cases (each run 3 times, medians reported):
//   region-heartbeat         stats-only heartbeats through PlacementCluster.dispatch (zod validation,
//                            tree update, batched SQLite persistence: inline flush every 4096 dirty
//                            Regions plus a final flush inside the timed section); default settings,
//                            so size/key-only changes are written at most every 10 s per Region
//   region-heartbeat-persist-all  the same with statsPersistIntervalMs = 0: every heartbeat's
//                            statistics are written (batched, one transaction per 4096 Regions)
//   region-heartbeat-confver every heartbeat bumps confVer (the meta-change path)
//   region-heartbeat-socket  PlacementClient -> WebSocket -> server, 256 calls in flight (same process)
//   get-region               dispatch('getRegion') latency per call (validation + binary search)
//   get-region-tree          RegionTree.search latency alone
//   tso                      PlacementClient.timestamp() at concurrency 1..1024 against 1 and 3 placement
//                            processes (fsync on): ts_per_s, p50_ms, p99_ms (bench/placement-tso.ts)
//   failover                 SIGKILL the leader of 3 placement processes (production ticks), N times: time to the
//                            first timestamp and the first split after each kill (bench/placement-failover.ts);
//                            with --regions N the table first holds N Regions, which each new leader loads
//   region-heartbeat (members 1, 3)  stats-only heartbeats over a socket to 1 and 3 placement processes holding
//                            --regions Regions, single requests (batch=1, 256 in flight) and regionHeartbeats
//                            batches (--batch B, default 256; 5 store clients, 2 batches in flight each), measured
//                            alternately, medians of 3 (bench/placement-heartbeat-raft.ts); --packed yes|no|both
//                            picks the batches' wire (packed, the previous maps, or both alternating)
//   region-heartbeat-wire    CPU per batched heartbeat on the client and the server side of each wire (maps,
//                            packed), in process, no socket or Raft (bench/placement-heartbeat-wire.ts)
// --only heartbeat|heartbeat-wire|tso|failover|heartbeat-raft runs one group. One JSON line per case on stdout; a markdown table on stderr.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Region } from '@flotilla/proto';
import { PlacementClient, startPlacementServer, type RegionHeartbeat } from '@flotilla/placement';
import { PlacementCluster } from '@flotilla/placement/internal';
import { runFailover } from './placement-failover';
import { runHeartbeats } from './placement-heartbeat-raft';
import { runWire } from './placement-heartbeat-wire';
import { runTso } from './placement-tso';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  // The header comment above is the full description; print its usage and case list.
  const { readFileSync } = await import('node:fs');
  const text = readFileSync(new URL(import.meta.url), 'utf8');
  const header = text.split('\n').filter((l) => l.startsWith('//')).map((l) => l.replace(/^\/\/ ?/, ''));
  process.stdout.write(`${header.join('\n')}\n`);
  process.exit(0);
}
const quick = args.includes('--quick');
const regionsArg = args.indexOf('--regions');
const REGIONS = regionsArg >= 0 ? Number(args[regionsArg + 1]) : 100_000;
const HEARTBEATS = quick ? 40_000 : 400_000;
const SOCKET_HEARTBEATS = quick ? 6_000 : 100_000;
const LOOKUPS = quick ? 40_000 : 400_000;
const STORES = 5;
const batchArg = args.indexOf('--batch');
/** HEARTBEAT_BATCH: Region heartbeats per regionHeartbeats request in the socket case (what a store sends: 256). */
const HEARTBEAT_BATCH = batchArg >= 0 ? Number(args[batchArg + 1]) : 256;
const membersArg = args.indexOf('--members');
/** MEMBERS: placement group sizes of the socket heartbeat case (--members 3 runs one). */
const MEMBERS = membersArg >= 0 ? [Number(args[membersArg + 1])] : [1, 3];
const hbArg = args.indexOf('--heartbeats');
/** SOCKET_RAFT_HEARTBEATS: heartbeats per timed run of the socket heartbeat case (--heartbeats N). */
const SOCKET_RAFT_HEARTBEATS = hbArg >= 0 ? Number(args[hbArg + 1]) : undefined;
const batchesArg = args.indexOf('--single');
/** SINGLE: whether the socket heartbeat case also runs batch=1 (--single no: only batched, to compare two builds faster). */
const SINGLE = batchesArg < 0 || args[batchesArg + 1] !== 'no';
const packedArg = args.indexOf('--packed');
/** PACKING: the batched heartbeat case's wire: packed (default), maps (the previous wire), or both, alternating (--packed yes|no|both). */
const PACKING = packedArg < 0 || args[packedArg + 1] === 'yes' ? [true] : args[packedArg + 1] === 'no' ? [false] : [false, true];
const onlyArg = args.indexOf('--only');
const ONLY = onlyArg >= 0 ? args[onlyArg + 1] : undefined;

/** xorshift: a seeded generator so every run sees the same workload. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const keyOf = (i: number): Buffer => Buffer.from(`t_${String(i).padStart(8, '0')}`);
const empty = new Uint8Array();

interface Fixture {
  dir: string;
  cluster: PlacementCluster;
  heartbeats: RegionHeartbeat[];
}

/** buildCluster bootstraps a cluster of STORES stores and `regions` Regions of 3 voters each. */
function buildCluster(regions: number, dataDir?: string): Fixture {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'bench-placement-'));
  const cluster = new PlacementCluster({ dataDir: dir, balanceLeader: false, balanceRegion: false });
  const storeIds = cluster.allocId(STORES);
  const regionIds = cluster.allocId(regions);
  const peerIds = cluster.allocId(regions * 3);
  const regionAt = (i: number): Region => ({
    id: regionIds[i]!,
    startKey: i === 0 ? empty : keyOf(i),
    endKey: i === regions - 1 ? empty : keyOf(i + 1),
    epoch: { version: 2, confVer: 1 },
    peers: [0, 1, 2].map((j) => ({ id: peerIds[i * 3 + j]!, storeId: storeIds[(i + j) % STORES]!, role: 'voter' as const })),
  });
  const first = regionAt(0);
  cluster.dispatch('bootstrap', {
    store: { id: storeIds[0]!, address: '127.0.0.1:20160' },
    region: { ...first, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: first.peers.filter((p) => p.storeId === storeIds[0]) },
  });
  for (let s = 1; s < STORES; s++) cluster.dispatch('putStore', { store: { id: storeIds[s]!, address: `127.0.0.1:${20160 + s}` } });
  const all = Array.from({ length: regions }, (_, i) => regionAt(i));
  for (let i = 0; i < all.length; i += 1024) cluster.dispatch('reportBatchSplit', { regions: all.slice(i, i + 1024) });
  const heartbeats = all.map((region) => ({ region, leader: region.peers[0]!, approximateSizeBytes: 96 << 20, approximateKeys: 100_000 }));
  return { dir, cluster, heartbeats };
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** Rate is a throughput by wall clock and by this process's CPU time (robust on a shared, overloaded machine). */
interface Rate {
  wall: number;
  cpu: number;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function heartbeatRun(f: Fixture, n: number, seed: number, bumpConfVer: boolean): Rate {
  const rand = rng(seed);
  const c0 = cpuSeconds();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const hb = f.heartbeats[Math.floor(rand() * f.heartbeats.length)]!;
    hb.approximateSizeBytes = (hb.approximateSizeBytes + 4096) % (144 << 20);
    hb.approximateKeys++;
    if (bumpConfVer) hb.region = { ...hb.region, epoch: { version: hb.region.epoch.version, confVer: hb.region.epoch.confVer + 1 } };
    // Now and then the leader moves to another voter, as after an election.
    if (rand() < 0.01) hb.leader = hb.region.peers[Math.floor(rand() * 3)]!;
    f.cluster.dispatch('regionHeartbeat', hb);
  }
  f.cluster.flush();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { wall: n / s, cpu: n / (cpuSeconds() - c0) };
}

async function socketRun(f: Fixture, client: PlacementClient, n: number, seed: number): Promise<Rate> {
  const rand = rng(seed);
  const c0 = cpuSeconds();
  const window = 256;
  let issued = 0;
  const t0 = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (issued < n) {
      issued++;
      const hb = f.heartbeats[Math.floor(rand() * f.heartbeats.length)]!;
      hb.approximateKeys++;
      await client.regionHeartbeat(hb);
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { wall: n / s, cpu: n / (cpuSeconds() - c0) };
}

function lookupRun(f: Fixture, n: number, seed: number, viaDispatch: boolean): { p50: number; p99: number; p999: number } {
  const rand = rng(seed);
  const keys = Array.from({ length: 4096 }, () => keyOf(Math.floor(rand() * REGIONS * 1.1)));
  const lat = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const key = keys[i & 4095]!;
    const t0 = process.hrtime.bigint();
    const r = viaDispatch ? (f.cluster.dispatch('getRegion', { key }) as { region: unknown }).region : f.cluster.tree.search(key);
    lat[i] = Number(process.hrtime.bigint() - t0) / 1000;
    if (r === undefined || r === null) throw new Error('lookup found no region');
  }
  lat.sort();
  return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), p999: percentile(lat, 0.999) };
}

interface Row {
  op: string;
  metric: string;
  value: number;
  runs: number[];
}

/** tsoCases: the timestamp oracle at several concurrencies, 1 member and 3. */
async function tsoCases(rows: Row[], emit: (fields: Record<string, unknown>) => void): Promise<void> {
  const concurrencies = quick ? [1, 256] : [1, 16, 256, 1024];
  for (const members of [1, 3]) {
    let results;
    try {
      results = await runTso(members, concurrencies, quick ? 2000 : 5000);
    } catch (err) {
      process.stderr.write(`  tso with ${members} member(s) failed: ${(err as Error).message}\n`);
      continue;
    }
    for (const r of results) {
      emit({ op: 'tso', ...r });
      rows.push({ op: `tso members=${members} c=${r.concurrency}`, metric: 'ts/s (p50 / p99 ms)', value: r.ts_per_s, runs: [r.p50_ms, r.p99_ms] });
    }
    process.stderr.write(`  tso with ${members} member(s) done\n`);
  }
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const emit = (fields: Record<string, unknown>): void => void process.stdout.write(JSON.stringify({ bench: 'placement', ...fields }) + '\n');
  const rate = (op: string, runs: Rate[], n: number, extra: Record<string, unknown> = {}): void => {
    const wall = median(runs.map((r) => r.wall));
    const cpu = median(runs.map((r) => r.cpu));
    emit({ op, regions: REGIONS, heartbeats: n, ...extra, ops_per_s: Math.round(wall), us_per_op: +(1e6 / wall).toFixed(2), ops_per_cpu_s: Math.round(cpu), cpu_us_per_op: +(1e6 / cpu).toFixed(2) });
    rows.push({ op, metric: 'ops/s (wall)', value: Math.round(wall), runs: runs.map((r) => Math.round(r.wall)) });
    rows.push({ op, metric: 'ops per CPU-second', value: Math.round(cpu), runs: runs.map((r) => Math.round(r.cpu)) });
  };
  if (ONLY === undefined || ONLY === 'heartbeat') await heartbeatCases(rows, emit, rate);
  if (ONLY === undefined || ONLY === 'heartbeat-wire') {
    const f = buildCluster(REGIONS);
    try {
      for (const r of runWire(f.cluster, f.heartbeats, quick ? 20_000 : 100_000, quick ? 3 : 5)) {
        emit({ op: 'region-heartbeat-wire', ...r, load_avg_1m: +loadavg()[0]!.toFixed(1) });
        rows.push({ op: `region-heartbeat-wire ${r.wire} (in process, ${r.regions} regions)`, metric: 'server CPU us per heartbeat', value: r.server_cpu_us_per_op, runs: r.runs_server_us });
        rows.push({ op: `region-heartbeat-wire ${r.wire} (in process, ${r.regions} regions)`, metric: 'client CPU us per heartbeat', value: r.client_cpu_us_per_op, runs: r.runs_client_us });
      }
    } finally {
      f.cluster.close();
      rmSync(f.dir, { recursive: true, force: true });
    }
  }
  if (ONLY === undefined || ONLY === 'tso') await tsoCases(rows, emit);
  if (ONLY === undefined || ONLY === 'heartbeat-raft') {
    for (const members of MEMBERS) {
      // --quick: 20,000 Regions, so the setup (every Region reported through the Raft log) fits in a minute.
      const cases = await runHeartbeats(members, quick ? Math.min(REGIONS, 20_000) : REGIONS, SOCKET_RAFT_HEARTBEATS ?? (quick ? 20_000 : 200_000), SINGLE ? [1, HEARTBEAT_BATCH] : [HEARTBEAT_BATCH], quick ? 1 : 3, PACKING);
      for (const r of cases) {
        emit({ op: 'region-heartbeat', transport: 'socket', ...r });
        rows.push({ op: `region-heartbeat members=${members} batch=${r.batch}${r.wire ? ' ' + r.wire : ''} (socket, ${r.regions} regions)`, metric: 'ops/s (wall)', value: r.ops_per_s, runs: r.runs_ops_per_s });
        process.stderr.write(`  region-heartbeat with ${members} member(s), batch ${r.batch}: ${r.ops_per_s}/s (median of ${r.runs_ops_per_s.join(', ')}; setup ${r.setup_ms} ms)\n`);
      }
    }
  }
  if (ONLY === undefined || ONLY === 'failover') {
    const kills = quick ? 3 : 10;
    // --regions given: the new leaders load that many Regions (issue #16); the failover case alone has none by default.
    const r = await runFailover(kills, (line) => process.stderr.write(line + '\n'), regionsArg >= 0 ? REGIONS : 0);
    emit({ op: 'failover', members: r.members, regions: r.regions, kills: r.kills, load_avg_1m: +loadavg()[0]!.toFixed(1), p50_ms: r.tso_p50_ms, max_ms: r.tso_max_ms, tso_p50_ms: r.tso_p50_ms, tso_max_ms: r.tso_max_ms, split_p50_ms: r.split_p50_ms, split_max_ms: r.split_max_ms });
    rows.push({ op: `failover members=3 regions=${r.regions} kills=${kills}`, metric: 'first timestamp p50 ms (max)', value: r.tso_p50_ms, runs: [r.tso_max_ms] });
    rows.push({ op: `failover members=3 regions=${r.regions} kills=${kills}`, metric: 'first split p50 ms (max)', value: r.split_p50_ms, runs: [r.split_max_ms] });
  }
  process.stderr.write(`\n| case | metric | value (median of 3 for heartbeat cases) | runs |\n|---|---|---|---|\n`);
  for (const r of rows) process.stderr.write(`| ${r.op} | ${r.metric} | ${r.value} | ${r.runs.join(', ')} |\n`);
}

async function heartbeatCases(rows: Row[], emit: (fields: Record<string, unknown>) => void, rate: (op: string, runs: Rate[], n: number, extra?: Record<string, unknown>) => void): Promise<void> {
  process.stderr.write(`placement bench: ${REGIONS} regions, ${quick ? 'quick' : 'full'} mode\n`);
  const tSetup = Date.now();
  const f = buildCluster(REGIONS);
  process.stderr.write(`  setup (bootstrap + ${Math.ceil(REGIONS / 1024)} reportBatchSplit calls): ${Date.now() - tSetup} ms\n`);
  try {
    // Warm up the JIT on both paths.
    heartbeatRun(f, 20_000, 99, false);
    lookupRun(f, 20_000, 99, true);

    const hb = [1, 2, 3].map((s) => heartbeatRun(f, HEARTBEATS, s, false));
    rate('region-heartbeat', hb, HEARTBEATS);
    process.stderr.write('  region-heartbeat done\n');

    f.cluster.statsPersistIntervalMs = 0;
    const pa = [1, 2, 3].map((s) => heartbeatRun(f, HEARTBEATS, s + 5, false));
    f.cluster.statsPersistIntervalMs = 10_000;
    rate('region-heartbeat-persist-all', pa, HEARTBEATS);
    process.stderr.write('  region-heartbeat-persist-all done\n');

    const cv = [1, 2, 3].map((s) => heartbeatRun(f, HEARTBEATS / 2, s + 10, true));
    rate('region-heartbeat-confver', cv, HEARTBEATS / 2);
    process.stderr.write('  region-heartbeat-confver done\n');

    const gl = [1, 2, 3].map((s) => lookupRun(f, LOOKUPS, s, true));
    const p99 = median(gl.map((x) => x.p99));
    emit({ op: 'get-region', regions: REGIONS, lookups: LOOKUPS, p50_us: +median(gl.map((x) => x.p50)).toFixed(2), p99_us: +p99.toFixed(2), p999_us: +median(gl.map((x) => x.p999)).toFixed(2) });
    rows.push({ op: 'get-region', metric: 'p99 µs', value: +p99.toFixed(2), runs: gl.map((x) => +x.p99.toFixed(2)) });

    const gt = [1, 2, 3].map((s) => lookupRun(f, LOOKUPS, s, false));
    const tp99 = median(gt.map((x) => x.p99));
    emit({ op: 'get-region-tree', regions: REGIONS, lookups: LOOKUPS, p50_us: +median(gt.map((x) => x.p50)).toFixed(2), p99_us: +tp99.toFixed(2), p999_us: +median(gt.map((x) => x.p999)).toFixed(2) });
    rows.push({ op: 'get-region-tree', metric: 'p99 µs', value: +tp99.toFixed(2), runs: gt.map((x) => +x.p99.toFixed(2)) });
    process.stderr.write('  get-region done\n');

    // Over the socket: the server reopens the fixture's database, so the in-process cluster closes first.
    f.cluster.close();
    const server = await startPlacementServer({ dataDir: f.dir, listen: '127.0.0.1:0', balanceLeader: false, balanceRegion: false });
    const client = new PlacementClient({ addresses: [server.address], maxPendingRequests: 1024, requestTimeoutMs: 30_000 });
    const sk: Rate[] = [];
    try {
      await socketRun(f, client, 2000, 19); // warm-up
      for (const s of [1, 2, 3]) sk.push(await socketRun(f, client, SOCKET_HEARTBEATS, s + 20));
    } finally {
      client.close();
      await server.close();
    }
    rate('region-heartbeat-socket', sk, SOCKET_HEARTBEATS, { in_flight: 256 });
  } finally {
    f.cluster.close(); // no-op when already closed
    rmSync(f.dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
