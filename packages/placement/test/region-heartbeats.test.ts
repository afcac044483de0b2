import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Region } from '@flotilla/proto';
import { PlacementCluster } from '../src/cluster';
import { PLACEMENT_LIMITS, PlacementClient, startPlacementServer, type PlacementServer, type RegionHeartbeat, type RegionHeartbeatResult } from '../src';

// regionHeartbeats: a store's Region heartbeats in one request.

const empty = new Uint8Array();
const dirs: string[] = [];
const clusters: PlacementCluster[] = [];
const servers: PlacementServer[] = [];
const clients: PlacementClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const c of clusters.splice(0)) c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'placement-hbs-'));
  dirs.push(d);
  return d;
}

const key = (i: number): Buffer => Buffer.from(`k${String(i).padStart(4, '0')}`);

/** regions: n Regions of 3 voters on stores s (a split key space), reported with reportBatchSplit. */
function layout(ids: number[], stores: [number, number, number], n: number): Region[] {
  return Array.from({ length: n }, (_, i) => ({
    id: ids[i * 4]!,
    startKey: i === 0 ? empty : key(i),
    endKey: i === n - 1 ? empty : key(i + 1),
    epoch: { version: 2, confVer: 1 },
    peers: stores.map((storeId, j) => ({ id: ids[i * 4 + 1 + j]!, storeId, role: 'voter' as const })),
  }));
}

function newCluster(n: number): { c: PlacementCluster; regions: Region[]; stores: [number, number, number] } {
  const c = new PlacementCluster({ dataDir: tempDir(), balanceLeader: false, balanceRegion: false, mergeChecker: false });
  clusters.push(c);
  const stores = c.allocId(3) as [number, number, number];
  const regions = layout(c.allocId(n * 4), stores, n);
  const first = regions[0]!;
  c.dispatch('bootstrap', { store: { id: stores[0], address: 's1:1' }, region: { ...first, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [first.peers[0]!] } });
  c.dispatch('putStore', { store: { id: stores[1], address: 's2:1' } });
  c.dispatch('putStore', { store: { id: stores[2], address: 's3:1' } });
  c.dispatch('reportBatchSplit', { regions });
  return { c, regions, stores };
}

const hbOf = (r: Region, leader = 0, size = 100): RegionHeartbeat => ({ region: r, leader: r.peers[leader]!, approximateSizeBytes: size, approximateKeys: Math.floor(size / 10) });

