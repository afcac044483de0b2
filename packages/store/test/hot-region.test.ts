import { afterEach, describe, expect, it } from 'vitest';
import { utf8, type Region } from '@flotilla/proto';
import type { StoreHandle } from '../src/start';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

// Placement's hot-region scheduler against real stores (real SQLite, real
// sockets): two hot Regions led by one store; the flow in their heartbeats
// makes placement move one hot leader to another store, and only one.

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const hdr = (r: Region) => ({ regionId: r.id, regionEpoch: r.epoch });

describe('hot-region scheduler', () => {
  it('moves one of two hot leaders off the store that leads both', async () => {
    // balance-leader off: it would spread the two leaders by count alone. Load split off: it would add Regions.
    cluster = await startCluster(3, { config: { loadSplitQps: 0, loadSplitBytesPerSec: 0 } }, { balanceLeader: false, balanceRegion: false, mergeChecker: false, hotRegion: true });
    const c = cluster;
    const leaderOf = (regionId: number): { s: StoreHandle; region: Region } | undefined => {
      for (const s of c.stores) {
        const p = s?.store.peers.get(regionId);
        if (p?.isLeader && p.region.peers.filter((x) => x.role === 'voter').length === 3) return { s: s!, region: p.region };
      }
      return undefined;
    };
    const firstId = await waitFor('the first Region', () => [...c.stores[0]!.store.peers.keys()][0]);
    const first = await waitFor('the first Region led with three voters', () => leaderOf(firstId), 30_000);
    const admin = new RawStoreClient(first.s.address);
    const split = await admin.call({ header: hdr(first.region), op: 'split', splitKeys: [utf8('m')] });
    admin.close();
    expect(split.ok).toBe(true);
    const ids = split.ok ? (split.regions ?? []).map((r) => r.id) : [];
    expect(ids).toHaveLength(2);
    // Both halves start led by the same store (a split keeps the leader).
    const both = await waitFor('both Regions led with three voters', () => {
      const ls = ids.map(leaderOf);
      return ls.every((l) => l !== undefined) ? (ls as { s: StoreHandle; region: Region }[]) : undefined;
    });
    expect(both[0]!.s.store.storeId).toBe(both[1]!.s.store.storeId);
    const hotStore = both[0]!.s.store.storeId;
    const clients = new Map<string, RawStoreClient>();
    const clientFor = (s: StoreHandle): RawStoreClient => {
      let cl = clients.get(s.address);
      if (!cl) clients.set(s.address, (cl = new RawStoreClient(s.address)));
      return cl;
    };
    try {
      let n = 0;
      // Writes of 1 KiB to both Regions (keys below and above 'm') until their leaders are on two stores.
      await waitFor(
        'the hot leaders on two stores',
        async () => {
          const ls = ids.map(leaderOf);
          await Promise.all(
            ls.flatMap((l, i) =>
              l === undefined
                ? []
                : Array.from({ length: 8 }, () =>
                    clientFor(l.s).call({ header: hdr(l.region), op: 'write', writes: [{ type: 'put', key: utf8(`${i === 0 ? 'a' : 'z'}${n++ % 50}`), value: new Uint8Array(1024) }] }),
                  ),
            ),
          );
          const stores = new Set(ls.map((l) => l?.s.store.storeId));
          return ls.every((l) => l !== undefined) && stores.size === 2;
        },
        30_000,
        0,
      );
    } finally {
      for (const cl of clients.values()) cl.close();
    }
    // One leader left the hot store; the other stayed (moving it too would only move the hot spot).
    const after = ids.map((id) => leaderOf(id)!.s.store.storeId);
    expect(after.filter((id) => id === hotStore)).toHaveLength(1);
  }, 60_000);
});
