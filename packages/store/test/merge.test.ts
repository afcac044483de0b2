import { afterEach, describe, expect, it } from 'vitest';
import { LocalNetwork } from '@flotilla/transport';
import { fromUtf8, utf8, type ClientResponse, type Region } from '@flotilla/proto';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

let cluster: TestCluster | undefined;
let net: LocalNetwork | undefined;
afterEach(async () => {
  await cluster?.close();
  net?.close();
  cluster = undefined;
  net = undefined;
});

const hdr = (r: Region) => ({ regionId: r.id, regionEpoch: r.epoch });

async function leaderOf(c: TestCluster, regionId: number, timeoutMs = 20_000) {
  return waitFor(`leader of region ${regionId}`, () => {
    for (const s of c.stores) {
      const p = s?.store.peers.get(regionId);
      if (p?.isLeader) return { handle: s!, peer: p };
    }
    return undefined;
  }, timeoutMs);
}

/** call sends a request to the Region's current leader, retrying until it is answered ok. */
async function call(c: TestCluster, regionId: number, make: (r: Region) => Parameters<RawStoreClient['call']>[0]): Promise<Extract<ClientResponse, { ok: true }>> {
  let last = '';
  return waitFor(`request to region ${regionId} (${last})`, async () => {
    const { handle, peer } = await leaderOf(c, regionId);
    const cl = new RawStoreClient(handle.address);
    try {
      const r = await cl.call(make(peer.region));
      if (!r.ok) last = r.error.type;
      return r.ok ? r : undefined;
    } finally {
      cl.close();
    }
  }, 30_000);
}

async function setup() {
  net = new LocalNetwork({ seed: 21 });
  const nn = net;
  // No balancing: the test moves leaders itself; merge makes the target leader local.
  cluster = await startCluster(3, { transportFactory: (id) => nn.transport(id), preSplitKeys: [utf8('m')] }, { balanceLeader: false, balanceRegion: false });
  const c = cluster;
  await waitFor('two Regions with three voters on every store', () =>
    c.stores.every((s) => s!.store.peers.size === 2 && [...s!.store.peers.values()].every((p) => p.initialized && p.region.peers.filter((x) => x.role === 'voter').length === 3)),
    30_000,
  );
  const byStart = (start: string) => [...c.stores[0]!.store.peers.values()].find((p) => fromUtf8(p.region.startKey) === start)!.regionId;
  return { c, left: byStart(''), right: byStart('m') };
}

