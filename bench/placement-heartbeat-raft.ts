// bench/placement-heartbeat-raft.ts — Region heartbeats against placement processes.
//
// Case `region-heartbeat` with `members`: `regions` Regions of 3 voters on
// 5 stores are reported (reportBatchSplit, 1024 per call) to 1 or 3
// `flotilla placement` processes (fsync on); one batched pass over every
// Region then gives each its leader (the first report of a leader is a
// write). Then stats-only heartbeats for random Regions, in two modes
// measured alternately in one sitting (single, batched, single, ...):
//   batch=1    one `regionHeartbeat` request per Region, one PlacementClient
//              with 256 in flight (the path stores used before batching);
//   batch=B    `regionHeartbeats` with B Regions per request, one
//              PlacementClient per store (5) with 2 batches in flight each,
//              every batch carrying Regions that store leads (what
//              store/operation/pd.ts sends).
// Every change a heartbeat makes to the routing table reaches the Raft log
// in the leader's 50 ms flush batches.
import type { Region } from '@flotilla/proto';
import { PlacementClient, type RegionHeartbeat } from '@flotilla/placement';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { PlacementGroup } from './placement-members';

/** cpuSeconds: user + system CPU of a process so far (/proc/PID/stat, clock ticks of 1/100 s); the bench's own with process.cpuUsage. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const empty = new Uint8Array();
const keyOf = (i: number): Buffer => Buffer.from(`t_${String(i).padStart(8, '0')}`);

async function setUp(pc: PlacementClient, regions: number): Promise<RegionHeartbeat[]> {
  const storeIds = await pc.allocId(5);
  const regionIds: number[] = [];
  const peerIds: number[] = [];
  while (regionIds.length < regions) regionIds.push(...(await pc.allocId(Math.min(10_000, regions - regionIds.length))));
  while (peerIds.length < regions * 3) peerIds.push(...(await pc.allocId(Math.min(9_999, regions * 3 - peerIds.length))));
  const regionAt = (i: number): Region => ({
    id: regionIds[i]!,
    startKey: i === 0 ? empty : keyOf(i),
    endKey: i === regions - 1 ? empty : keyOf(i + 1),
    epoch: { version: 2, confVer: 1 },
    peers: [0, 1, 2].map((j) => ({ id: peerIds[i * 3 + j]!, storeId: storeIds[(i + j) % 5]!, role: 'voter' as const })),
  });
  const first = regionAt(0);
  await pc.bootstrap({ id: storeIds[0]!, address: '127.0.0.1:20160' }, { ...first, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: first.peers.filter((p) => p.storeId === storeIds[0]) });
  for (let s = 1; s < 5; s++) await pc.putStore({ id: storeIds[s]!, address: `127.0.0.1:${20160 + s}` });
  const all = Array.from({ length: regions }, (_, i) => regionAt(i));
  for (let i = 0; i < all.length; i += 1024) await pc.reportBatchSplit(all.slice(i, i + 1024));
  return all.map((region) => ({ region, leader: region.peers[0]!, approximateSizeBytes: 96 << 20, approximateKeys: 100_000 }));
}

const rng = (seed: number): (() => number) => () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);

/** driveSingle: n heartbeats, one request each, 256 in flight on one client. */
async function driveSingle(pc: PlacementClient, hbs: RegionHeartbeat[], n: number, seed: number): Promise<number> {
  const rand = rng(seed);
  let issued = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (issued < n) {
      issued++;
      const hb = hbs[Math.floor(rand() * hbs.length)]!;
      hb.approximateKeys++;
      await pc.regionHeartbeat(hb);
    }
  };
  await Promise.all(Array.from({ length: 256 }, worker));
  return n / ((performance.now() - t0) / 1000);
}

