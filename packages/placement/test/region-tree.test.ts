import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Region } from '@flotilla/proto';
import { RegionTree } from '../src/region-tree';
import type { RegionInfo } from '../src/types';

// Keys are 2-byte big-endian numbers; 0 is the empty start key, 65536 the
// empty (unbounded) end key.
const MAX = 65536;
const key = (n: number): Uint8Array => (n === 0 || n === MAX ? new Uint8Array() : Buffer.from([n >> 8, n & 0xff]));

interface TruthRegion {
  id: number;
  start: number;
  end: number;
  version: number;
  confVer: number;
}

const toRegion = (t: TruthRegion): Region => ({
  id: t.id,
  startKey: key(t.start),
  endKey: key(t.end),
  epoch: { version: t.version, confVer: t.confVer },
  peers: [{ id: t.id * 10, storeId: 1, role: 'voter' }],
});
const toInfo = (t: TruthRegion): RegionInfo => ({ region: toRegion(t), approximateSizeBytes: 0, approximateKeys: 0, downPeers: [], pendingPeers: [] });

type Op =
  | { t: 'split'; pick: number; at: number; rightDerive: boolean }
  | { t: 'merge'; pick: number; intoLeft: boolean }
  | { t: 'conf'; pick: number }
  | { t: 'deliverLatest'; pick: number }
  | { t: 'deliverStale'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('split' as const), pick: fc.nat(), at: fc.double({ min: 0.01, max: 0.99, noNaN: true }), rightDerive: fc.boolean() }),
  fc.record({ t: fc.constant('merge' as const), pick: fc.nat(), intoLeft: fc.boolean() }),
  fc.record({ t: fc.constant('conf' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('deliverLatest' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('deliverStale' as const), pick: fc.nat() }),
);

/** The model: a true partition of the key space that evolves by splits, merges and conf changes (TiKV's epoch rules). */
function runModel(ops: Op[], seedOrder: number[]): void {
  let nextId = 2;
  let truth: TruthRegion[] = [{ id: 1, start: 0, end: MAX, version: 1, confVer: 1 }];
  const history: TruthRegion[] = [truth[0]!];
  let pool: TruthRegion[] = []; // reports not yet delivered
  const tree = new RegionTree();
  tree.update(toInfo(truth[0]!));
  const highest = new Map<number, { version: number; confVer: number }>([[1, { version: 1, confVer: 1 }]]);
  const emit = (r: TruthRegion): void => {
    history.push(r);
    pool.push(r);
  };
  const deliver = (r: TruthRegion): void => {
    tree.update(toInfo(r));
    tree.checkInvariants();
    // Every Region in the tree is a real historical state, and no ID ever goes back in epoch.
    for (const info of tree.all()) {
      const e = info.region.epoch;
      expect(history.some((h) => h.id === info.region.id && h.version === e.version && h.confVer === e.confVer)).toBe(true);
      const hi = highest.get(info.region.id);
      if (hi) {
        expect(e.version).toBeGreaterThanOrEqual(hi.version);
        expect(e.confVer).toBeGreaterThanOrEqual(hi.confVer);
      }
      highest.set(info.region.id, { version: e.version, confVer: e.confVer });
    }
  };
  for (const op of ops) {
    const i = op.pick % truth.length;
    const r = truth[i]!;
    switch (op.t) {
      case 'split': {
        const at = Math.floor(r.start + (r.end - r.start) * op.at);
        if (at <= r.start || at >= r.end) break;
        const version = r.version + 1;
        const newId = nextId++;
        const left = { id: op.rightDerive ? newId : r.id, start: r.start, end: at, version, confVer: op.rightDerive ? 1 : r.confVer };
        const right = { id: op.rightDerive ? r.id : newId, start: at, end: r.end, version, confVer: op.rightDerive ? r.confVer : 1 };
        truth.splice(i, 1, left, right);
        emit(left);
        emit(right);
        break;
      }
      case 'merge': {
        if (i + 1 >= truth.length) break;
        const a = r;
        const b = truth[i + 1]!;
        const target = op.intoLeft ? a : b;
        const merged = { ...target, start: a.start, end: b.end, version: Math.max(a.version, b.version) + 1 };
        truth.splice(i, 2, merged);
        emit(merged);
        break;
      }
      case 'conf': {
        const next = { ...r, confVer: r.confVer + 1 };
        truth[i] = next;
        emit(next);
        break;
      }
      case 'deliverLatest': {
        if (pool.length === 0) break;
        const j = op.pick % pool.length;
        const [rep] = pool.splice(j, 1);
        deliver(rep!);
        break;
      }
      case 'deliverStale': {
        deliver(history[op.pick % history.length]!);
        break;
      }
    }
  }
  // Finally every current Region reports its latest state, in a random order: the tree must equal the truth, no gaps.
  pool = truth.slice();
  for (const s of seedOrder) {
    if (pool.length === 0) break;
    deliver(pool.splice(s % pool.length, 1)[0]!);
  }
  for (const r of pool) deliver(r);
  const got = tree.all().map((x) => ({ id: x.region.id, v: x.region.epoch.version, c: x.region.epoch.confVer, s: Buffer.from(x.region.startKey).toString('hex'), e: Buffer.from(x.region.endKey).toString('hex') }));
  const want = truth.map((t) => ({ id: t.id, v: t.version, c: t.confVer, s: Buffer.from(key(t.start)).toString('hex'), e: Buffer.from(key(t.end)).toString('hex') }));
  expect(got).toEqual(want);
}

describe('RegionTree', () => {
  it('routes keys by binary search and scans in key order', () => {
    const tree = new RegionTree();
    const regions: TruthRegion[] = [
      { id: 1, start: 0, end: 100, version: 2, confVer: 1 },
      { id: 2, start: 100, end: 200, version: 2, confVer: 1 },
      { id: 3, start: 200, end: MAX, version: 2, confVer: 1 },
    ];
    for (const r of regions) expect(tree.update(toInfo(r)).kind).toBe('meta');
    expect(tree.search(key(0))?.region.id).toBe(1);
    expect(tree.search(key(99))?.region.id).toBe(1);
    expect(tree.search(key(100))?.region.id).toBe(2);
    expect(tree.search(key(60000))?.region.id).toBe(3);
    expect(tree.scan(key(150), key(250), 10).map((x) => x.region.id)).toEqual([2, 3]);
    expect(tree.scan(key(0), new Uint8Array(), 2).map((x) => x.region.id)).toEqual([1, 2]);
  });

  it('ignores a report with an older version or confVer than the known Region', () => {
    const tree = new RegionTree();
    tree.update(toInfo({ id: 1, start: 0, end: MAX, version: 3, confVer: 3 }));
    expect(tree.update(toInfo({ id: 1, start: 0, end: 100, version: 2, confVer: 5 })).kind).toBe('stale');
    expect(tree.update(toInfo({ id: 1, start: 0, end: 100, version: 5, confVer: 2 })).kind).toBe('stale');
    expect(tree.getById(1)?.region.epoch).toEqual({ version: 3, confVer: 3 });
  });

  it('lets a newer Region replace the Regions it overlaps, but not a newer one', () => {
    const tree = new RegionTree();
    tree.update(toInfo({ id: 1, start: 0, end: 100, version: 2, confVer: 1 }));
    tree.update(toInfo({ id: 2, start: 100, end: MAX, version: 4, confVer: 1 }));
    // A merged Region 3 with version 3 overlaps Region 2 (version 4): stale.
    expect(tree.update(toInfo({ id: 3, start: 50, end: 150, version: 3, confVer: 1 })).kind).toBe('stale');
    const r = tree.update(toInfo({ id: 1, start: 0, end: MAX, version: 5, confVer: 1 }));
    expect(r.kind === 'meta' && r.removed.map((x) => x.region.id).sort()).toEqual([1, 2]);
    expect(tree.size).toBe(1);
  });

  it('keeps a delayed report of a Region that was replaced out of the tree stale (found by the property below)', () => {
    const tree = new RegionTree();
    tree.update(toInfo({ id: 1, start: 0, end: MAX, version: 3, confVer: 2 }));
    // Region 3 split off the right half (version 4) and reports first: Region 1 leaves the tree, leaving a gap.
    tree.update(toInfo({ id: 3, start: 655, end: MAX, version: 4, confVer: 1 }));
    expect(tree.getById(1)).toBeUndefined();
    // An older report of Region 1 must not land in the gap.
    expect(tree.update(toInfo({ id: 1, start: 0, end: 655, version: 2, confVer: 2 })).kind).toBe('stale');
    // Its current report does.
    expect(tree.update(toInfo({ id: 1, start: 0, end: 655, version: 4, confVer: 2 })).kind).toBe('meta');
    tree.checkInvariants();
    expect(tree.all().map((x) => x.region.id)).toEqual([1, 3]);
  });

  it('never holds overlaps or older epochs, and converges to the truth, under random splits, merges and stale reports', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 120 }), fc.array(fc.nat(), { maxLength: 60 }), (ops, order) => {
        runModel(ops, order);
      }),
      { numRuns: 3000 },
    );
  });
});
