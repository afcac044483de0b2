import { afterEach, describe, expect, it } from 'vitest';
import { LocalNetwork } from '@flotilla/transport';
import { fromUtf8, utf8, type ClientResponse, type Region } from '@flotilla/proto';
import type { StoreHandle } from '@flotilla/store';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

let cluster: TestCluster | undefined;
let net: LocalNetwork | undefined;
afterEach(async () => {
  await cluster?.close();
  net?.close();
  cluster = undefined;
  net = undefined;
});

const REGION = (c: TestCluster) => [...c.stores.find((s) => s)!.store.peers.keys()][0]!;

async function leaderOf(c: TestCluster, regionId: number, exclude?: StoreHandle) {
  return waitFor(`leader of region ${regionId}`, () => {
    for (const s of c.stores) {
      if (!s || s === exclude) continue;
      const p = s.store.peers.get(regionId);
      if (p?.isLeader) return { handle: s, peer: p };
    }
    return undefined;
  });
}

/** put writes through whichever store leads, retrying on leader changes; returns once acknowledged. */
async function put(c: TestCluster, regionId: number, key: string, value: string): Promise<void> {
  await waitFor(`put ${key}`, async () => {
    const { handle, peer } = await leaderOf(c, regionId);
    const client = new RawStoreClient(handle.address);
    try {
      const r = await client.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: utf8(key), value: utf8(value) }] });
      return r.ok;
    } finally {
      client.close();
    }
  });
}

async function get(c: TestCluster, regionId: number, key: string): Promise<string | null> {
  return waitFor(`get ${key}`, async () => {
    const { handle, peer } = await leaderOf(c, regionId);
    const client = new RawStoreClient(handle.address);
    try {
      const r = (await client.call({ header: hdr(peer.region), op: 'read', read: { type: 'get', key: utf8(key) } })) as ClientResponse;
      if (!r.ok) return undefined;
      return { v: r.value ? fromUtf8(r.value) : null };
    } finally {
      client.close();
    }
  }).then((x) => x.v);
}

function hdr(region: Region) {
  return { regionId: region.id, regionEpoch: region.epoch };
}

async function fullyReplicated(c: TestCluster) {
  const id = REGION(c);
  const { peer } = await leaderOf(c, id);
  await waitFor('three voters', () => peer.region.peers.filter((p) => p.role === 'voter').length === 3, 30_000);
  await waitFor('every store has the region', () => c.stores.every((s) => s?.store.peers.get(id)?.initialized));
  return id;
}

describe('store failover and catch-up (3 stores, LocalTransport, real SQLite)', () => {
  it('elects a new leader when the leader store stops, and loses no acknowledged write', async () => {
    net = new LocalNetwork({ seed: 7 });
    const n = net;
    cluster = await startCluster(3, { transportFactory: (id) => n.transport(id) });
    const c = cluster;
    const id = await fullyReplicated(c);
    for (let i = 0; i < 20; i++) await put(c, id, `a${i}`, `v${i}`);
    const old = await leaderOf(c, id);
    const idx = c.stores.indexOf(old.handle);
    await c.stop(idx);
    const next = await leaderOf(c, id);
    expect(next.handle).not.toBe(old.handle);
    for (let i = 20; i < 30; i++) await put(c, id, `a${i}`, `v${i}`);
    for (let i = 0; i < 30; i++) expect(await get(c, id, `a${i}`)).toBe(`v${i}`);
    // The old leader comes back as a follower and catches up by log.
    const back = await c.restart(idx);
    const target = next.peer.apply.appliedIndex;
    await waitFor('restarted store catches up', () => (back.store.peers.get(id)?.apply.appliedIndex ?? 0) >= target);
    expect(fromUtf8(back.store.stateMachine.get(utf8('a29'))!)).toBe('v29');
  }, 90_000);

  it('a follower that misses compacted entries catches up by snapshot', async () => {
    net = new LocalNetwork({ seed: 9 });
    const n = net;
    cluster = await startCluster(3, {
      transportFactory: (id) => n.transport(id),
      config: { raftLogGcThreshold: 10, raftLogGcCountLimit: 40, raftLogGcIntervalMs: 100 },
    });
    const c = cluster;
    const id = await fullyReplicated(c);
    const leader = await leaderOf(c, id);
    const fIdx = c.stores.findIndex((s) => s && s !== leader.handle);
    await c.stop(fIdx);
    for (let i = 0; i < 120; i++) await put(c, id, `s${i}`, `x${i}`);
    const l = await leaderOf(c, id);
    await waitFor('leader compacted its log', () => l.peer.apply.truncatedIndex > 60);
    const back = await c.restart(fIdx);
    await waitFor('snapshot applied on the restarted follower', () => back.store.metrics.snapshotsApplied > 0, 30_000);
    await waitFor('restarted follower has the data', () => back.store.stateMachine.get(utf8('s119')) !== undefined);
    expect(fromUtf8(back.store.stateMachine.get(utf8('s0'))!)).toBe('x0');
  }, 90_000);
});
