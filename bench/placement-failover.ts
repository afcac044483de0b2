// bench/placement-failover.ts — how long placement is out after its leader dies.
//
// Case `failover`: three `flotilla placement` processes at the production
// tick settings (100 ms tick, election after 1-2 s), fsync on. Each kill
// SIGKILLs the leader, then measures the time to the first successful
// timestamp and to the first successful split (askBatchSplit +
// reportBatchSplit, placement's side of a split) through a PlacementClient
// given every member. The killed member is restarted and the group is let
// settle (a leader known to every member) before the next kill. With
// `regions` > 0 the routing table first holds that many Regions (reported
// through the group, 1024 per reportBatchSplit), so each new leader has
// them to load (issue #16).
import type { Region } from '@flotilla/proto';
import { PlacementClient } from '@flotilla/placement';
import { PlacementGroup } from './placement-members';

export interface FailoverResult {
  members: number;
  regions: number;
  kills: number;
  tso_p50_ms: number;
  tso_max_ms: number;
  split_p50_ms: number;
  split_max_ms: number;
}

const empty = new Uint8Array();

/** SplitDriver keeps splitting the right-most Region, as a store would after a split check. */
class SplitDriver {
  private region: Region;
  private key = 0;
  constructor(
    private readonly pc: PlacementClient,
    first: Region,
  ) {
    this.region = first;
  }
  async split(): Promise<void> {
    const [ids] = await this.pc.askBatchSplit(this.region, 1);
    const at = Buffer.from(`k${String(++this.key).padStart(8, '0')}`);
    const r = this.region;
    const left: Region = { ...r, endKey: at, epoch: { ...r.epoch, version: r.epoch.version + 1 } };
    const right: Region = { id: ids!.newRegionId, startKey: at, endKey: r.endKey, epoch: left.epoch, peers: r.peers.map((p, i) => ({ ...p, id: ids!.newPeerIds[i]! })) };
    await this.pc.reportBatchSplit([left, right]);
    this.region = right;
  }
}

async function timeUntil(what: () => Promise<unknown>, t0: number): Promise<number> {
  for (;;) {
    try {
      await what();
      return Date.now() - t0;
    } catch {
      // placement failing over: try again
    }
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}

/** fillTable reports `regions` Regions left of "b" (replacing the first Region there) and returns the first Region's remainder ["b", +inf). */
async function fillTable(pc: PlacementClient, first: Region, regions: number): Promise<Region> {
  const ids: number[] = [];
  while (ids.length < regions * 2) ids.push(...(await pc.allocId(Math.min(10_000, regions * 2 - ids.length))));
  const key = (i: number): Buffer => Buffer.from(`a_${String(i).padStart(8, '0')}`);
  const epoch = { version: 2, confVer: 1 };
  const all: Region[] = Array.from({ length: regions }, (_, i) => ({
    id: ids[i]!,
    startKey: i === 0 ? empty : key(i),
    endKey: i === regions - 1 ? Buffer.from('b') : key(i + 1),
    epoch,
    peers: [{ id: ids[regions + i]!, storeId: first.peers[0]!.storeId, role: 'voter' as const }],
  }));
  const rest: Region = { ...first, startKey: Buffer.from('b'), epoch };
  all.push(rest);
  for (let i = 0; i < all.length; i += 1024) await pc.reportBatchSplit(all.slice(i, i + 1024));
  return rest;
}

export async function runFailover(kills: number, log: (line: string) => void, regions = 0): Promise<FailoverResult> {
  const group = await PlacementGroup.start(3);
  const pc = new PlacementClient({ addresses: group.addresses, requestTimeoutMs: 20_000, reconnectBackoffMs: { initialMs: 20, maxMs: 500 } });
  try {
    const [storeId, regionId, peerId] = (await pc.allocId(3)) as [number, number, number];
    const first: Region = { id: regionId, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: peerId, storeId, role: 'voter' }] };
    await pc.bootstrap({ id: storeId, address: '127.0.0.1:1' }, first);
    const t = Date.now();
    const driven = regions > 0 ? await fillTable(pc, first, regions) : first;
    if (regions > 0) log(`  ${regions} Regions reported in ${Date.now() - t} ms`);
    const splits = new SplitDriver(pc, driven);
    await splits.split();
    const tso: number[] = [];
    const split: number[] = [];
    for (let k = 0; k < kills; k++) {
      const leader = await waitLeader(group);
      await pc.timestamp();
      const t0 = Date.now();
      await group.kill(leader);
      const [a, b] = await Promise.all([timeUntil(() => pc.timestamp(), t0), timeUntil(() => splits.split(), t0)]);
      tso.push(a);
      split.push(b);
      log(`  kill ${k + 1}/${kills}: first timestamp after ${a} ms, first split after ${b} ms`);
      await group.restart(leader);
    }
    return { members: 3, regions, kills, tso_p50_ms: pct(tso, 0.5), tso_max_ms: Math.max(...tso), split_p50_ms: pct(split, 0.5), split_max_ms: Math.max(...split) };
  } finally {
    pc.close();
    await group.stop();
  }
}

async function waitLeader(group: PlacementGroup): Promise<NonNullable<Awaited<ReturnType<PlacementGroup['leader']>>>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const l = await group.leader();
    if (l) return l;
    if (Date.now() > deadline) throw new Error('no placement leader within 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}
