import { describe, expect, it } from 'vitest';
import type { Peer, StoreState } from '@flotilla/proto';
import { HotRegion } from '../src/schedule/hot-region';
import { defaultSchedulers } from '../src/schedule/defaults';
import type { ClusterView } from '../src/schedule/scheduler';
import type { RegionFlow, RegionInfo } from '../src/types';

// The hot-region scheduler's decision (src/schedule/hot-region.ts): given
// stores, Regions and the flow their leaders reported, the operator it
// proposes, or none.

interface RegionSpec {
  id: number;
  stores: number[];
  leader: number;
  writeBytes?: number;
  readBytes?: number;
}

const flow = (writeBytes = 0, readBytes = 0): RegionFlow => ({ writeBytesPerSec: writeBytes, writeKeysPerSec: writeBytes / 100, readBytesPerSec: readBytes, readKeysPerSec: readBytes / 100 });

/** fakeView is a ClusterView over a fixed list of Regions on stores 1..n (all up, none low on space). */
function fakeView(storeCount: number, specs: RegionSpec[], opts: { down?: number[]; busy?: number[] } = {}): ClusterView {
  const infos = new Map<number, RegionInfo>();
  for (const s of specs) {
    const peers: Peer[] = s.stores.map((storeId, i) => ({ id: s.id * 10 + i, storeId, role: 'voter' }));
    infos.set(s.id, {
      region: { id: s.id, startKey: new Uint8Array([s.id]), endKey: new Uint8Array([s.id + 1]), epoch: { confVer: 1, version: 1 }, peers },
      leader: peers.find((p) => p.storeId === s.leader)!,
      approximateSizeBytes: 0,
      approximateKeys: 0,
      downPeers: [],
      pendingPeers: [],
      flow: flow(s.writeBytes, s.readBytes),
    });
  }
  let nextId = 1000;
  const stores = Array.from({ length: storeCount }, (_, i) => i + 1);
  const led = (storeId: number): number[] => specs.filter((s) => s.leader === storeId).map((s) => s.id);
  return {
    nowMs: () => 0,
    maxReplicas: 3,
    maxStoreDownTimeMs: 60_000,
    storeIds: () => stores,
    storeState: (id): StoreState | undefined => (!stores.includes(id) ? undefined : opts.down?.includes(id) ? 'down' : 'up'),
    isLowSpace: () => false,
    regionCountOf: (id) => specs.filter((s) => s.stores.includes(id)).length,
    leaderCountOf: (id) => led(id).length,
    regionIdsOf: (id) => specs.filter((s) => s.stores.includes(id)).map((s) => s.id),
    leaderRegionIdsOf: led,
    region: (id) => infos.get(id),
    regionCount: () => infos.size,
    regionAt: (i) => [...infos.values()][i],
    hasOperator: (id) => opts.busy?.includes(id) ?? false,
    adjacentRegions: () => ({}),
    lastSplitMs: () => undefined,
    influence: () => new Map(),
    allocId: (n) => Array.from({ length: n }, () => nextId++),
  };
}

const MB = 1024 * 1024;