describe('region merge', () => {
  it('merges the right Region into the left one while writes continue on both; nothing is lost', async () => {
    const { c, left, right } = await setup();
    const acked = new Map<string, string>();
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        for (const [regionId, prefix] of [[left, 'a'], [right, 'n']] as const) {
          const key = `${prefix}${i}`;
          if (!c.stores.some((s) => s?.store.peers.has(regionId))) continue; // merged away
          try {
            const { handle, peer } = await leaderOf(c, regionId, 500);
            const cl = new RawStoreClient(handle.address);
            const r = await cl.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: utf8(key), value: utf8(`v${i}`) }] });
            cl.close();
            if (r.ok) acked.set(key, `v${i}`);
          } catch {
            // the Region may be gone (merged): only acknowledged writes count
          }
        }
        if (i > 2000) break;
      }
    })();
    await waitFor('some writes acknowledged', () => acked.size > 20);
    const merged = await call(c, right, (r) => ({ header: hdr(r), op: 'merge', targetRegionId: left }));
    expect(merged.regions![0]!.id).toBe(left);
    writing = false;
    await writer;
    // The source is gone everywhere; the target covers the whole key space on every store.
    await waitFor('source destroyed and target grown on every store', () =>
      c.stores.every((s) => !s!.store.peers.has(right) && s!.store.peers.get(left)!.region.endKey.length === 0),
    );
    const target = (await leaderOf(c, left)).peer.region;
    expect(target.startKey.length).toBe(0);
    expect(target.epoch.version).toBeGreaterThan(2);
    // Every acknowledged write reads back through the merged Region.
    const scan = await call(c, left, (r) => ({ header: hdr(r), op: 'read', read: { type: 'scan', startKey: new Uint8Array(), endKey: new Uint8Array(), limit: 100_000 } }));
    const got = new Map(scan.pairs!.map((p) => [fromUtf8(p.key), fromUtf8(p.value)]));
    for (const [k, v] of acked) expect(got.get(k)).toBe(v);
    expect(acked.size).toBeGreaterThan(20);
    // Placement learns the merged Region from the target's heartbeat.
    await waitFor('placement shows one Region', async () => (await c.pd.scanRegions(new Uint8Array(), new Uint8Array(), 10)).length === 1, 30_000);
  }, 120_000);

  it('rolls back when the target epoch has moved past the one the merge was prepared against', async () => {
    const { c, left, right } = await setup();
    const tgt = (await leaderOf(c, left)).peer.region;
    // Prepare a merge against an older epoch of the target (as if the target split meanwhile).
    const staleTarget: Region = { ...tgt, epoch: { ...tgt.epoch, version: tgt.epoch.version - 1 } };
    const before = (await leaderOf(c, right)).peer.region.epoch.version;
    const prep = await call(c, right, (r) => ({ header: hdr(r), op: 'admin', admin: { type: 'prepareMerge', target: staleTarget, minIndex: 0 } }));
    expect(prep.regions![0]!.epoch.version).toBe(before + 1);
    // The source leader sees the target's epoch differ and proposes RollbackMerge.
    await waitFor('source rolled back on every store', () => c.stores.every((s) => {
      const p = s!.store.peers.get(right);
      return p && !p.mergeState && p.region.epoch.version === before + 2;
    }), 30_000);
    // The source serves writes again; the target never grew.
    const w = await call(c, right, (r) => ({ header: hdr(r), op: 'write', writes: [{ type: 'put', key: utf8('q'), value: utf8('after-rollback') }] }));
    expect(w.ok).toBe(true);
    expect(fromUtf8((await leaderOf(c, left)).peer.region.endKey)).toBe('m');
  }, 60_000);

  it('refuses a merge whose Regions are not adjacent or not co-located', async () => {
    const { c, left, right } = await setup();
    const r = await waitFor('answer', async () => {
      const { handle, peer } = await leaderOf(c, right);
      const cl = new RawStoreClient(handle.address);
      try {
        return await cl.call({ header: hdr(peer.region), op: 'merge', targetRegionId: 424242 });
      } finally {
        cl.close();
      }
    });
    expect(!r.ok && r.error.type).toBe('InvalidRequest');
    expect(left).not.toBe(right);
  }, 60_000);

  it('a target-side follower that was down during the merge catches up after restart', async () => {
    const { c, left, right } = await setup();
    for (const k of ['b', 'x']) {
      const regionId = k < 'm' ? left : right;
      await call(c, regionId, (r) => ({ header: hdr(r), op: 'write', writes: [{ type: 'put', key: utf8(k), value: utf8(k.toUpperCase()) }] }));
    }
    // Stop a store that leads neither Region.
    const leaders = new Set([(await leaderOf(c, left)).handle, (await leaderOf(c, right)).handle]);
    const srcLeader = (await leaderOf(c, right)).handle;
    let idx = c.stores.findIndex((s) => !leaders.has(s!));
    if (idx < 0) idx = c.stores.findIndex((s) => s !== srcLeader);
    await c.stop(idx);
    await call(c, right, (r) => ({ header: hdr(r), op: 'merge', targetRegionId: left }));
    await call(c, left, (r) => ({ header: hdr(r), op: 'write', writes: [{ type: 'put', key: utf8('y'), value: utf8('Y') }] }));
    const back = await c.restart(idx);
    await waitFor('restarted store applied the merge', () => !back.store.peers.has(right) && back.store.peers.get(left)?.region.endKey.length === 0, 30_000);
    await waitFor('restarted store has the later write', () => back.store.stateMachine.get(utf8('y')) !== undefined, 30_000);
    expect(fromUtf8(back.store.stateMachine.get(utf8('x'))!)).toBe('X');
  }, 90_000);

  it('split after merge and merge after split, repeatedly, keeps every key', async () => {
    const { c, left, right } = await setup();
    const written = new Map<string, string>();
    let target = left;
    let source = right;
    for (let round = 0; round < 3; round++) {
      for (const k of [`a${round}`, `z${round}`]) {
        const regionId = k < 'm' ? target : source;
        await call(c, regionId, (r) => ({ header: hdr(r), op: 'write', writes: [{ type: 'put', key: utf8(k), value: utf8(`r${round}`) }] }));
        written.set(k, `r${round}`);
      }
      await call(c, source, (r) => ({ header: hdr(r), op: 'merge', targetRegionId: target }));
      await waitFor('merged on every store', () => c.stores.every((s) => !s!.store.peers.has(source)));
      const scan = await call(c, target, (r) => ({ header: hdr(r), op: 'read', read: { type: 'scan', startKey: new Uint8Array(), endKey: new Uint8Array(), limit: 1000 } }));
      expect(new Map(scan.pairs!.map((p) => [fromUtf8(p.key), fromUtf8(p.value)]))).toEqual(written);
      const split = await call(c, target, (r) => ({ header: hdr(r), op: 'split', splitKeys: [utf8('m')] }));
      const right2 = split.regions!.find((r) => fromUtf8(r.startKey) === 'm')!;
      source = right2.id;
      await waitFor('split on every store, replicated', () => c.stores.every((s) => s!.store.peers.get(source)?.initialized));
    }
  }, 120_000);
});
