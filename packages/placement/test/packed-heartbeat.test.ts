import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { decode, encode, type Region } from '@flotilla/proto';
import { PlacementCluster } from '../src/cluster';
import { MetaBytesCache, decodeRegionMeta, encodeRegionMeta, expandResults, packHeartbeat } from '../src/packed-heartbeat';
import { PlacementClient, startPlacementServer, type PlacementServer, type RegionHeartbeat, type RegionHeartbeatResult } from '../src';

// regionHeartbeatsPacked (issue #16): stats-only heartbeats as flat arrays with the Region's meta as canonical bytes.

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
  const d = mkdtempSync(join(tmpdir(), 'placement-packed-'));
  dirs.push(d);
  return d;
}

const key = (i: number): Buffer => Buffer.from(`k${String(i).padStart(4, '0')}`);

/** newCluster: n Regions of 3 voters on 3 stores (IDs from the cluster's allocator, so two clusters built alike hold the same Regions). */
function newCluster(n: number): { c: PlacementCluster; regions: Region[]; stores: number[] } {
  const c = new PlacementCluster({ dataDir: tempDir(), balanceLeader: false, balanceRegion: false, mergeChecker: false });
  clusters.push(c);
  const stores = c.allocId(3);
  const ids = c.allocId(n * 4);
  const regions: Region[] = Array.from({ length: n }, (_, i) => ({
    id: ids[i * 4]!,
    startKey: i === 0 ? empty : key(i),
    endKey: i === n - 1 ? empty : key(i + 1),
    epoch: { version: 2, confVer: 1 },
    peers: stores.map((storeId, j) => ({ id: ids[i * 4 + 1 + j]!, storeId, role: 'voter' as const })),
  }));
  const first = regions[0]!;
  c.dispatch('bootstrap', { store: { id: stores[0], address: 's1:1' }, region: { ...first, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [first.peers[0]!] } });
  c.dispatch('putStore', { store: { id: stores[1], address: 's2:1' } });
  c.dispatch('putStore', { store: { id: stores[2], address: 's3:1' } });
  c.dispatch('reportBatchSplit', { regions });
  return { c, regions, stores };
}

const hbOf = (r: Region, leader = 0, size = 100): RegionHeartbeat => ({ region: r, leader: r.peers[leader]!, approximateSizeBytes: size, approximateKeys: Math.floor(size / 10) });

/** wire: what a frame does to a value (msgpack there and back), as the server sees it. */
const wire = (v: unknown): unknown => decode(encode(v));

