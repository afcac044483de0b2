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
import { PlacementClient, PlacementError, PlacementErrorCode, type RegionHeartbeat, type RegionHeartbeatResult } from '@flotilla/placement';
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

/** refusals: batches a new leader refused while loading (sent again); a run with any also had a leader change, so its CPU split is off. */
const refusals = { n: 0 };

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
      let results: RegionHeartbeatResult[];
      for (;;) {
        try {
          results = await clients[s]!.regionHeartbeats(hbs);
          break;
        } catch (err) {
          // A leader elected during the run (a loaded machine) refuses reports while it loads its routing table: send again, as a store does.
          if (!(err instanceof PlacementError && err.code === PlacementErrorCode.TooManyPending)) throw err;
          refusals.n++;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
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
  /** wire: for batches, 'packed' (regionHeartbeatsPacked) or 'maps' (regionHeartbeats, the previous wire). */
  wire?: 'packed' | 'maps';
  /** ops_per_s: the median of the runs. */
  ops_per_s: number;
  runs_ops_per_s: number[];
  /** leader_cpu_us_per_op: the placement leader process's CPU per heartbeat (median), what the wall rate is bounded by on a loaded machine. */
  leader_cpu_us_per_op: number;
  /** leader_ops_per_cpu_s: heartbeats per CPU-second of the leader process (median). */
  leader_ops_per_cpu_s: number;
  /** follower_cpu_us_per_op: a follower process's CPU per heartbeat (median of the runs; the mean over followers), 0 with one member. */
  follower_cpu_us_per_op: number;
  /** client_cpu_us_per_op: the bench process's CPU per heartbeat (the clients' encode and decode; median). */
  client_cpu_us_per_op: number;
  /** runs_load_avg_1m: the 1-minute load average after each run (the machine is shared). */
  runs_load_avg_1m: number[];
  /** runs_refused_batches: per run, batches a newly elected leader refused (sent again): a run with any had a leader change, and its leader/follower CPU split is not meaningful. */
  runs_refused_batches: number[];
  setup_ms: number;
}

/**
 * runHeartbeats measures heartbeats/s (wall) against `members` placement
 * processes holding `regions` Regions: for each batch size in `batches`
 * (1 = single requests), `reps` runs, alternating between the sizes.
 */
export async function runHeartbeats(members: number, regions: number, heartbeats: number, batchSizes: number[] = [1, 256], reps = 3, packing: boolean[] = [true]): Promise<HeartbeatRun[]> {
  const group = await PlacementGroup.start(members);
  const opts = { addresses: group.addresses, requestTimeoutMs: 60_000, maxPendingRequests: 4096 };
  const pc = new PlacementClient(opts);
  // Batched cases: each packing (packed heartbeats, or the maps of the previous wire) has its own 5 clients, runs alternate.
  const clientsOf = new Map(packing.map((packed) => [packed, Array.from({ length: 5 }, () => new PlacementClient({ ...opts, packedHeartbeats: packed }))]));
  const clients = clientsOf.get(packing[0]!)!;
  const batches = batchSizes.flatMap((b) => (b === 1 ? [caseKey(1, false)] : packing.map((p) => caseKey(b, p))));
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
    const fcpus = new Map<number, number[]>(batches.map((b) => [b, []]));
    const ccpus = new Map<number, number[]>(batches.map((b) => [b, []]));
    const loads = new Map<number, number[]>(batches.map((b) => [b, []]));
    const refused = new Map<number, number[]>(batches.map((b) => [b, []]));
    for (let rep = 0; rep < reps; rep++) {
      for (const b of batches) {
        const seed = 1000 * rep + caseOf(b).batch;
        const leader = (await group.leader()) ?? group.members[0]!;
        const followers = group.members.filter((m) => m !== leader);
        const cpu0 = cpuSeconds(leader.proc.pid!);
        const fcpu0 = followers.map((m) => cpuSeconds(m.proc.pid!));
        const ccpu0 = process.cpuUsage();
        const refused0 = refusals.n;
        const { batch, packed } = caseOf(b);
        const rate = batch === 1 ? await driveSingle(pc, hbs, heartbeats, seed) : await driveBatched(clientsOf.get(packed)!, byStore, heartbeats, batch, seed);
        const cpuUs = ((cpuSeconds(leader.proc.pid!) - cpu0) * 1e6) / heartbeats;
        // Followers: the mean of their CPU per heartbeat (what applying the leader's entries costs each); the client: this process.
        const fUs = followers.length === 0 ? 0 : (followers.reduce((sum, m, i) => sum + cpuSeconds(m.proc.pid!) - fcpu0[i]!, 0) * 1e6) / followers.length / heartbeats;
        const cc = process.cpuUsage(ccpu0);
        const cUs = (cc.user + cc.system) / heartbeats;
        runs.get(b)!.push(Math.round(rate));
        cpus.get(b)!.push(+cpuUs.toFixed(2));
        fcpus.get(b)!.push(+fUs.toFixed(2));
        ccpus.get(b)!.push(+cUs.toFixed(2));
        loads.get(b)!.push(+loadavg()[0]!.toFixed(1));
        refused.get(b)!.push(refusals.n - refused0);
        process.stderr.write(
          `    members=${members} batch=${caseOf(b).batch}${caseOf(b).batch > 1 ? (caseOf(b).packed ? ' packed' : ' maps') : ''} run ${rep + 1}: ${Math.round(rate)}/s, CPU per heartbeat: leader ${cpuUs.toFixed(1)} us, follower ${fUs.toFixed(1)} us, client ${cUs.toFixed(1)} us (load ${loadavg()[0]!.toFixed(1)})${refusals.n > refused0 ? `; ${refusals.n - refused0} batches refused by a new leader, sent again` : ''}\n`,
        );
      }
    }
    return batches.map((b) => {
      const r = runs.get(b)!;
      const c = median(cpus.get(b)!);
      return {
        members,
        regions,
        heartbeats,
        batch: caseOf(b).batch,
        ...(caseOf(b).batch > 1 ? { wire: caseOf(b).packed ? 'packed' : 'maps' } : {}),
        ops_per_s: median(r),
        runs_ops_per_s: r,
        leader_cpu_us_per_op: c,
        leader_ops_per_cpu_s: Math.round(1e6 / c),
        follower_cpu_us_per_op: median(fcpus.get(b)!),
        client_cpu_us_per_op: median(ccpus.get(b)!),
        runs_load_avg_1m: loads.get(b)!,
        runs_refused_batches: refused.get(b)!,
        setup_ms: setupMs,
      };
    });
  } finally {
    pc.close();
    for (const cs of clientsOf.values()) for (const c of cs) c.close();
    await group.stop();
  }
}

/** caseKey / caseOf: a timed case as one number (batch size, and for batches whether packed). */
const caseKey = (batch: number, packed: boolean): number => batch * 2 + (packed ? 1 : 0);
const caseOf = (k: number): { batch: number; packed: boolean } => ({ batch: Math.floor(k / 2), packed: k % 2 === 1 });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
