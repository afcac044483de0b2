import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PlacementError, PlacementErrorCode, type ClusterInfo, type StoreInfo } from '@flotilla/placement';
import { silentLogger } from '@flotilla/proto';
import { AddressBook, PLACEMENT_ANSWER_MS, resolveFromPlacement } from '../../src/address-book';
import { clusterSecret, DEVELOPMENT_CLUSTER_SECRET, hostOf, isLoopbackHost } from '../../src/cluster-secret';
import type { PlacementApi } from '../../src/engines';
import { joinCluster, markRegistered, readIdentity } from '../../src/identity';
import { StoreStartError } from '../../src/start-error';

// Start-up's pieces on real files, with a scripted placement: which secret,
// which identity, which peer address. The process tests
// (apps/node/test/{forged-heartbeat,identity,placement-outage}.test.ts)
// run the same rules through real stores.

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'flotilla-start-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const unreachable = (): never => {
  throw new PlacementError(PlacementErrorCode.Timeout, 'placement getClusterInfo timed out after 5000 ms (not connected)');
};
const info = (clusterId: number, bootstrapped = true): ClusterInfo => ({ clusterId, bootstrapped, maxReplicas: 3, maxStoreDownTimeMs: 1, storeCount: 1, regionCount: 1, operatorCount: 0 });
const storeInfo = (id: number, raftAddress: string, state: StoreInfo['state'] = 'up'): StoreInfo => ({ id, address: `127.0.0.1:${id}`, labels: { raftAddress }, state, lastHeartbeatMs: 0, regionCount: 0, leaderCount: 0 });

/** fakePlacement answers from `stores` (or not at all); calls it does not script throw. */
function fakePlacement(p: { cluster?: () => ClusterInfo; stores?: Map<number, StoreInfo>; getStore?: (id: number) => Promise<StoreInfo | null> }): PlacementApi {
  const no = async (): Promise<never> => {
    throw new Error('not scripted');
  };
  return {
    getClusterInfo: async () => (p.cluster ?? unreachable)(),
    getStore: p.getStore ?? (async (id: number) => p.stores?.get(id) ?? null),
    getAllStores: async () => [...(p.stores?.values() ?? [])],
    allocId: async () => [77],
    putStore: no,
    isBootstrapped: no,
    bootstrap: no,
    getRegionById: no,
    getRegion: no,
    regionHeartbeat: no,
    reportBatchSplit: no,
    askBatchSplit: no,
    storeHeartbeat: no,
    close() {},
  } as PlacementApi;
}

describe('the development cluster secret', () => {
  it('is loopback only', () => {
    expect(['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost', 'a.localhost', '::ffff:127.0.0.1'].map((h) => isLoopbackHost(hostOf(`${h}:1`)))).toEqual([true, true, true, true, true, true, true]);
    expect(['0.0.0.0', '::', '10.0.0.1', 'store-1.example', '128.0.0.1'].map((h) => isLoopbackHost(hostOf(`${h}:1`)))).toEqual([false, false, false, false, false]);
    expect(clusterSecret(undefined, [{ what: '--listen', address: '127.0.0.1:0' }])).toBe(DEVELOPMENT_CLUSTER_SECRET);
    expect(clusterSecret('a-real-secret-of-32-characters!!', [{ what: '--listen', address: '0.0.0.0:0' }])).toBe('a-real-secret-of-32-characters!!');
    expect(() => clusterSecret(DEVELOPMENT_CLUSTER_SECRET, [{ what: '--placement', address: '10.0.0.1:20160' }])).toThrow(/--placement 10\.0\.0\.1:20160 is not loopback/);
  });
});

