import { afterEach, describe, expect, it } from 'vitest';
import { LocalNetwork } from '@flotilla/transport';
import { encode, fromUtf8, utf8, type ClientResponse, type Region } from '@flotilla/proto';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

let cluster: TestCluster | undefined;
let net: LocalNetwork | undefined;
afterEach(async () => {
  await cluster?.close();
  net?.close();
  cluster = undefined;
  net = undefined;
});

function hdr(region: Region) {
  return { regionId: region.id, regionEpoch: region.epoch };
}

async function leaderOf(c: TestCluster, regionId: number) {
  return waitFor(`leader of region ${regionId}`, () => {
    for (const s of c.stores) {
      const p = s?.store.peers.get(regionId);
      if (p?.isLeader) return { handle: s!, peer: p };
    }
    return undefined;
  });
}

async function setup(n: number, maxReplicas = 3) {
  net = new LocalNetwork({ seed: 3 });
  const nn = net;
  cluster = await startCluster(n, { transportFactory: (id) => nn.transport(id) }, { maxReplicas });
  const c = cluster;
  const id = [...c.stores[0]!.store.peers.keys()][0]!;
  const { peer } = await leaderOf(c, id);
  await waitFor('replicas', () => peer.region.peers.filter((p) => p.role === 'voter').length === Math.min(n, maxReplicas), 30_000);
  return { c, id };
}

