import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Region } from '@flotilla/proto';
import { HEATMAP_KEY_BYTES, HeatmapRecorder, mergeRows, type HeatmapColumn, type HeatmapOptions } from '../src/dashboard/heatmap';
import { heatmapView, parseHeatmapMetric } from '../src/dashboard/heatmap-view';
import { DASHBOARD_PAGE } from '../src/dashboard/page';
import { PlacementCluster } from '../src/cluster';
import { RegionTree } from '../src/region-tree';
import { PlacementClient, startPlacementServer } from '../src';
import type { RegionFlow, RegionInfo } from '../src/types';

// The key visualizer's recorder (src/dashboard/heatmap.ts) driven by a
// virtual clock over a real RegionTree: its bounds (columns, rows, the open
// interval's accumulation), how Regions are merged into rows, and columns
// recorded across a split drawn on one axis; then the route on a server.
const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const region = (id: number, start: string, end: string, version = 1): Region => ({
  id,
  startKey: enc(start),
  endKey: enc(end),
  epoch: { version, confVer: 1 },
  peers: [{ id: id * 10, storeId: 1, role: 'voter' }],
});
const info = (r: Region, flow?: Partial<RegionFlow>): RegionInfo => ({
  region: r,
  leader: r.peers[0]!,
  approximateSizeBytes: 0,
  approximateKeys: 0,
  downPeers: [],
  pendingPeers: [],
  ...(flow ? { flow: { readKeysPerSec: 0, readBytesPerSec: 0, writeKeysPerSec: 0, writeBytesPerSec: 0, ...flow } } : {}),
});
const writes = (bytesPerSec: number): Partial<RegionFlow> => ({ writeBytesPerSec: bytesPerSec, writeKeysPerSec: bytesPerSec / 100 });
/** keyOf i: the i-th of many ordered keys. */
const keyOf = (i: number): string => `k${String(i).padStart(6, '0')}`;

function sizedFixture(n: number, opts: HeatmapOptions = {}, settleInBeat = true) {
  const tree = new RegionTree();
  for (let i = 0; i < n; i++) tree.update(info(region(i + 1, i === 0 ? '' : keyOf(i), i === n - 1 ? '' : keyOf(i + 1))));
  let now = 1_000_000;
  // builds counts the columns laid onto the Regions (each reads the tree's size once).
  const counted = { builds: 0 };
  const regions = {
    get size() {
      counted.builds++;
      return tree.size;
    },
    at: (i: number) => tree.at(i),
    getById: (id: number) => tree.getById(id),
    overlaps: (a: Uint8Array, b: Uint8Array) => tree.overlaps(a, b),
    scan: (a: Uint8Array, b: Uint8Array, limit: number) => tree.scan(a, b, limit),
  };
  const rec = new HeatmapRecorder(regions, () => now, { intervalMs: 1_000, ...opts });
  const last = new Map<number, number>();
  /** beat reports Region id's heartbeat now, as PlacementCluster.regionHeartbeat does (the tree updated first). */
  const beat = (r: Region, flow?: Partial<RegionFlow>): void => {
    const i = info(r, flow);
    const res = tree.update(i);
    const held = res.kind === 'stats' ? Object.assign(res.current, { flow: i.flow }) : i;
    rec.recordFlow(held, last.get(r.id), now);
    last.set(r.id, now);
    // As the event loop would right after this heartbeat (before the next one changes the tree), unless the test turns it itself.
    if (settleInBeat) rec.finishRecording();
  };
  /** columns: the recorded columns once what is due is recorded (in one go: the clock is virtual, these tests do not turn the event loop). */
  const columns = (): readonly HeatmapColumn[] => {
    rec.advance(now);
    rec.finishRecording();
    return rec.columns();
  };
  return { tree, rec, beat, counted, columns, at: (ms: number) => (now = ms), get now() { return now; } };
}

const totalOf = (c: HeatmapColumn, m = 0): number => {
  let t = 0;
  for (let i = 0; i < c.starts.length; i++) t += c.values[i * 4 + m]!;
  return t;
};