describe('regionHeartbeats on the cluster', () => {
  it('applies every heartbeat of a batch in order and answers each, a malformed one with its own error', () => {
    const { c, regions, stores } = newCluster(4);
    const bad = { ...hbOf(regions[1]!), region: { ...regions[1]!, startKey: 'not bytes' } };
    const stale = hbOf({ ...regions[2]!, epoch: { version: 1, confVer: 1 } });
    const out = c.dispatch('regionHeartbeats', { heartbeats: [hbOf(regions[0]!, 1, 500), bad, stale, hbOf(regions[3]!, 2, 700), hbOf(regions[3]!, 0, 900)] }) as { results: RegionHeartbeatResult[] };
    expect(out.results).toHaveLength(5);
    expect(out.results[0]).toEqual({ stale: false });
    expect(out.results[1]).toEqual({ error: { code: 'InvalidArgument', message: expect.stringMatching(/^regionHeartbeats params: heartbeats\.1: region\.startKey/) as unknown } });
    expect(out.results[2]).toEqual({ stale: true });
    expect(out.results[3]).toEqual({ stale: false });
    expect(out.results[4]).toEqual({ stale: false });
    // Applied as one heartbeat each would be: statistics and leaders, the later report of a Region winning.
    expect(c.tree.getById(regions[0]!.id)).toMatchObject({ approximateSizeBytes: 500, leader: { storeId: stores[1] } });
    expect(c.tree.getById(regions[3]!.id)).toMatchObject({ approximateSizeBytes: 900, leader: { storeId: stores[0] } });
    expect(c.tree.getById(regions[1]!.id)?.leader).toBeUndefined();
    expect(stores.map((s) => c.leaderCountOf(s))).toEqual([1, 1, 0]);
    // The same answers as single heartbeats give.
    expect(c.dispatch('regionHeartbeat', stale)).toEqual({ stale: true });
  });

  it('refuses a batch that is empty, too big or not a list, and any batch before bootstrap', () => {
    const { c, regions } = newCluster(1);
    const hb = hbOf(regions[0]!);
    for (const heartbeats of [[], Array.from({ length: PLACEMENT_LIMITS.maxRegionHeartbeats + 1 }, () => hb), hb]) {
      expect(() => c.dispatch('regionHeartbeats', { heartbeats })).toThrow(expect.objectContaining({ code: 'InvalidArgument', message: expect.stringMatching(/heartbeats/) as unknown }));
    }
    expect((c.dispatch('regionHeartbeats', { heartbeats: Array.from({ length: PLACEMENT_LIMITS.maxRegionHeartbeats }, () => hb) }) as { results: unknown[] }).results).toHaveLength(PLACEMENT_LIMITS.maxRegionHeartbeats);
    const fresh = new PlacementCluster({ dataDir: tempDir() });
    clusters.push(fresh);
    expect(() => fresh.dispatch('regionHeartbeats', { heartbeats: [hb] })).toThrow(expect.objectContaining({ code: 'NotBootstrapped' }));
  });

  it("hands a Region's operator step out in its result", () => {
    const { c, regions } = newCluster(2);
    // Region 0 loses a voter: the replica checker adds one back (a store for it is needed).
    const [s4] = c.allocId(1) as [number];
    c.dispatch('putStore', { store: { id: s4, address: 's4:1' } });
    const shrunk: Region = { ...regions[0]!, epoch: { version: 2, confVer: 2 }, peers: regions[0]!.peers.slice(0, 2) };
    c.dispatch('regionHeartbeats', { heartbeats: [hbOf(shrunk), hbOf(regions[1]!)] });
    expect(c.runSchedulers()).toBeGreaterThan(0);
    const out = c.dispatch('regionHeartbeats', { heartbeats: [hbOf(regions[1]!), hbOf(shrunk)] }) as { results: RegionHeartbeatResult[] };
    expect(out.results[0]).toEqual({ stale: false });
    expect(out.results[1]).toMatchObject({ stale: false, operator: { kind: 'add-replica', step: { type: 'addLearner' } } });
  });
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('regionHeartbeats over the wire', () => {
  it('a 3-member group answers a batch sent to a follower through the leader, counts every heartbeat, and shows its members on the dashboard', async () => {
    const names = ['p1', 'p2', 'p3'];
    const addresses = await Promise.all(names.map(async () => `127.0.0.1:${await freePort()}`));
    const initial = names.map((n, i) => `${n}=${addresses[i]!}`).join(',');
    const root = tempDir();
    servers.push(...(await Promise.all(names.map((n, i) => startPlacementServer({ dataDir: join(root, n), listen: addresses[i]!, name: n, initialCluster: initial, raftTiming: { tickMs: 20, electionTicks: 10, heartbeatTicks: 1 } })))));
    await expect.poll(() => servers.some((s) => s.member.isServing), { timeout: 10_000, interval: 20 }).toBe(true);
    const leader = servers.find((s) => s.member.isServing)!;
    const follower = servers.find((s) => s !== leader)!;
    const pc = new PlacementClient({ addresses: [follower.address], reconnectBackoffMs: { initialMs: 10, maxMs: 100 } });
    clients.push(pc);
    const stores = (await pc.allocId(3)) as [number, number, number];
    const regions = layout(await pc.allocId(300 * 4), stores, 300);
    await pc.bootstrap({ id: stores[0], address: 's1:1' }, { ...regions[0]!, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [regions[0]!.peers[0]!] });
    await pc.putStore({ id: stores[1], address: 's2:1' });
    await pc.putStore({ id: stores[2], address: 's3:1' });
    await pc.reportBatchSplit(regions);
    const results = await pc.regionHeartbeats(regions.map((r, i) => hbOf(r, i % 3, 1000 + i)));
    expect(results).toHaveLength(300);
    expect(results.filter((r) => !("stale" in r && !r.stale))).toEqual([]);
    expect(await pc.getRegion(key(150))).toMatchObject({ region: { id: regions[150]!.id }, leader: { storeId: stores[0] } });
    const metrics = await (await fetch(`http://${leader.address}/metrics`)).text();
    // PlacementClient sends the packed wire by default (packed-heartbeat.ts).
    expect(metrics).toMatch(/placement_requests_total\{method="regionHeartbeatsPacked"\} 1\b/);
    expect(metrics).toMatch(/placement_region_heartbeats_total 300\b/);
    // The dashboard's members panel (asked of a follower, relayed to the leader): every member, role, term, and the oracle.
    await pc.timestamp();
    const snap = (await (await fetch(`http://${follower.address}/dashboard/snapshot`)).json()) as { group: { term: number; members: { name: string; role: string; term: number; matchIndex: number | null }[]; tso: { serving: boolean; upperBoundMs: number } } };
    expect(snap.group.members.map((m) => m.name).sort()).toEqual(names);
    expect(snap.group.members.filter((m) => m.role === 'leader')).toHaveLength(1);
    expect(snap.group.members.every((m) => m.term === snap.group.term && m.term > 0 && m.matchIndex !== null)).toBe(true);
    expect(snap.group.tso.serving).toBe(true);
    expect(snap.group.tso.upperBoundMs).toBeGreaterThan(Date.now() - 60_000);
  });
});
