import { afterEach, describe, expect, it } from 'vitest';
import { compareKeys, fromUtf8, utf8, type ClientResponse } from '@flotilla/proto';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const SPLIT_KEYS = ['c', 'f', 'i', 'l', 'o', 'r', 'u'];
const KEYS = Array.from({ length: 26 }, (_, i) => String.fromCharCode(97 + i)).flatMap((ch) => [`${ch}0`, `${ch}1`]);

/** leaderFor finds, on any store, the leader peer whose Region holds key (no routing cache: the test reads the stores directly). */
function leaderFor(c: TestCluster, key: Uint8Array) {
  for (const s of c.stores) {
    if (!s) continue;
    for (const p of s.store.peers.values()) {
      const r = p.region;
      if (!p.isLeader || !p.initialized || p.mergeState) continue;
      if (compareKeys(key, r.startKey) >= 0 && (r.endKey.length === 0 || compareKeys(key, r.endKey) < 0)) return { handle: s, peer: p };
    }
  }
  return undefined;
}

/** request sends one request to the Region holding key, retrying (stale epoch, leader moved, merged away) until it is answered ok. */
async function request(c: TestCluster, key: string, make: (hdr: { regionId: number; regionEpoch: { version: number; confVer: number } }) => Parameters<RawStoreClient['call']>[0]) {
  let last = '';
  return waitFor(
    `request for key ${key}`,
    async () => {
      const l = leaderFor(c, utf8(key));
      if (!l) return undefined;
      const cl = new RawStoreClient(l.handle.address);
      try {
        const r: ClientResponse = await cl.call(make({ regionId: l.peer.regionId, regionEpoch: l.peer.region.epoch }));
        if (!r.ok) last = r.error.type;
        return r.ok ? r : undefined;
      } finally {
        cl.close();
      }
    },
    15_000,
  ).catch((e: Error) => {
    throw new Error(`${e.message} (last error ${last})`);
  });
}

describe('placement merge checker against real stores', () => {
  it('merges 8 pre-split Regions into one on every store while keys are written; every key reads back', async () => {
    cluster = await startCluster(
      3,
      // Region heartbeats every 300 ms (hibernated Regions every 1.8 s): operator steps ride on heartbeat responses.
      { preSplitKeys: SPLIT_KEYS.map(utf8), config: { regionHeartbeatIntervalMs: 300 } },
      { scheduleIntervalMs: 200, mergeChecker: { maxMergeRegionSizeBytes: 1024 * 1024, maxMergeRegionKeys: 10_000, splitMergeIntervalMs: 0 } },
    );
    const c = cluster;
    // The bootstrapping store pre-split before the others joined: nothing could merge yet (a merge needs three voters).
    expect(c.stores[0]!.store.peers.size).toBe(SPLIT_KEYS.length + 1);

    // Writes race the merges: each is retried until acknowledged by the Region that holds its key then.
    for (const k of KEYS) {
      await request(c, k, (header) => ({ header, op: 'write', writes: [{ type: 'put', key: utf8(k), value: utf8(`v-${k}`) }] }));
    }

    await waitFor(
      'one Region on every store',
      () => c.stores.every((s) => s!.store.peers.size === 1 && [...s!.store.peers.values()].every((p) => p.initialized && !p.mergeState)),
      30_000,
      100,
    );
    const regions = await waitFor('placement shows one Region', async () => {
      const rs = await c.pd.scanRegions(new Uint8Array(), new Uint8Array(), 100);
      return rs.length === 1 ? rs : undefined;
    });
    const only = regions[0]!.region;
    expect(only.startKey).toHaveLength(0);
    expect(only.endKey).toHaveLength(0);
    expect(only.peers.filter((p) => p.role === 'voter')).toHaveLength(3);
    // At least three rounds of merges (8 -> 4 -> 2 -> 1), each leaving a version past both sides' (split left >= 2).
    expect(only.epoch.version).toBeGreaterThanOrEqual(5);
    expect(c.stores.map((s) => [...s!.store.peers.keys()][0])).toEqual([only.id, only.id, only.id]);
    expect((await c.pd.getClusterInfo()).regionCount).toBe(1);

    for (const k of KEYS) {
      const r = await request(c, k, (header) => ({ header, op: 'read', read: { type: 'get', key: utf8(k) } }));
      expect(r.value ? fromUtf8(r.value) : r.value, k).toBe(`v-${k}`);
    }
  }, 60_000);

  it('on 4 stores, moves peers so each pair shares its stores, then merges; every key reads back', async () => {
    cluster = await startCluster(
      4,
      { preSplitKeys: SPLIT_KEYS.map(utf8), config: { regionHeartbeatIntervalMs: 300 } },
      { maxReplicas: 3, scheduleIntervalMs: 200, mergeChecker: { maxMergeRegionSizeBytes: 1024 * 1024, maxMergeRegionKeys: 10_000, splitMergeIntervalMs: 0 } },
    );
    const c = cluster;
    for (const k of KEYS) {
      await request(c, k, (header) => ({ header, op: 'write', writes: [{ type: 'put', key: utf8(k), value: utf8(`v-${k}`) }] }));
    }
    // The replica checker spreads the 8 Regions over 3-of-4 store sets, so most pairs need a peer move first.
    const regions = await waitFor(
      'placement shows one Region with three voters',
      async () => {
        const rs = await c.pd.scanRegions(new Uint8Array(), new Uint8Array(), 100);
        return rs.length === 1 && rs[0]!.region.peers.length === 3 && rs[0]!.region.peers.every((p) => p.role === 'voter') ? rs : undefined;
      },
      30_000,
      100,
    );
    const only = regions[0]!.region;
    const hosts = new Set(only.peers.map((p) => p.storeId));
    // Stores hosting the merged Region hold exactly it; the fourth store has let go of every Region.
    await waitFor('stores hold only the merged Region', () =>
      c.stores.every((s) => {
        const ids = [...s!.store.peers.values()].filter((p) => p.initialized).map((p) => p.regionId);
        return hosts.has(s!.store.storeId) ? ids.length === 1 && ids[0] === only.id : ids.length === 0;
      }),
    );
    for (const k of KEYS) {
      const r = await request(c, k, (header) => ({ header, op: 'read', read: { type: 'get', key: utf8(k) } }));
      expect(r.value ? fromUtf8(r.value) : r.value, k).toBe(`v-${k}`);
    }
  }, 60_000);
});