describe('joinCluster', () => {
  it('accepts an old store.json without a cluster ID when placement knows the store, and records the ID', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'store.json'), JSON.stringify({ storeId: 4 }));
    writeFileSync(join(dir, 'kv.db'), '');
    const joined = await joinCluster(dir, fakePlacement({ cluster: () => info(9), stores: new Map([[4, storeInfo(4, '127.0.0.1:9')]]) }), silentLogger, 'p:1');
    expect(joined).toMatchObject({ storeId: 4, clusterId: '9', online: true });
    expect(readIdentity(dir)).toEqual({ storeId: 4, clusterId: 9 });
  });

  it('starts from local data when placement does not answer, only for a registered store that has data', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'store.json'), JSON.stringify({ storeId: 4, clusterId: 9 }));
    writeFileSync(join(dir, 'raft.db'), '');
    expect(await joinCluster(dir, fakePlacement({}), silentLogger, 'p:1')).toMatchObject({ storeId: 4, clusterId: '9', online: false });
  });

  it('lets a pending store (ID taken, never registered) register, and clears pending once it has', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'store.json'), JSON.stringify({ storeId: 4, clusterId: 9, pending: true }));
    writeFileSync(join(dir, 'kv.db'), '');
    const joined = await joinCluster(dir, fakePlacement({ cluster: () => info(9) }), silentLogger, 'p:1');
    expect(joined.online).toBe(true);
    markRegistered(dir, joined);
    expect(JSON.parse(readFileSync(join(dir, 'store.json'), 'utf8'))).toEqual({ storeId: 4, clusterId: 9 });
    // Once registered, the same unknown ID is refused.
    await expect(joinCluster(dir, fakePlacement({ cluster: () => info(9) }), silentLogger, 'p:1')).rejects.toMatchObject({ code: 'UnknownStore' });
  });

  it('refuses a removed store, and an unreadable store.json, as typed errors', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'store.json'), JSON.stringify({ storeId: 4, clusterId: 9 }));
    const pd = fakePlacement({ cluster: () => info(9), stores: new Map([[4, storeInfo(4, 'x:1', 'tombstone')]]) });
    await expect(joinCluster(dir, pd, silentLogger, 'p:1')).rejects.toMatchObject({ code: 'RemovedStore' });
    writeFileSync(join(dir, 'store.json'), '{"storeId": ');
    const e = await joinCluster(dir, pd, silentLogger, 'p:1').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StoreStartError);
    expect(e).toMatchObject({ code: 'UnreadableIdentity' });
  });
});

describe('the address book', () => {
  it("keeps placement's answers on disk and serves them when placement does not answer in time", async () => {
    const dir = tempDir();
    const stores = new Map([[2, storeInfo(2, '127.0.0.1:2002')], [3, storeInfo(3, '127.0.0.1:2003')], [1, storeInfo(1, '127.0.0.1:2001')]]);
    const book = AddressBook.open(dir, 1, silentLogger);
    expect(await book.refresh(fakePlacement({ stores }))).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'address-book.json'), 'utf8'))).toEqual({ version: 1, stores: { '2': '127.0.0.1:2002', '3': '127.0.0.1:2003' } });

    const reopened = AddressBook.open(dir, 1, silentLogger);
    const never = fakePlacement({ getStore: () => new Promise(() => {}) });
    const started = Date.now();
    expect(await resolveFromPlacement(never, reopened)(2)).toBe('127.0.0.1:2002');
    expect(Date.now() - started).toBeGreaterThanOrEqual(PLACEMENT_ANSWER_MS - 5);

    // Placement's answer wins and is recorded; a store it removed is forgotten.
    const moved = fakePlacement({ stores: new Map([[2, storeInfo(2, '127.0.0.1:3002')], [3, storeInfo(3, '127.0.0.1:2003', 'tombstone')]]) });
    expect(await resolveFromPlacement(moved, reopened)(2)).toBe('127.0.0.1:3002');
    expect(await resolveFromPlacement(moved, reopened)(3)).toBeUndefined();
    expect(JSON.parse(readFileSync(join(dir, 'address-book.json'), 'utf8')).stores).toEqual({ '2': '127.0.0.1:3002' });
  });
});