describe('packed Region meta', () => {
  it('is canonical (key order does not matter), stable once returned, and reads back', () => {
    const r: Region = { id: 7, startKey: key(1), endKey: key(2), epoch: { version: 3, confVer: 2 }, peers: [{ id: 8, storeId: 1, role: 'voter' }, { id: 9, storeId: 2, role: 'learner' }] };
    const reordered = { peers: r.peers.map((p) => ({ role: p.role, storeId: p.storeId, id: p.id })), epoch: { confVer: 2, version: 3 }, endKey: Uint8Array.from(key(2)), startKey: key(1), id: 7 } as Region;
    const a = encodeRegionMeta(r);
    const copy = Uint8Array.from(a);
    for (let i = 0; i < 2000; i++) encode({ filler: i, bytes: key(i) });
    expect(Buffer.from(a).equals(Buffer.from(copy))).toBe(true);
    expect(Buffer.from(encodeRegionMeta(reordered)).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(encodeRegionMeta({ ...r, epoch: { version: 3, confVer: 3 } })).equals(Buffer.from(a))).toBe(false);
    expect(decodeRegionMeta(a)).toEqual({ ...r, startKey: Buffer.from(r.startKey), endKey: Buffer.from(r.endKey) });
    expect(decodeRegionMeta(Uint8Array.of(0x93, 0x01))).toMatch(/not msgpack/);
    expect(decodeRegionMeta(encode([1, 2, 3]))).toMatch(/is not \[id/);

    // The cache keeps the bytes on the Region object, invisible to keys, codecs and equality; a frozen Region goes to its WeakMap.
    const clean = { ...r, peers: r.peers.map((p) => ({ ...p })) };
    for (const cache of [new MetaBytesCache(), new MetaBytesCache(true)]) {
      const held: Region = { ...clean, peers: clean.peers.map((p) => ({ ...p })) };
      expect(cache.of(held)).toBe(cache.of(held));
      expect(Buffer.from(cache.of(held)).equals(Buffer.from(a))).toBe(true);
      expect(Object.keys(held)).toEqual(Object.keys(clean));
      expect(held).toEqual(clean);
      expect(Buffer.from(encode(held)).equals(Buffer.from(encode(clean)))).toBe(true);
      expect(JSON.stringify(held)).toBe(JSON.stringify(clean));
    }
    const frozen = Object.freeze({ ...clean });
    expect(Buffer.from(new MetaBytesCache().of(frozen)).equals(Buffer.from(a))).toBe(true);
  });
});

describe('regionHeartbeatsPacked on the cluster', () => {
  it('gives the results and the routing table that regionHeartbeats gives, fast and slow items alike', () => {
    const packed = newCluster(5);
    const maps = newCluster(5);
    const { regions, stores } = packed;
    const split: Region[] = [
      { ...regions[4]!, endKey: key(100), epoch: { version: 3, confVer: 1 } },
      { id: packed.c.allocId(1)[0]!, startKey: key(100), endKey: empty, epoch: { version: 3, confVer: 1 }, peers: regions[4]!.peers.map((p, j) => ({ ...p, id: 1000 + j })) },
    ];
    maps.c.allocId(1);
    const stale = hbOf({ ...regions[2]!, epoch: { version: 1, confVer: 1 } });
    const withFlow: RegionHeartbeat = { ...hbOf(regions[3]!, 2, 700), flow: { readKeysPerSec: 1, readBytesPerSec: 2.5, writeKeysPerSec: 3, writeBytesPerSec: 4 } };
    const withDown: RegionHeartbeat = { ...hbOf(regions[1]!, 1, 300), downPeers: [{ peer: regions[1]!.peers[2]!, downSeconds: 60 }] };
    const hbs = [hbOf(regions[0]!, 1, 500), withDown, stale, withFlow, hbOf(split[0]!), hbOf(split[1]!, 0, 50), hbOf(regions[0]!, 2, 600)];
    const items = hbs.map((hb) => (hb.downPeers ? hb : packHeartbeat(hb)));
    const answer = (packed.c.dispatch('regionHeartbeatsPacked', wire({ heartbeats: items })) as { results: unknown[] }).results;
    // Plain answers travel as 0 / 1.
    expect(answer).toEqual([0, 0, 1, 0, 0, 0, 0]);
    const a = expandResults(wire(answer))!;
    const b = (maps.c.dispatch('regionHeartbeats', wire({ heartbeats: hbs })) as { results: RegionHeartbeatResult[] }).results;
    expect(a).toEqual(b);
    expect(a.map((r) => ('stale' in r ? r.stale : r))).toEqual([false, false, true, false, false, false, false]);
    const view = (c: PlacementCluster) => c.tree.all().map((i) => ({ ...i, region: { ...i.region, startKey: Buffer.from(i.region.startKey), endKey: Buffer.from(i.region.endKey) } }));
    expect(view(packed.c)).toEqual(view(maps.c));
    expect(packed.c.tree.getById(regions[0]!.id)).toMatchObject({ approximateSizeBytes: 600, leader: { storeId: stores[2] } });
    expect(packed.c.tree.getById(regions[3]!.id)?.flow).toEqual(withFlow.flow);
    expect(packed.c.tree.size).toBe(6);
  });

  it('refuses a bad item with its own InvalidArgument, as regionHeartbeats does, and applies the rest', () => {
    const { c, regions } = newCluster(2);
    const good = packHeartbeat(hbOf(regions[0]!, 0, 900));
    const meta = good[1];
    const items: unknown[] = [
      [regions[0]!.id, meta, regions[0]!.peers[0]!.id, -1, 10], // negative size (known meta: the fast path must not take it)
      [regions[0]!.id, meta, 999_999, 100, 10], // a leader that is no peer of the Region
      [regions[0]!.id, meta, regions[0]!.peers[0]!.id, 100], // too few fields
      [regions[0]!.id, 'meta', regions[0]!.peers[0]!.id, 100, 10], // meta not bytes
      [regions[0]!.id, Uint8Array.of(0xc1), regions[0]!.peers[0]!.id, 100, 10], // meta not msgpack
      [regions[1]!.id, encodeRegionMeta({ ...regions[1]!, startKey: key(9), endKey: key(3) }), regions[1]!.peers[0]!.id, 100, 10], // start after end
      { ...hbOf(regions[1]!), approximateKeys: 'many' }, // an object item: the ordinary check
      good,
    ];
    const out = expandResults((c.dispatch('regionHeartbeatsPacked', wire({ heartbeats: items })) as { results: unknown[] }).results)!;
    const label = (i: number) => new RegExp(`^regionHeartbeatsPacked params: heartbeats\\.${i}`);
    for (let i = 0; i < 7; i++) expect(out[i], `item ${i}`).toEqual({ error: { code: 'InvalidArgument', message: expect.stringMatching(label(i)) as unknown } });
    expect((out[0] as { error: { message: string } }).error.message).toMatch(/approximateSizeBytes/);
    expect((out[6] as { error: { message: string } }).error.message).toMatch(/approximateKeys/);
    expect(out[7]).toEqual({ stale: false });
    expect(c.tree.getById(regions[0]!.id)?.approximateSizeBytes).toBe(900);
    expect(c.tree.getById(regions[1]!.id)?.leader).toBeUndefined();
    expect(() => c.dispatch('regionHeartbeatsPacked', { heartbeats: [] })).toThrow(expect.objectContaining({ code: 'InvalidArgument' }));
    expect(expandResults([0, 2])).toBeUndefined();
    expect(expandResults({})).toBeUndefined();
  });
});

describe('regionHeartbeatsPacked answers', () => {
  it("hand a Region's operator step out in its result, whole", () => {
    const { c, regions } = newCluster(2);
    // Region 0 loses a voter: the replica checker adds one back (a store for it is needed).
    const [s4] = c.allocId(1) as [number];
    c.dispatch('putStore', { store: { id: s4, address: 's4:1' } });
    const shrunk: Region = { ...regions[0]!, epoch: { version: 2, confVer: 2 }, peers: regions[0]!.peers.slice(0, 2) };
    c.dispatch('regionHeartbeatsPacked', wire({ heartbeats: [packHeartbeat(hbOf(shrunk)), packHeartbeat(hbOf(regions[1]!))] }));
    expect(c.runSchedulers()).toBeGreaterThan(0);
    const out = (c.dispatch('regionHeartbeatsPacked', wire({ heartbeats: [packHeartbeat(hbOf(regions[1]!)), packHeartbeat(hbOf(shrunk))] })) as { results: unknown[] }).results;
    expect(out[0]).toBe(0);
    expect(out[1]).toMatchObject({ stale: false, operator: { kind: 'add-replica', step: { type: 'addLearner' } } });
  });
});

describe('regionHeartbeats from PlacementClient', () => {
  it('sends packed heartbeats to a placement that knows them', async () => {
    const server = await startPlacementServer({ dataDir: tempDir(), listen: '127.0.0.1:0' });
    servers.push(server);
    const pc = new PlacementClient({ addresses: [server.address] });
    clients.push(pc);
    const [s1, rid, p1] = await pc.allocId(3);
    const region: Region = { id: rid!, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: p1!, storeId: s1!, role: 'voter' }] };
    await pc.bootstrap({ id: s1!, address: 's1:1' }, region);
    expect(await pc.regionHeartbeats([hbOf(region, 0, 1234)])).toEqual([{ stale: false }]);
    expect((await pc.getRegionById(rid!))).toMatchObject({ leader: { id: p1 } });
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/placement_requests_total\{method="regionHeartbeatsPacked"\} 1/);
  });

  it('falls back to regionHeartbeats once an older placement answers UnknownMethod', async () => {
    // An "older placement": answers regionHeartbeatsPacked with UnknownMethod and regionHeartbeats with one result per heartbeat.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/ws' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const seen: string[] = [];
    wss.on('connection', (ws) =>
      ws.on('message', (data) => {
        const req = decode(data as Buffer) as { id: number; method: string; params: { heartbeats: unknown[] } };
        seen.push(req.method);
        if (req.method === 'regionHeartbeats') ws.send(encode({ id: req.id, ok: true, result: { results: req.params.heartbeats.map(() => ({ stale: false })) } }));
        else ws.send(encode({ id: req.id, ok: false, error: { code: 'UnknownMethod', message: `unknown method "${req.method}"` } }));
      }),
    );
    try {
      const pc = new PlacementClient({ addresses: [`127.0.0.1:${(wss.address() as AddressInfo).port}`] });
      clients.push(pc);
      const region: Region = { id: 5, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: 6, storeId: 1, role: 'voter' }] };
      expect(await pc.regionHeartbeats([hbOf(region)])).toEqual([{ stale: false }]);
      expect(await pc.regionHeartbeats([hbOf(region), hbOf(region)])).toHaveLength(2);
      expect(seen).toEqual(['regionHeartbeatsPacked', 'regionHeartbeats', 'regionHeartbeats']);
    } finally {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});