describe('HotRegion', () => {
  it('moves a hot leader from the hottest store to the coolest follower store', () => {
    const view = fakeView(3, [
      { id: 1, stores: [1, 2, 3], leader: 1, writeBytes: 4 * MB },
      { id: 2, stores: [1, 2, 3], leader: 1, writeBytes: 3 * MB },
      { id: 3, stores: [1, 2, 3], leader: 2, writeBytes: 1 * MB },
    ]);
    const ops = new HotRegion().schedule(view, 1);
    expect(ops).toHaveLength(1);
    // Store 1 carries 7 of 8 MB/s; moving its hottest (4) to store 3 (0) leaves 3 / 1 / 4: the max drops from 7 to 4.
    expect(ops[0]!.kind).toBe('transfer-leader');
    expect(ops[0]!.regionId).toBe(1);
    expect(ops[0]!.steps).toEqual([{ type: 'transferLeader', fromStoreId: 1, toStoreId: 3, peer: { id: 12, storeId: 3, role: 'voter' } }]);
  });

  it('does nothing for one hot Region: moving it only moves the hot spot (load split is what helps)', () => {
    const view = fakeView(3, [
      { id: 1, stores: [1, 2, 3], leader: 1, writeBytes: 50 * MB },
      { id: 2, stores: [1, 2, 3], leader: 2, writeBytes: 0 },
    ]);
    expect(new HotRegion().schedule(view, 1)).toEqual([]);
  });

  it('stays put within the tolerance of the mean (no flapping on noise)', () => {
    const view = fakeView(3, [
      { id: 1, stores: [1, 2, 3], leader: 1, writeBytes: 1.1 * MB },
      { id: 2, stores: [1, 2, 3], leader: 2, writeBytes: 1 * MB },
      { id: 3, stores: [1, 2, 3], leader: 3, writeBytes: 0.9 * MB },
    ]);
    expect(new HotRegion().schedule(view, 1)).toEqual([]);
    // With no tolerance at all the same flows would not move either: 0.9 + 1.1 is not below 1.1.
    expect(new HotRegion({ tolerance: 0 }).schedule(view, 1)).toEqual([]);
  });

  it('does not move the leader back after a move (same flows, the other way round)', () => {
    const before = fakeView(2, [
      { id: 1, stores: [1, 2], leader: 1, writeBytes: 2 * MB },
      { id: 2, stores: [1, 2], leader: 1, writeBytes: 2 * MB },
    ]);
    const s = new HotRegion();
    const ops = s.schedule(before, 1);
    expect(ops.map((o) => [o.regionId, o.kind])).toEqual([[1, 'transfer-leader']]);
    const after = fakeView(2, [
      { id: 1, stores: [1, 2], leader: 2, writeBytes: 2 * MB },
      { id: 2, stores: [1, 2], leader: 1, writeBytes: 2 * MB },
    ]);
    for (let i = 0; i < 4; i++) expect(s.schedule(after, 1)).toEqual([]);
  });

  it('moves a peer when no follower store is cooler, onto the coolest store without one', () => {
    const view = fakeView(4, [
      { id: 1, stores: [1, 2, 3], leader: 1, writeBytes: 3 * MB },
      { id: 2, stores: [1, 2, 3], leader: 1, writeBytes: 3 * MB },
      { id: 3, stores: [1, 2, 3], leader: 2, writeBytes: 5 * MB },
      { id: 4, stores: [1, 2, 3], leader: 3, writeBytes: 5 * MB },
    ]);
    const ops = new HotRegion().schedule(view, 1);
    expect(ops).toHaveLength(1);
    expect(ops[0]!.kind).toBe('move-region');
    expect(ops[0]!.steps.map((st) => st.type)).toEqual(['addLearner', 'promoteLearner', 'transferLeader', 'removePeer']);
    const add = ops[0]!.steps[0]!;
    expect(add.type === 'addLearner' && add.peer.storeId).toBe(4);
  });

  it('balances reads as well, taking turns with writes', () => {
    const view = fakeView(3, [
      { id: 1, stores: [1, 2, 3], leader: 2, readBytes: 4 * MB },
      { id: 2, stores: [1, 2, 3], leader: 2, readBytes: 4 * MB },
    ]);
    const ops = new HotRegion().schedule(view, 1);
    expect(ops).toHaveLength(1);
    expect(ops[0]!.description).toContain('(read)');
    expect(ops[0]!.steps[0]).toMatchObject({ type: 'transferLeader', fromStoreId: 2, toStoreId: 1 });
  });

  it('skips cold Regions, Regions with an operator, and down targets', () => {
    const view = fakeView(
      3,
      [
        { id: 1, stores: [1, 2, 3], leader: 1, writeBytes: 4 * MB },
        { id: 2, stores: [1, 2, 3], leader: 1, writeBytes: 3 * MB },
        { id: 3, stores: [1, 2, 3], leader: 1, writeBytes: 100 }, // cold: below the hot thresholds
      ],
      { busy: [1], down: [3] },
    );
    const ops = new HotRegion().schedule(view, 1);
    expect(ops.map((o) => o.regionId)).toEqual([2]);
    expect(ops[0]!.steps[0]).toMatchObject({ toStoreId: 2 });
  });

  it('is off in the default set unless asked for', () => {
    expect(defaultSchedulers({}).map((s) => s.name)).not.toContain('hot-region');
    expect(defaultSchedulers({ hotRegion: true }).map((s) => s.name)).toContain('hot-region');
    expect(defaultSchedulers({ hotRegion: { limit: 2 } }).find((s) => s.name === 'hot-region')?.limit).toBe(2);
  });
});