/** driveBatched: n heartbeats in batches of `batch`, each store's own client with 2 batches in flight, random Regions it leads. */
async function driveBatched(clients: PlacementClient[], byStore: RegionHeartbeat[][], n: number, batch: number, seed: number): Promise<number> {
  const rand = rng(seed);
  let issued = 0;
  const t0 = performance.now();
  const worker = async (s: number): Promise<void> => {
    const mine = byStore[s]!;
    while (issued < n) {
      const k = Math.min(batch, n - issued);
      issued += k;
      const hbs: RegionHeartbeat[] = [];
      for (let i = 0; i < k; i++) {
        const hb = mine[Math.floor(rand() * mine.length)]!;
        hb.approximateKeys++;
        hbs.push(hb);
      }
      const results = await clients[s]!.regionHeartbeats(hbs);
      if (results.some((r) => 'error' in r)) throw new Error(`a heartbeat was refused: ${JSON.stringify(results.find((r) => 'error' in r))}`);
    }
  };
  await Promise.all(clients.flatMap((_, s) => [worker(s), worker(s)]));
  return n / ((performance.now() - t0) / 1000);
}

export interface HeartbeatRun {
  members: number;
  regions: number;
  heartbeats: number;
  batch: number;
  /** ops_per_s: the median of the runs. */
  ops_per_s: number;
  runs_ops_per_s: number[];
  /** leader_cpu_us_per_op: the placement leader process's CPU per heartbeat (median), what the wall rate is bounded by on a loaded machine. */
  leader_cpu_us_per_op: number;
  /** leader_ops_per_cpu_s: heartbeats per CPU-second of the leader process (median). */
  leader_ops_per_cpu_s: number;
  setup_ms: number;
}

/**
 * runHeartbeats measures heartbeats/s (wall) against `members` placement
 * processes holding `regions` Regions: for each batch size in `batches`
 * (1 = single requests), `reps` runs, alternating between the sizes.
 */
export async function runHeartbeats(members: number, regions: number, heartbeats: number, batches: number[] = [1, 256], reps = 3): Promise<HeartbeatRun[]> {
  const group = await PlacementGroup.start(members);
  const opts = { addresses: group.addresses, requestTimeoutMs: 60_000, maxPendingRequests: 4096 };
  const pc = new PlacementClient(opts);
  const clients = Array.from({ length: 5 }, () => new PlacementClient(opts));
  try {
    const t0 = Date.now();
    const hbs = await setUp(pc, regions);
    // Every Region's first report sets its leader (a write through the Raft log): once, in order, before any timing.
    for (let i = 0; i < hbs.length; i += 1024) await pc.regionHeartbeats(hbs.slice(i, i + 1024));
    const setupMs = Date.now() - t0;
    // Region i is led by its first peer, on store i mod 5 (setUp).
    const byStore = clients.map((_, s) => hbs.filter((_, i) => i % 5 === s));
    const runs = new Map<number, number[]>(batches.map((b) => [b, []]));
    const cpus = new Map<number, number[]>(batches.map((b) => [b, []]));
    for (let rep = 0; rep < reps; rep++) {
      for (const b of batches) {
        const seed = 1000 * rep + b;
        const leader = (await group.leader()) ?? group.members[0]!;
        const cpu0 = cpuSeconds(leader.proc.pid!);
        const rate = b === 1 ? await driveSingle(pc, hbs, heartbeats, seed) : await driveBatched(clients, byStore, heartbeats, b, seed);
        const cpuUs = ((cpuSeconds(leader.proc.pid!) - cpu0) * 1e6) / heartbeats;
        runs.get(b)!.push(Math.round(rate));
        cpus.get(b)!.push(+cpuUs.toFixed(2));
        process.stderr.write(`    members=${members} batch=${b} run ${rep + 1}: ${Math.round(rate)}/s, leader ${cpuUs.toFixed(1)} us CPU per heartbeat (load ${loadavg()[0]!.toFixed(1)})\n`);
      }
    }
    return batches.map((b) => {
      const r = runs.get(b)!;
      const c = median(cpus.get(b)!);
      return { members, regions, heartbeats, batch: b, ops_per_s: median(r), runs_ops_per_s: r, leader_cpu_us_per_op: c, leader_ops_per_cpu_s: Math.round(1e6 / c), setup_ms: setupMs };
    });
  } finally {
    pc.close();
    for (const c of clients) c.close();
    await group.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
