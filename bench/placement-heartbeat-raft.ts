// bench/placement-heartbeat-raft.ts — Region heartbeats against placement processes.
//
// Case `region-heartbeat` with `members`: `regions` Regions of 3 voters on
// 5 stores are reported (reportBatchSplit, 1024 per call) to 1 or 3
// `flotilla placement` processes (fsync on), then stats-only heartbeats
// for random Regions go through one PlacementClient with 256 in flight
// (the store side: one client per store; here one for all). Every change
// a heartbeat makes to the routing table reaches the Raft log in the
// leader's 50 ms flush batches.
import type { Region } from '@flotilla/proto';
import { PlacementClient, type RegionHeartbeat } from '@flotilla/placement';
import { PlacementGroup } from './placement-members';

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

async function drive(pc: PlacementClient, hbs: RegionHeartbeat[], n: number): Promise<number> {
  let seed = 12345;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
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

/** runHeartbeats measures heartbeats/s (wall) against `members` placement processes holding `regions` Regions. */
export async function runHeartbeats(members: number, regions: number, heartbeats: number): Promise<{ members: number; regions: number; heartbeats: number; ops_per_s: number; setup_ms: number }> {
  const group = await PlacementGroup.start(members);
  const pc = new PlacementClient({ addresses: group.addresses, requestTimeoutMs: 60_000, maxPendingRequests: 4096 });
  try {
    const t0 = Date.now();
    const hbs = await setUp(pc, regions);
    const setupMs = Date.now() - t0;
    await drive(pc, hbs, Math.min(20_000, heartbeats)); // warm-up: every first heartbeat moves a leader (a write)
    const rate = await drive(pc, hbs, heartbeats);
    return { members, regions, heartbeats, ops_per_s: Math.round(rate), setup_ms: setupMs };
  } finally {
    pc.close();
    await group.stop();
  }
}
