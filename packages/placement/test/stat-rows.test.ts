import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryType, type Entry } from '@flotilla/raft-core';
import type { Region } from '@flotilla/proto';
import { encodeCommand, stripInfo, type PlacementCommand } from '../src/raft/command';
import { PlacementFsm } from '../src/raft/fsm';
import { RaftPersistence, type Proposer } from '../src/raft/proposer';
import { PlacementStorage } from '../src/storage';
import type { RegionInfo } from '../src/types';

// Statistics-only Region rows reach the placement Raft log as statRows (four
// numbers a row, raft/command.ts), not as whole RegionInfos; every member
// applies them as in-place updates. Entries of the older form (stats) still apply.

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const region = (id: number): Region => ({ id, startKey: Buffer.from(`a${id}`), endKey: Buffer.from(`b${id}`), epoch: { confVer: 1, version: 1 }, peers: [1, 2, 3].map((s) => ({ id: id * 10 + s, storeId: s, role: 'voter' as const })) });
const info = (id: number, leader: number | undefined, size: number, keys: number): RegionInfo => {
  const r = region(id);
  return { region: r, ...(leader !== undefined ? { leader: r.peers[leader]! } : {}), approximateSizeBytes: size, approximateKeys: keys, downPeers: [], pendingPeers: [] };
};

describe('statistics rows in the placement log', () => {
  it('are proposed as numbers and applied in place; a Region without a row is skipped; the old form still applies', () => {
    const dir = mkdtempSync(join(tmpdir(), 'placement-statrows-'));
    dirs.push(dir);
    const proposed: PlacementCommand[] = [];
    const persistence = new RaftPersistence({ propose: (cmd: PlacementCommand) => proposed.push(cmd) } as unknown as Proposer, dir);
    // One flush: Region 1 and 2 new (meta rows), then one with statistics for 1 (leader moves), 2 (no leader) and 99 (no row).
    persistence.writeBatch(new Map([[1, info(1, 0, 10, 1)], [2, info(2, 0, 20, 2)]]), new Map(), new Map());
    persistence.writeBatch(new Map(), new Map([[1, info(1, 2, 500, 7)], [2, info(2, undefined, 600, 8)], [99, info(99, 0, 1, 1)]]), new Map());
    expect(proposed[1]).toEqual({ t: 'batch', regions: [], stats: [], statRows: [1, 13, 500, 7, 2, 0, 600, 8, 99, 991, 1, 1], operators: [] });
    // An entry written before statRows: whole RegionInfos in stats.
    proposed.push({ t: 'batch', regions: [], stats: [stripInfo(info(2, 1, 900, 9))], operators: [] });

    const { storage } = PlacementStorage.open(dir, { clusterId: 1, maxReplicas: 3 });
    try {
      const fsm = new PlacementFsm(storage);
      const entries: Entry[] = proposed.map((cmd, i) => ({ entryType: EntryType.EntryNormal, term: 1, index: i + 1, data: encodeCommand(cmd) }));
      fsm.applyEntries(entries, () => {
        throw new Error('no conf change here');
      });
      const rows = storage.loadState().regions.map((r) => ({ id: r.region.id, leader: r.leader?.id, size: r.approximateSizeBytes, keys: r.approximateKeys }));
      expect(rows.sort((a, b) => a.id - b.id)).toEqual([
        { id: 1, leader: 13, size: 500, keys: 7 },
        { id: 2, leader: 22, size: 900, keys: 9 },
      ]);
      expect(storage.loadState().regions.find((r) => r.region.id === 1)!.region).toEqual(region(1));
    } finally {
      storage.close();
    }
  });
});
