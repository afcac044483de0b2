import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Region } from '@flotilla/proto';
import { PlacementCluster } from '../src/cluster';

const dirs: string[] = [];
const clusters: PlacementCluster[] = [];
afterEach(() => {
  for (const c of clusters.splice(0)) c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function newCluster(): PlacementCluster {
  const dir = mkdtempSync(join(tmpdir(), 'placement-cluster-'));
  dirs.push(dir);
  const c = new PlacementCluster({ dataDir: dir });
  clusters.push(c);
  return c;
}

const empty = new Uint8Array();

describe('PlacementCluster heartbeat bookkeeping', () => {
  it('tracks leader and Region counts per store through stats-only heartbeats, splits and reports', () => {
    const c = newCluster();
    const [s1, s2, s3, r1, p1, p2, p3] = c.allocId(7) as [number, number, number, number, number, number, number];
    const region: Region = { id: r1, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: p1, storeId: s1, role: 'voter' }] };
    c.dispatch('bootstrap', { store: { id: s1, address: 'a:1' }, region });
    c.dispatch('putStore', { store: { id: s2, address: 'b:1' } });
    c.dispatch('putStore', { store: { id: s3, address: 'c:1' } });
    const full: Region = {
      ...region,
      epoch: { version: 1, confVer: 3 },
      peers: [
        { id: p1, storeId: s1, role: 'voter' },
        { id: p2, storeId: s2, role: 'voter' },
        { id: p3, storeId: s3, role: 'voter' },
      ],
    };
    c.dispatch('regionHeartbeat', { region: full, leader: full.peers[0], approximateSizeBytes: 100, approximateKeys: 10 });
    expect([s1, s2, s3].map((s) => c.regionCountOf(s))).toEqual([1, 1, 1]);
    expect([s1, s2, s3].map((s) => c.leaderCountOf(s))).toEqual([1, 0, 0]);
    // A stats-only heartbeat with a new leader moves the leader count.
    c.dispatch('regionHeartbeat', { region: full, leader: full.peers[2], approximateSizeBytes: 200, approximateKeys: 20 });
    expect([s1, s2, s3].map((s) => c.leaderCountOf(s))).toEqual([0, 0, 1]);
    expect(c.tree.getById(r1)).toMatchObject({ approximateSizeBytes: 200, approximateKeys: 20, leader: { id: p3 } });
    // Reporting the unchanged Region (as part of a split report) keeps its leader and statistics.
    c.dispatch('reportBatchSplit', { regions: [full] });
    expect(c.tree.getById(r1)).toMatchObject({ approximateSizeBytes: 200, leader: { id: p3 } });
    // A split: the left half keeps the ID and the leader; the right half is new and leaderless until it heartbeats.
    const [split] = c.askBatchSplit(full, 1);
    const left: Region = { ...full, endKey: Buffer.from('m'), epoch: { version: 2, confVer: 3 } };
    const right: Region = { ...full, id: split!.newRegionId, startKey: Buffer.from('m'), endKey: empty, epoch: { version: 2, confVer: 3 }, peers: full.peers.map((p, i) => ({ ...p, id: split!.newPeerIds[i]! })) };
    expect(c.dispatch('reportBatchSplit', { regions: [left, right] })).toEqual({ accepted: 2 });
    expect([s1, s2, s3].map((s) => c.regionCountOf(s))).toEqual([2, 2, 2]);
    expect([s1, s2, s3].map((s) => c.leaderCountOf(s))).toEqual([0, 0, 1]);
    expect((c.dispatch('getRegion', { key: Buffer.from('z') }) as { region: { region: Region; leader?: unknown } }).region).toEqual({ region: right });
    // The old, unsplit Region's heartbeat is now stale and changes nothing.
    expect(c.dispatch('regionHeartbeat', { region: full, leader: full.peers[0], approximateSizeBytes: 1, approximateKeys: 1 })).toEqual({ stale: true });
    expect([s1, s2, s3].map((s) => c.leaderCountOf(s))).toEqual([0, 0, 1]);
    expect(c.dispatch('scanRegions', { startKey: empty, endKey: empty, limit: 10 })).toMatchObject({ regions: [{ region: { id: r1 } }, { region: { id: split!.newRegionId } }] });
    // askBatchSplit for a stale Region is a typed error.
    expect(() => c.dispatch('askBatchSplit', { region: full, count: 1 })).toThrow(/StaleRegion|older/);
  });
});

describe('PlacementCluster indexes under arbitrary reports', () => {
  it('keeps the per-store Region and leader indexes equal to the tree', () => {
    const bounds = [0, 10, 20, 30, 40];
    const keyAt = (i: number): Uint8Array => (i === 0 || i === bounds.length ? empty : Buffer.from([bounds[i]!]));
    const reportArb = fc.record({
      id: fc.integer({ min: 100, max: 105 }),
      lo: fc.nat({ max: bounds.length - 1 }),
      len: fc.integer({ min: 1, max: bounds.length }),
      version: fc.integer({ min: 1, max: 4 }),
      confVer: fc.integer({ min: 1, max: 4 }),
      stores: fc.uniqueArray(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 }),
      leader: fc.nat(),
      kind: fc.constantFrom('heartbeat', 'heartbeat', 'report'),
    });
    fc.assert(
      fc.property(fc.array(reportArb, { maxLength: 40 }), (reports) => {
        const c = newCluster();
        const region: Region = { id: 1, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: 11, storeId: 1, role: 'voter' }] };
        c.dispatch('bootstrap', { store: { id: 1, address: 'a:1' }, region });
        for (const r of reports) {
          const hi = Math.min(bounds.length, r.lo + r.len);
          const reg: Region = {
            id: r.id,
            startKey: keyAt(r.lo),
            endKey: keyAt(hi),
            epoch: { version: r.version, confVer: r.confVer },
            peers: r.stores.map((s) => ({ id: r.id * 10 + s, storeId: s, role: 'voter' as const })),
          };
          if (r.kind === 'report') c.dispatch('reportBatchSplit', { regions: [reg] });
          else c.dispatch('regionHeartbeat', { region: reg, leader: reg.peers[r.leader % reg.peers.length], approximateSizeBytes: 1, approximateKeys: 1 });
          c.checkInvariants();
        }
        c.close();
        clusters.splice(clusters.indexOf(c), 1);
      }),
      { numRuns: 60 }, // each run opens a fresh SQLite database
    );
  });
});
