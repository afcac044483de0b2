import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Region } from '@flotilla/proto';
import { PlacementCluster } from '../src/cluster';

// Statistics-only rows are written by the flush at most every
// statsPersistIntervalMs / 10 (issue #16: a larger batch shares SQLite pages
// between rows); a leader change and a close are never held back, and with
// statsPersistIntervalMs 0 every flush writes them, as before.

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Setup {
  c: PlacementCluster;
  clock: { now: number };
  dir: string;
  /** beat: a heartbeat of Region 0 or 1 (left, right of "m") with a size, led by its peer `leader`. */
  beat: (which: 0 | 1, size: number, leader?: number) => void;
}

/** setUp: two Regions, both reported with leaders and flushed, at clock 1,000,000. */
function setUp(statsPersistIntervalMs: number): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'placement-stats-flush-'));
  dirs.push(dir);
  const clock = { now: 1_000_000 };
  const c = new PlacementCluster({ dataDir: dir, clock: () => clock.now, statsPersistIntervalMs });
  const [s1, s2, r1, p1, p2] = c.allocId(5) as [number, number, number, number, number];
  const peers = [{ id: p1, storeId: s1, role: 'voter' as const }, { id: p2, storeId: s2, role: 'voter' as const }];
  c.dispatch('bootstrap', { store: { id: s1, address: 'a:1' }, region: { id: r1, startKey: new Uint8Array(), endKey: new Uint8Array(), epoch: { version: 1, confVer: 1 }, peers: [peers[0]!] } });
  c.dispatch('putStore', { store: { id: s2, address: 'b:1' } });
  const full: Region = { id: r1, startKey: new Uint8Array(), endKey: new Uint8Array(), epoch: { version: 1, confVer: 2 }, peers };
  const [split] = c.askBatchSplit(full, 1);
  const regions: Region[] = [
    { ...full, endKey: Buffer.from('m'), epoch: { version: 2, confVer: 2 } },
    { ...full, id: split!.newRegionId, startKey: Buffer.from('m'), epoch: { version: 2, confVer: 2 }, peers: peers.map((p, i) => ({ ...p, id: split!.newPeerIds[i]! })) },
  ];
  c.dispatch('reportBatchSplit', { regions });
  const beat = (which: 0 | 1, size: number, leader = 0): void => void c.dispatch('regionHeartbeat', { region: regions[which], leader: regions[which]!.peers[leader], approximateSizeBytes: size, approximateKeys: 1 });
  beat(0, 1);
  beat(1, 1);
  c.flush();
  expect(c.pendingWrites).toBe(0);
  return { c, clock, beat, dir };
}

const sizesAfterRestart = (dir: string): number[] => {
  const again = new PlacementCluster({ dataDir: dir });
  try {
    return again.tree.all().map((i) => i.approximateSizeBytes);
  } finally {
    again.close();
  }
};

describe('statistics-only rows in the flush', () => {
  it('are held back until a tenth of statsPersistIntervalMs has passed since statistics were last written', () => {
    const { c, clock, beat, dir } = setUp(10_000);
    clock.now += 9_500;
    beat(1, 2, 1); // Region 1's leader moves: written by the next flush, which restarts the stats interval
    c.flush();
    expect(c.pendingWrites).toBe(0);
    clock.now += 500; // Region 0's statistics are 10 s old: its size change is to be written, but not yet
    beat(0, 3);
    c.flush();
    expect(c.pendingWrites).toBe(1);
    clock.now += 499;
    c.flush();
    expect(c.pendingWrites).toBe(1);
    clock.now += 1;
    c.flush();
    expect(c.pendingWrites).toBe(0);
    c.abandon(); // no final flush: what is on disk is what the flushes wrote
    c.storage.close();
    expect(sizesAfterRestart(dir)).toEqual([3, 2]);
  });

  it('are written by close even when held back', () => {
    const { c, clock, beat, dir } = setUp(10_000);
    clock.now += 9_500;
    beat(1, 2, 1);
    c.flush();
    clock.now += 500;
    beat(0, 4);
    c.flush();
    expect(c.pendingWrites).toBe(1);
    c.close();
    expect(sizesAfterRestart(dir)).toEqual([4, 2]);
  });

  it('are written by every flush with statsPersistIntervalMs 0', () => {
    const { c, beat } = setUp(0);
    beat(0, 5);
    c.flush();
    expect(c.pendingWrites).toBe(0);
    beat(1, 6);
    c.flush();
    expect(c.pendingWrites).toBe(0);
    c.close();
  });
});
