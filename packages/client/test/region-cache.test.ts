import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { keyInRegion, type Region } from '@flotilla/proto';
import { RegionCache } from '../src/region-cache';

const k = (s: string): Uint8Array => new TextEncoder().encode(s);
const region = (id: number, start: string, end: string, version = 1, confVer = 1): Region => ({
  id,
  startKey: k(start),
  endKey: k(end),
  epoch: { version, confVer },
  peers: [
    { id: id * 10 + 1, storeId: 1, role: 'voter' },
    { id: id * 10 + 2, storeId: 2, role: 'voter' },
  ],
});

describe('RegionCache', () => {
  it('locates keys by binary search, with empty start and end keys as the open ends', () => {
    const c = new RegionCache();
    c.insert(region(1, '', 'g'));
    c.insert(region(2, 'g', 'p'));
    c.insert(region(3, 'p', ''));
    expect(c.locate(k('a'))?.region.id).toBe(1);
    expect(c.locate(k('g'))?.region.id).toBe(2);
    expect(c.locate(k('ozzz'))?.region.id).toBe(2);
    expect(c.locate(k('p'))?.region.id).toBe(3);
    expect(c.locate(k('\xff\xff'))?.region.id).toBe(3);
  });

  it('misses keys in gaps between cached Regions', () => {
    const c = new RegionCache();
    c.insert(region(1, 'a', 'c'));
    c.insert(region(3, 'x', 'z'));
    expect(c.locate(k('d'))).toBeUndefined();
    expect(c.locate(k('0'))).toBeUndefined();
    expect(c.locate(k('z'))).toBeUndefined();
  });

  it('evicts every overlapping entry when a newer Region is inserted', () => {
    const c = new RegionCache();
    c.insert(region(1, '', 'g', 1));
    c.insert(region(2, 'g', 'p', 1));
    c.insert(region(3, 'p', '', 1));
    // A merge of 1..3 into one Region covering everything.
    expect(c.insert(region(1, '', '', 3))).toBe(true);
    expect(c.size).toBe(1);
    expect(c.getById(2)).toBeUndefined();
    expect(c.locate(k('z'))?.region.id).toBe(1);
  });

  it('refuses a stale Region that overlaps a newer cached one (placement lagging behind a split)', () => {
    const c = new RegionCache();
    c.insert(region(1, '', 'm', 2));
    c.insert(region(5, 'm', '', 2));
    expect(c.insert(region(1, '', '', 1))).toBe(false);
    expect(c.size).toBe(2);
    expect(c.locate(k('z'))?.region.id).toBe(5);
  });

  it('keeps a known leader across an epoch bump when the peer is still a member, drops it otherwise', () => {
    const c = new RegionCache();
    c.insert(region(1, '', ''));
    expect(c.setLeader(1, { id: 12, storeId: 2, role: 'voter' })).toBe(true);
    c.insert(region(1, '', '', 1, 2));
    expect(c.getById(1)?.leader?.id).toBe(12);
    const moved: Region = { ...region(1, '', '', 1, 3), peers: [{ id: 13, storeId: 3, role: 'voter' }] };
    c.insert(moved);
    expect(c.getById(1)?.leader).toBeUndefined();
    expect(c.setLeader(1, { id: 99, storeId: 9, role: 'voter' })).toBe(false);
  });

  it('forgets leaders on an unreachable store and Regions by id', () => {
    const c = new RegionCache();
    c.insert(region(1, '', 'm'), { id: 11, storeId: 1, role: 'voter' });
    c.insert(region(2, 'm', ''), { id: 22, storeId: 2, role: 'voter' });
    c.invalidateStore(1);
    expect(c.getById(1)?.leader).toBeUndefined();
    expect(c.getById(2)?.leader?.id).toBe(22);
    c.invalidate(2);
    expect(c.locate(k('x'))).toBeUndefined();
    expect(c.size).toBe(1);
  });

  it('agrees with a naive model on random insert sequences', () => {
    // Model: a list of non-overlapping Regions where a later insert replaces whatever it overlaps unless something overlapping is newer.
    const boundaries = ['', 'b', 'd', 'f', 'h', 'k', 'm', 'p', 's', 'v'];
    const arb = fc.array(
      fc.record({ a: fc.integer({ min: 0, max: 9 }), len: fc.integer({ min: 1, max: 10 }), id: fc.integer({ min: 1, max: 6 }), version: fc.integer({ min: 1, max: 5 }) }),
      { maxLength: 40 },
    );
    fc.assert(
      fc.property(arb, (ops) => {
        const c = new RegionCache();
        let model: Region[] = [];
        for (const op of ops) {
          const end = op.a + op.len >= boundaries.length ? '' : boundaries[op.a + op.len]!;
          const r = region(op.id, boundaries[op.a]!, end, op.version);
          const overl = model.filter((m) => (m.endKey.length === 0 || Buffer.compare(m.endKey, r.startKey) > 0) && (r.endKey.length === 0 || Buffer.compare(r.endKey, m.startKey) > 0));
          const stale = overl.some((m) => m.epoch.version > r.epoch.version);
          expect(c.insert(r)).toBe(!stale);
          if (!stale) model = [...model.filter((m) => !overl.includes(m) && m.id !== r.id), r];
        }
        for (const key of ['', 'a', 'b', 'c', 'e', 'g', 'l', 'n', 'q', 'u', 'w', 'zz']) {
          const want = model.find((m) => keyInRegion(k(key), m));
          expect(c.locate(k(key))?.region).toEqual(want);
        }
        expect(c.size).toBe(model.length);
      }),
      { numRuns: 300 },
    );
  });
});