describe('store admin: splits and membership', () => {
  it('splits a Region by key; both halves serve, keys stay where they belong, epochs bump', async () => {
    const { c, id } = await setup(3);
    const { handle, peer } = await leaderOf(c, id);
    const client = new RawStoreClient(handle.address);
    for (const k of ['a', 'b', 'm', 'n', 'z']) {
      const r = await client.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: utf8(k), value: utf8(k.toUpperCase()) }] });
      expect(r.ok).toBe(true);
    }
    const before = peer.region.epoch.version;
    const r = (await client.call({ header: hdr(peer.region), op: 'split', splitKeys: [utf8('m')] })) as Extract<ClientResponse, { ok: true }>;
    expect(r.ok).toBe(true);
    expect(r.regions).toHaveLength(2);
    const [left, right] = r.regions!;
    expect(fromUtf8(left!.endKey)).toBe('m');
    expect(fromUtf8(right!.startKey)).toBe('m');
    expect(left!.epoch.version).toBe(before + 1);
    // Every store applies the split and hosts both Regions.
    await waitFor('all stores have the new region', () => c.stores.every((s) => s!.store.peers.get(right!.id)?.initialized));
    const rl = await leaderOf(c, right!.id);
    const rc = new RawStoreClient(rl.handle.address);
    const got = (await rc.call({ header: hdr(rl.peer.region), op: 'read', read: { type: 'get', key: utf8('n') } })) as Extract<ClientResponse, { ok: true }>;
    expect(fromUtf8(got.value!)).toBe('N');
    // Splitting again at a key that is already a boundary is a no-op that succeeds at once.
    const again = (await rc.call({ header: hdr(rl.peer.region), op: 'split', splitKeys: [utf8('m')] })) as Extract<ClientResponse, { ok: true }>;
    expect(again.ok).toBe(true);
    expect(again.regions).toEqual([rl.peer.region]);
    expect(rl.peer.region.epoch.version).toBe(right!.epoch.version);
    // A write with the old epoch is rejected with the current Region.
    const stale = await client.call({ header: { regionId: id, regionEpoch: { ...left!.epoch, version: before } }, op: 'write', writes: [{ type: 'put', key: utf8('b'), value: utf8('x') }] });
    expect(stale.ok).toBe(false);
    if (!stale.ok) expect(stale.error.type).toBe('EpochNotMatch');
    // A key of the right half sent to the left Region is KeyNotInRegion.
    const l2 = await leaderOf(c, id);
    const lc = new RawStoreClient(l2.handle.address);
    const wrong = await lc.call({ header: hdr(l2.peer.region), op: 'write', writes: [{ type: 'put', key: utf8('q'), value: utf8('x') }] });
    expect(!wrong.ok && wrong.error.type).toBe('KeyNotInRegion');
    const scan = (await rc.call({ header: hdr(rl.peer.region), op: 'read', read: { type: 'scan', startKey: new Uint8Array(), endKey: new Uint8Array(), limit: 10 } })) as Extract<ClientResponse, { ok: true }>;
    expect(scan.pairs!.map((p) => fromUtf8(p.key))).toEqual(['m', 'n', 'z']);
    client.close();
    rc.close();
    lc.close();
  }, 90_000);

  it('adds a learner, promotes it to voter, adds a voter, and removes a voter', async () => {
    // No schedulers: this test changes membership itself, and the replica
    // checker would otherwise race it (adding or removing peers meanwhile).
    net = new LocalNetwork({ seed: 4 });
    const nn = net;
    cluster = await startCluster(3, { transportFactory: (id) => nn.transport(id) }, { schedulers: [] });
    const c = cluster;
    const id = [...c.stores[0]!.store.peers.keys()][0]!;
    const { handle, peer } = await leaderOf(c, id);
    expect(peer.region.peers).toHaveLength(1);
    const others = c.stores.filter((s) => s !== handle);
    const [learnerId, voterId] = await c.pd.allocId(2);
    const client = new RawStoreClient(handle.address);
    const learner = { id: learnerId!, storeId: others[0]!.storeId, role: 'learner' as const };
    const add = await client.call({ header: hdr(peer.region), op: 'admin', admin: { type: 'changePeer', changeType: 2, peer: learner } });
    expect(add.ok).toBe(true);
    await waitFor('learner initialized by snapshot', () => others[0]!.store.peers.get(id)?.initialized);
    expect(others[0]!.store.peers.get(id)!.meta().role).toBe('learner');
    const promote = await client.call({ header: hdr(peer.region), op: 'admin', admin: { type: 'changePeer', changeType: 0, peer: { ...learner, role: 'voter' } } });
    expect(promote.ok).toBe(true);
    const voter = { id: voterId!, storeId: others[1]!.storeId, role: 'voter' as const };
    const addVoter = await client.call({ header: hdr(peer.region), op: 'admin', admin: { type: 'changePeer', changeType: 0, peer: voter } });
    expect(addVoter.ok).toBe(true);
    expect(peer.region.peers.filter((p) => p.role === 'voter').map((p) => p.id).sort()).toEqual([peer.peerId, learnerId, voterId].sort());
    await waitFor('new voter initialized', () => others[1]!.store.peers.get(id)?.initialized);
    const w1 = await client.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: utf8('before'), value: utf8('1') }] });
    expect(w1.ok).toBe(true);
    const remove = await client.call({ header: hdr(peer.region), op: 'admin', admin: { type: 'changePeer', changeType: 1, peer: { ...learner, role: 'voter' } } });
    expect(remove.ok).toBe(true);
    expect(peer.region.peers.map((p) => p.id)).not.toContain(learnerId);
    await waitFor('removed peer destroyed and its data cleaned', () => !others[0]!.store.peers.has(id) && others[0]!.store.stateMachine.get(utf8('before')) === undefined);
    const w = await client.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: utf8('after'), value: utf8('1') }] });
    expect(w.ok).toBe(true);
    await waitFor('remaining voter has the write', () => others[1]!.store.stateMachine.get(utf8('after')) !== undefined);
    client.close();
  }, 90_000);

  it('pre-splits the bootstrap Region at the configured keys', async () => {
    net = new LocalNetwork({ seed: 5 });
    const nn = net;
    cluster = await startCluster(3, { transportFactory: (id) => nn.transport(id), preSplitKeys: ['d', 'b', 'c', 'b'].map(utf8) });
    const c = cluster;
    await waitFor('four Regions on every store', () => c.stores.every((s) => s!.store.peers.size === 4), 30_000);
    const starts = [...c.stores[0]!.store.peers.values()].map((p) => fromUtf8(p.region.startKey)).sort();
    expect(starts).toEqual(['', 'b', 'c', 'd']);
  }, 60_000);

  it('rejects bad client input with typed errors and keeps serving', async () => {
    const { c, id } = await setup(1, 1);
    const { handle, peer } = await leaderOf(c, id);
    const client = new RawStoreClient(handle.address);
    const garbage = await client.sendRaw(new Uint8Array([0xc1, 0xff, 0x00]));
    expect(!garbage.ok && garbage.error.type).toBe('InvalidRequest');
    const malformed = await client.sendRaw(encode({ id: 0, op: 'write', header: { regionId: 'x' } }));
    expect(!malformed.ok && malformed.error.type).toBe('InvalidRequest');
    if (!malformed.ok && malformed.error.type === 'InvalidRequest') expect(malformed.error.message).toMatch(/header\.regionId/);
    const unknown = await client.call({ header: { regionId: 999_999, regionEpoch: { confVer: 1, version: 1 } }, op: 'read', read: { type: 'get', key: utf8('a') } });
    expect(!unknown.ok && unknown.error.type).toBe('RegionNotFound');
    const big = await client.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: new Uint8Array(10_000), value: utf8('x') }] }).catch(() => undefined);
    expect(big && !big.ok && big.error.type).toBe('InvalidRequest');
    const staleEpoch = await client.call({ header: { regionId: id, regionEpoch: { confVer: 1, version: 0 } }, op: 'read', read: { type: 'get', key: utf8('a') } });
    expect(!staleEpoch.ok && staleEpoch.error.type).toBe('EpochNotMatch');
    // Nothing was applied, and the store still serves.
    const ok = await client.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: utf8('fine'), value: utf8('1') }] });
    expect(ok.ok).toBe(true);
    const scan = (await client.call({ header: hdr(peer.region), op: 'read', read: { type: 'scan', startKey: new Uint8Array(), endKey: new Uint8Array(), limit: 100 } })) as Extract<ClientResponse, { ok: true }>;
    expect(scan.pairs!.map((p) => fromUtf8(p.key))).toEqual(['fine']);
    client.close();
  }, 60_000);
});