// The recorder's behaviour is the same whether a column is recorded in slices (the default) or in one pass.
describe.each([
  ['in slices', true],
  ['in one pass', false],
])('HeatmapRecorder, recording %s', (_, recordInSlices) => {
  const fixture = (n: number, opts: HeatmapOptions = {}) => sizedFixture(n, { recordInSlices, ...opts });

  it('keeps at most maxColumns columns of at most maxRows rows, and two intervals of accumulation', () => {
    const f = fixture(500, { maxColumns: 12, maxRows: 32 });
    const regions = Array.from({ length: 500 }, (_, i) => f.tree.at(i)!.region);
    for (let t = 0; t < 40; t++) {
      f.at(f.now + 1_000);
      for (let i = t % 7; i < 500; i += 7) f.beat(regions[i]!, writes(1_000 + i));
      // Each interval 72 Regions report: the open and the pending interval hold no more than those.
      f.rec.finishRecording();
      expect(f.rec.pendingRegions).toBeLessThanOrEqual(2 * Math.ceil(500 / 7));
    }
    const cols = f.columns();
    expect(cols).toHaveLength(12);
    for (const c of cols) {
      expect(c.starts.length).toBeLessThanOrEqual(32);
      expect(c.starts.length).toBeGreaterThan(8);
      expect(c.values).toHaveLength(c.starts.length * 4);
      // The rows still tile the whole key space in order.
      expect(c.starts[0]).toBe('');
      expect(c.ends.at(-1)).toBe('');
      for (let i = 1; i < c.starts.length; i++) expect(c.starts[i]).toBe(c.ends[i - 1]);
    }
    // The columns follow each other with no gap, the newest ending at or before now.
    for (let i = 1; i < cols.length; i++) expect(cols[i]!.startMs).toBe(cols[i - 1]!.endMs);
    expect(cols.at(-1)!.endMs).toBeLessThanOrEqual(f.now);
    // A long silence (a day of 1 s intervals) adds only maxColumns empty columns, in one step (not one per interval).
    f.at(f.now + 86_400_000);
    const builds = f.counted.builds;
    const after = f.columns();
    expect(f.counted.builds - builds).toBeLessThanOrEqual(3);
    expect(after).toHaveLength(12);
    expect(after.every((c) => totalOf(c) === 0)).toBe(true);
    expect(f.rec.pendingRegions).toBe(0);
  });

  it('turns rates into amounts over the time since the Region last reported, placed in the intervals that time fell in', () => {
    const f = fixture(2, { intervalMs: 10_000 });
    const [a, b] = [f.tree.at(0)!.region, f.tree.at(1)!.region];
    const t0 = f.now;
    // A Region's first report since the leader started covers at most the time since it started.
    f.at(t0 + 4_000);
    f.beat(a, { writeBytesPerSec: 100, readKeysPerSec: 5 });
    f.at(t0 + 6_000);
    f.beat(a, { writeBytesPerSec: 50 });
    f.beat(b, { readBytesPerSec: 10 });
    // 6 s after a's last report, 2 s of them in this interval: the other 4 s go back to the first interval.
    f.at(t0 + 12_000);
    f.beat(a, { writeBytesPerSec: 10 });
    // An interval is recorded once the one after it has ended too.
    expect(f.columns()).toHaveLength(0);
    f.at(t0 + 20_000);
    const [c0] = f.columns();
    expect(f.columns()).toHaveLength(1);
    // a: 100 B/s over 4 s + 50 B/s over 2 s + 10 B/s over the 4 s of its third report that fell here; 5 keys/s over 4 s. b: 10 B/s over its first 6 s.
    expect(Array.from(c0!.values)).toEqual([400 + 100 + 40, 0, 0, 20, 0, 60, 0, 0]);
    f.at(t0 + 30_000);
    expect(Array.from(f.columns()[1]!.values)).toEqual([20, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('merges adjacent Regions by key order, a hot Region keeping its own row', () => {
    const f = fixture(2_000, { maxRows: 64 });
    const hot = f.tree.at(1_234)!.region;
    f.at(f.now + 500);
    for (let i = 0; i < 2_000; i++) f.beat(f.tree.at(i)!.region, writes(i === 1_234 ? 1_000_000 : 10));
    f.at(f.now + 1_500);
    const [c] = f.columns();
    expect(c!.starts.length).toBeLessThanOrEqual(64);
    expect(c!.starts.length).toBeGreaterThan(16);
    const row = c!.starts.indexOf(keyOf(1_234));
    expect(row).toBeGreaterThan(0);
    expect(c!.ends[row]).toBe(keyOf(1_235));
    expect(c!.values[row * 4]).toBeCloseTo(1_000_000 * 0.5);
    // Nothing is lost by merging: the column holds all that was written.
    expect(totalOf(c!)).toBeCloseTo((1_000_000 + 1_999 * 10) * 0.5);
    expect(hot.startKey).toEqual(enc(keyOf(1_234)));
  });

  it('merges evenly when there is no traffic, and folds Regions that are empty once their keys are cut', () => {
    const starts = Array.from({ length: 1_000 }, (_, i) => (i === 0 ? '' : keyOf(i)));
    const ends = [...starts.slice(1), ''];
    const merge = (s: string[], e: string[], values: Float64Array, maxRows: number) => mergeRows(s.length, (i) => enc(s[i]!), (i) => enc(e[i]!), values, maxRows);
    const even = merge(starts, ends, new Float64Array(4_000), 10);
    expect(even.starts.length).toBeLessThanOrEqual(10);
    expect(even.starts.length).toBeGreaterThanOrEqual(5);
    expect(even.starts[0]).toBe('');
    expect(even.ends.at(-1)).toBe('');
    // Regions whose keys differ only after the first HEATMAP_KEY_BYTES bytes: the empty ranges join the row before them.
    const p = 'p'.repeat(HEATMAP_KEY_BYTES);
    const values = new Float64Array([1, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0]);
    const cut = merge(['', p + 'a', p + 'b', p + 'c'], [p + 'a', p + 'b', p + 'c', ''], values, 256);
    expect(cut.starts).toEqual(['', p]);
    expect(cut.ends).toEqual([p, '']);
    expect(Array.from(cut.values)).toEqual([7, 0, 0, 0, 8, 0, 0, 0]);
  });

  it('draws columns from before and after a split on one axis, traffic reported before it spread over both halves', () => {
    const f = fixture(2);
    const t0 = f.now;
    const left = f.tree.at(0)!.region;
    const right = f.tree.at(1)!.region; // Region 2, [k000001, +inf)
    f.at(t0 + 500);
    f.beat(left, writes(20));
    f.beat(right, writes(400));
    f.at(t0 + 1_500);
    f.beat(right, writes(400)); // 1 s: half in [1 s, 2 s), half back in [0, 1 s)
    f.at(t0 + 2_500); // records [0, 1 s): two rows
    f.beat(right, writes(600));
    // The split: Region 2 keeps [k000001, t), Region 3 takes [t, +inf); its first report covers one interval.
    const r2 = region(2, keyOf(1), 't', 2);
    const r3 = region(3, 't', '', 2);
    f.beat(r3, writes(200));
    f.beat(r2);
    f.at(t0 + 3_500); // records [1 s, 2 s) on the Regions after the split: three rows
    f.beat(r3, writes(300));
    f.at(t0 + 5_500); // records [2 s, 3 s) and [3 s, 4 s)
    const cols = f.columns();
    expect(cols.map((c) => c.starts)).toEqual([['', keyOf(1)], ['', keyOf(1), 't'], ['', keyOf(1), 't'], ['', keyOf(1), 't']]);
    const bytes = (c: HeatmapColumn): number[] => [...c.values].filter((_, i) => i % 4 === 0);
    // [1 s, 2 s): Region 2's 200 + 300 B for [k000001, +inf), from before the split, spread over the two Regions now holding it;
    // Region 3's own 100 B on top.
    expect(bytes(cols[1]!)).toEqual([0, 250, 350]);
    expect(bytes(cols[2]!)).toEqual([0, 150, 400]);
    expect(bytes(cols[3]!)).toEqual([0, 0, 150]);
    const view = heatmapView(cols, 'write_bytes', { intervalMs: 1_000, maxColumns: 360, maxRows: 256, sinceMs: 0 });
    expect(view.keys).toEqual(['', keyOf(1), 't', '']);
    // Before the split the right-hand row spans both axis intervals the split made; after it, one each.
    expect(view.columns[0]!.rows).toEqual([0, 1, 10, 1, 3, 400]);
    expect(view.columns[3]!.rows).toEqual([0, 1, 0, 1, 2, 0, 2, 3, 150]);
    expect(view.maxValue).toBe(400);
    expect(heatmapView(cols, 'write_keys', { intervalMs: 1_000, maxColumns: 360, maxRows: 256, sinceMs: 0 }).columns[0]!.rows).toEqual([0, 1, 0.1, 1, 3, 4]);
  });

  it('refuses a bad metric or size with the choices', () => {
    expect(parseHeatmapMetric(null)).toBe('write_bytes');
    expect(parseHeatmapMetric('readKeys')).toBe('read_keys');
    expect(() => parseHeatmapMetric('toString')).toThrow(/is not one of write_bytes, read_bytes, write_keys, read_keys/);
    expect(() => fixture(1, { maxRows: 1 })).toThrow(/heatmap.maxRows/);
    expect(() => fixture(1, { intervalMs: 0 })).toThrow(/heatmap.intervalMs/);
    // PlacementCluster checks the sizes before it opens (and locks) its database.
    const dir = mkdtempSync(join(tmpdir(), 'placement-heatmap-'));
    try {
      expect(() => new PlacementCluster({ dataDir: dir, heatmap: { maxColumns: 1.5 } })).toThrow('heatmap.maxColumns: 1.5 is not an integer >= 1');
      expect(existsSync(join(dir, 'placement.db'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('HeatmapRecorder in slices', () => {
  /** tiles: the column's rows cut the whole key space in order, each starting where the one before ended. */
  const tiles = (c: HeatmapColumn): void => {
    expect(c.starts[0]).toBe('');
    expect(c.ends.at(-1)).toBe('');
    for (let i = 1; i < c.starts.length; i++) expect(c.starts[i]).toBe(c.ends[i - 1]);
  };

  it('gives the event loop back every sliceRegions units of work, answering with the finished columns meanwhile, and draws what one pass draws', async () => {
    const n = 3_000;
    const sliced = sizedFixture(n, { maxRows: 64, sliceRegions: 100, sliceMs: 1_000 }, false);
    const onePass = sizedFixture(n, { maxRows: 64, recordInSlices: false });
    const t0 = sliced.now;
    for (const f of [sliced, onePass]) {
      for (let t = 1; t <= 3; t++) {
        f.at(t0 + t * 1_000 - 500);
        for (let i = 0; i < n; i++) f.beat(f.tree.at(i)!.region, writes(i % 97 === 3 ? 10_000 : 10 + (i % 13)));
      }
      f.at(t0 + 3_000);
      f.rec.advance(f.now);
    }
    // One pass recorded [t0, t0 + 1 s) inside advance; in slices it is queued and not in columns() yet.
    expect(onePass.rec.columns()).toHaveLength(2);
    expect(sliced.rec.columns()).toHaveLength(0);
    expect(sliced.rec.recording).toBe(2);
    await sliced.rec.idle();
    const cols = sliced.rec.columns();
    expect(cols).toHaveLength(2);
    // A column's walk, spread and merge: over 3,000 Regions, more than 30 slices each, none over 100 units.
    expect(sliced.rec.slices).toBeGreaterThan(60);
    expect(sliced.rec.maxSliceUnits).toBeLessThanOrEqual(100);
    expect(cols.map((c) => ({ ...c, values: Array.from(c.values) }))).toEqual(onePass.rec.columns().map((c) => ({ ...c, values: Array.from(c.values) })));
  });

  it('cuts the key space without gap or overlap, and loses no traffic, when Regions split and merge between two slices', async () => {
    const n = 1_000;
    let f!: ReturnType<typeof sizedFixture>;
    const finished: number[] = [];
    let changes = 0;
    let version = 2;
    let nextId = 10_000;
    // Between two slices, as heartbeats would: merge two adjacent Regions somewhere, or split one, alternately.
    const between = (): void => {
      finished.push(f.rec.columns().length);
      // The first slice ends after 37 Regions, at k000037: the first merge joins the Regions either side of it, so the walk finds a Region that starts before its cursor.
      const i = changes === 0 ? 36 : (changes * 389) % (f.tree.size - 1);
      const a = f.tree.at(i)!.region;
      const b = f.tree.at(i + 1)!.region;
      const dec = (k: Uint8Array) => Buffer.from(k).toString('latin1');
      if (changes++ % 2 === 0) {
        f.tree.update(info(region(a.id, dec(a.startKey), dec(b.endKey), version++)));
      } else {
        const mid = dec(a.startKey) + 'm';
        f.tree.update(info(region(nextId++, mid, dec(a.endKey), version++)));
        f.tree.update(info(region(a.id, dec(a.startKey), mid, version++)));
      }
    };
    f = sizedFixture(n, { maxRows: 4_096, sliceRegions: 37, sliceMs: 1_000, onSlice: between }, false);
    const t0 = f.now;
    f.at(t0 + 500);
    // Region i reports 10 B/s for its first 0.5 s: 5 B each, 5,000 B in all, in [t0, t0 + 1 s).
    for (let i = 0; i < n; i++) f.beat(f.tree.at(i)!.region, writes(10));
    f.at(t0 + 2_000);
    f.rec.advance(f.now);
    await f.rec.idle();
    const [c] = f.rec.columns();
    expect(changes).toBeGreaterThan(20);
    // While the column was being recorded, columns() answered with none (the last finished), at once.
    expect(new Set(finished)).toEqual(new Set([0]));
    tiles(c!);
    expect(totalOf(c!)).toBeCloseTo(5_000, 6);
    // That Region is drawn from the cursor on, with the traffic of Region 38 that it took over.
    const clipped = c!.starts.indexOf(keyOf(37));
    expect(c!.ends[clipped]).toBe(keyOf(38));
    expect(c!.values[clipped * 4]).toBeCloseTo(5, 9);
    expect(f.tree.getById(37)!.region.endKey).toEqual(enc(keyOf(38)));
    expect(f.rec.maxSliceUnits).toBeLessThanOrEqual(37);
    f.tree.checkInvariants();
  });
});

describe('GET /dashboard/heatmap', () => {
  it('is drawn by a page whose script parses (the browser test needs chromium; this does not)', () => {
    const script = /<script>([\s\S]*)<\/script>/.exec(DASHBOARD_PAGE)?.[1];
    expect(script).toContain('function drawHeatmap()');
    expect(() => new Function(script!)).not.toThrow();
    expect(DASHBOARD_PAGE).toContain('<canvas id="heatmap"');
  });

  it('serves the leader columns of a Region with traffic, and refuses a bad metric', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placement-heatmap-'));
    const server = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0', heatmap: { intervalMs: 100 } });
    const client = new PlacementClient({ addresses: [server.address] });
    try {
      const [s1, r1, p1] = (await client.allocId(3)) as [number, number, number];
      const r: Region = { id: r1, startKey: new Uint8Array(), endKey: new Uint8Array(), epoch: { version: 1, confVer: 1 }, peers: [{ id: p1, storeId: s1, role: 'voter' }] };
      await client.bootstrap({ id: s1, address: 'a:1' }, r);
      const get = async (q: string) => {
        const res = await fetch(`${server.httpUrl}/dashboard/heatmap${q}`);
        return { status: res.status, body: (await res.json()) as any };
      };
      await expect
        .poll(
          async () => {
            await client.regionHeartbeat({ region: r, leader: r.peers[0]!, approximateSizeBytes: 0, approximateKeys: 0, flow: { readKeysPerSec: 0, readBytesPerSec: 0, writeKeysPerSec: 1, writeBytesPerSec: 1000 } });
            return (await get('?metric=write_bytes')).body.maxValue;
          },
          { timeout: 10_000, interval: 50 },
        )
        .toBeGreaterThan(0);
      const { body } = await get('');
      expect(body).toMatchObject({ metric: 'write_bytes', unit: 'bytes', intervalMs: 100, maxColumns: 360, maxRows: 256, keys: ['', ''], persisted: false, recordedBy: { name: 'p1' } });
      expect(body.columns.at(-1).rows).toHaveLength(3);
      const snap = (await (await fetch(`${server.httpUrl}/dashboard/snapshot`)).json()) as { heatmap: { columns: number } };
      expect(snap.heatmap).toMatchObject({ intervalMs: 100, maxRows: 256 });
      expect(snap.heatmap.columns).toBeGreaterThan(0);
      const bad = await get('?metric=sideways');
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toContain('write_bytes, read_bytes');
    } finally {
      client.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

});
