import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { PlacementClient } from '@flotilla/placement';
import { LocalNetwork } from '@flotilla/transport';
import { fromUtf8, TXN_LIMITS, utf8, type ClientRequest, type ClientResponse, type Region, type TxnCommand, type TxnRead, type TxnResult } from '@flotilla/proto';
import type { Store } from '@flotilla/store';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

// The transactional keyspace through real stores: Percolator commands and
// snapshot reads over the client socket, and MVCC rows that survive split,
// merge, peer removal and a snapshot to a new peer (issue #17).

let cluster: TestCluster | undefined;
let net: LocalNetwork | undefined;
afterEach(async () => {
  await cluster?.close();
  net?.close();
  cluster = undefined;
  net = undefined;
});

const hdr = (r: Region) => ({ regionId: r.id, regionEpoch: r.epoch });
type Ok = Extract<ClientResponse, { ok: true }>;
type CommandResult = Parameters<Parameters<Store['handleClientRequest']>[1]>[0];

async function leaderOf(c: TestCluster, regionId: number, timeoutMs = 20_000) {
  return waitFor(`leader of region ${regionId}`, () => {
    for (const s of c.stores) {
      const p = s?.store.peers.get(regionId);
      if (p?.isLeader) return { handle: s!, peer: p };
    }
    return undefined;
  }, timeoutMs);
}

/** call sends a request to the Region's current leader over the client socket, retrying region errors until it is answered ok. */
async function call(c: TestCluster, regionId: number, make: (r: Region) => Parameters<RawStoreClient['call']>[0]): Promise<Ok> {
  return waitFor(`request to region ${regionId}`, async () => {
    const { handle, peer } = await leaderOf(c, regionId);
    const cl = new RawStoreClient(handle.address);
    try {
      const r = await cl.call(make(peer.region));
      return r.ok ? r : undefined;
    } finally {
      cl.close();
    }
  }, 30_000);
}
const txn = async (c: TestCluster, regionId: number, t: TxnCommand): Promise<TxnResult> => (await call(c, regionId, (r) => ({ header: hdr(r), op: 'txn', txn: t }))).txn!;
const readAt = async (c: TestCluster, regionId: number, read: TxnRead): Promise<TxnResult> => (await call(c, regionId, (r) => ({ header: hdr(r), op: 'txnRead', read }))).txn!;

async function setup() {
  net = new LocalNetwork({ seed: 17 });
  const nn = net;
  cluster = await startCluster(3, { transportFactory: (id) => nn.transport(id) }, { balanceLeader: false, balanceRegion: false, mergeChecker: false });
  const c = cluster;
  const id = [...c.stores[0]!.store.peers.keys()][0]!;
  await waitFor('three voters on every store', () => c.stores.every((s) => s!.store.peers.get(id)?.initialized && s!.store.peers.get(id)!.region.peers.filter((p) => p.role === 'voter').length === 3), 30_000);
  return { c, id };
}

const key = (i: number) => utf8(`k${String(i).padStart(2, '0')}`);

/** history writes 20 keys (k00..k19) in three transactions and leaves one lock; it returns the read ts and what reads at it must see. */
async function history(c: TestCluster, id: number) {
  const ts = () => c.pd.timestamp();
  const s1 = await ts();
  const all = Array.from({ length: 20 }, (_, i) => key(i));
  const pw1 = await txn(c, id, { type: 'prewrite', mutations: all.map((k, i) => ({ op: 'put' as const, key: k, value: utf8(i % 5 === 0 ? 'L'.repeat(600) : `one-${i}`) })), primary: all[0]!, startTs: s1, lockTtlMs: 10_000, txnSize: 20 });
  expect(pw1).toEqual({ type: 'prewrite', errors: [] });
  const c1 = await ts();
  expect(await txn(c, id, { type: 'commit', keys: all, startTs: s1, commitTs: c1 })).toEqual({ type: 'commit', errors: [], commitTs: c1 });
  const s2 = await ts();
  const evens = all.filter((_, i) => i % 2 === 0);
  expect(await txn(c, id, { type: 'prewrite', mutations: evens.map((k) => ({ op: 'put' as const, key: k, value: utf8('two') })), primary: evens[0]!, startTs: s2, lockTtlMs: 10_000, txnSize: evens.length })).toMatchObject({ errors: [] });
  const c2 = await ts();
  expect(await txn(c, id, { type: 'commit', keys: evens, startTs: s2, commitTs: c2 })).toMatchObject({ errors: [] });
  // One-phase: delete k03 (all keys in one Region).
  const s3 = await ts();
  const one = await txn(c, id, { type: 'prewrite', mutations: [{ op: 'delete', key: key(3) }], primary: key(3), startTs: s3, lockTtlMs: 10_000, txnSize: 1, onePc: true });
  expect(one.type === 'prewrite' && one.errors.length === 0 && one.onePcCommitTs! > s3).toBe(true);
  const read = await ts();
  // A transaction that never finishes: its lock on k07 must survive everything too.
  const s4 = await ts();
  expect(await txn(c, id, { type: 'prewrite', mutations: [{ op: 'put', key: key(7), value: utf8('never') }], primary: key(7), startTs: s4, lockTtlMs: 60_000, txnSize: 1 })).toMatchObject({ errors: [] });
  const expected = all
    .map((k, i) => ({ key: fromUtf8(k), value: i % 2 === 0 ? 'two' : i % 5 === 0 ? 'L'.repeat(600) : `one-${i}`, version: i % 2 === 0 ? c2 : c1 }))
    .filter((p) => p.key !== 'k03');
  return { read, s4, c1, expected, late: await ts() };
}

const shown = (r: TxnResult) => (r.type === 'read' ? { pairs: r.pairs.map((p) => ({ key: fromUtf8(p.key), value: fromUtf8(p.value), version: p.version })), errors: r.errors.map((e) => e.type) } : r);

describe('transactions through real stores', () => {
  it('prewrite, commit, 1PC, snapshot get/batchGet/scan over the socket; bad input is refused with nothing applied', async () => {
    const { c, id } = await setup();
    const h = await history(c, id);
    const scan = await readAt(c, id, { type: 'scan', startKey: new Uint8Array(), endKey: new Uint8Array(), limit: 100, ts: h.read });
    expect(shown(scan)).toEqual({ pairs: h.expected, errors: [] });
    // Every replica applied the same Percolator decisions: identical transactional rows.
    const rowsOf = (i: number) => JSON.stringify(c.stores[i]!.store.stateMachine.snapshotRangeData(new Uint8Array(), new Uint8Array()).txn, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    await waitFor('replicas hold identical MVCC rows', () => rowsOf(1) === rowsOf(0) && rowsOf(2) === rowsOf(0));
    expect(JSON.parse(rowsOf(0)).writes.length).toBeGreaterThan(30);
    expect(shown(await readAt(c, id, { type: 'get', key: key(4), ts: h.c1 }))).toEqual({ pairs: [{ key: 'k04', value: 'one-4', version: h.c1 }], errors: [] });
    expect(shown(await readAt(c, id, { type: 'batchGet', keys: [key(3), key(7)], ts: h.late }))).toMatchObject({ pairs: [], errors: ['KeyIsLocked'] });
    // Bad input: a start ts from the future, an unknown transaction, an oversized prewrite.
    const future = (BigInt(Date.now() + TXN_LIMITS.maxFutureMs + 60_000) << 18n);
    const cl = new RawStoreClient((await leaderOf(c, id)).handle.address);
    const region = (await leaderOf(c, id)).peer.region;
    const bad = await cl.call({ header: hdr(region), op: 'txn', txn: { type: 'prewrite', mutations: [{ op: 'put', key: key(50), value: utf8('x') }], primary: key(50), startTs: future, lockTtlMs: 1000, txnSize: 1 } });
    cl.close();
    expect(bad.ok ? 'ok' : bad.error.type === 'InvalidRequest' && bad.error.message).toMatch(/start_ts .* ahead of this store's clock .*maxFutureMs/);
    expect(await txn(c, id, { type: 'commit', keys: [key(60)], startTs: h.late, commitTs: h.late + 1n })).toMatchObject({ errors: [{ type: 'TxnLockNotFound' }] });
    const { handle, peer } = await leaderOf(c, id);
    const big = Array.from({ length: 17 }, (_, i) => ({ op: 'put' as const, key: utf8(`big${i}`), value: new Uint8Array(1024 * 1024) }));
    const over = await new Promise<CommandResult>((res) => handle.store.handleClientRequest({ id: 1, header: hdr(peer.region), op: 'txn', txn: { type: 'prewrite', mutations: big, primary: big[0]!.key, startTs: h.late, lockTtlMs: 1000, txnSize: 17 } } as ClientRequest, res));
    expect(over.ok ? 'ok' : over.error.type === 'InvalidRequest' && over.error.message).toMatch(/exceeds TXN_LIMITS.maxBytes/);
    expect(shown(await readAt(c, id, { type: 'scan', startKey: utf8('big'), endKey: utf8('bih'), limit: 10, ts: await c.pd.timestamp() }))).toEqual({ pairs: [], errors: [] });
  }, 120_000);

  it('MVCC versions and locks survive split, merge, peer removal and a snapshot to a new peer that then leads', async () => {
    const { c, id } = await setup();
    const h = await history(c, id);
    const scanAll = async (regionId: number, start = '', end = '') => shown(await readAt(c, regionId, { type: 'scan', startKey: utf8(start), endKey: utf8(end), limit: 100, ts: h.read }));

    const split = await call(c, id, (r) => ({ header: hdr(r), op: 'split', splitKeys: [key(10)] }));
    const right = split.regions!.find((r) => fromUtf8(r.startKey) === 'k10')!;
    const left = split.regions!.find((r) => r.startKey.length === 0)!;
    const l = await scanAll(left.id);
    const r = await scanAll(right.id);
    expect([...(l as { pairs: unknown[] }).pairs, ...(r as { pairs: unknown[] }).pairs]).toEqual(h.expected);
    // A key of the other half is refused, and resolveLock over the whole left Region does not reach k10+.
    const wrong = await waitFor('answer', async () => {
      const cl = new RawStoreClient((await leaderOf(c, left.id)).handle.address);
      try {
        return await cl.call({ header: hdr((await leaderOf(c, left.id)).peer.region), op: 'txnRead', read: { type: 'get', key: key(15), ts: h.read } });
      } finally {
        cl.close();
      }
    });
    expect(wrong.ok ? 'ok' : wrong.error.type).toBe('KeyNotInRegion');

    await waitFor('split on every store', () => c.stores.every((s) => s!.store.peers.get(right.id)?.initialized));
    await call(c, right.id, (rr) => ({ header: hdr(rr), op: 'merge', targetRegionId: left.id }));
    await waitFor('merged on every store', () => c.stores.every((s) => !s!.store.peers.has(right.id) && s!.store.peers.get(left.id)?.region.endKey.length === 0), 30_000);
    expect(await scanAll(left.id)).toEqual({ pairs: h.expected, errors: [] });

    // Remove a follower's peer: its rows go; placement puts a new peer there, which gets a snapshot.
    const { handle: leader, peer } = await leaderOf(c, left.id);
    const victimIdx = c.stores.findIndex((s) => s !== leader);
    const victim = c.stores[victimIdx]!;
    const old = victim.store.peers.get(left.id)!.peerId;
    const meta = peer.region.peers.find((p) => p.storeId === victim.storeId)!;
    await call(c, left.id, (rr) => ({ header: hdr(rr), op: 'admin', admin: { type: 'changePeer', changeType: 1, peer: meta } }));
    const kvFile = join(c.dir, `store-${victimIdx}`, 'kv.db');
    const rows = () => {
      const db = new Database(kvFile, { readonly: true });
      try {
        return db.prepare('SELECT (SELECT count(*) FROM txn_write) + (SELECT count(*) FROM txn_lock) + (SELECT count(*) FROM txn_data)').pluck().get() as number;
      } finally {
        db.close();
      }
    };
    await waitFor('removed peer destroyed', () => victim.store.peers.get(left.id)?.peerId !== old, 30_000, 5);
    if (!victim.store.peers.get(left.id)?.initialized) expect(rows()).toBe(0);
    const fresh = await waitFor('a new peer on the store, initialized by a snapshot', () => {
      const p = victim.store.peers.get(left.id);
      return p && p.peerId !== old && p.initialized && p.region.peers.some((x) => x.id === p.peerId && x.role === 'voter') ? p : undefined;
    }, 60_000);
    expect(rows()).toBeGreaterThan(20);
    // Make the new peer lead and read the same versions (and the lock) from it.
    const freshMeta = fresh.region.peers.find((p) => p.id === fresh.peerId)!;
    await waitFor('leadership on the new peer', async () => {
      if (fresh.isLeader) return true;
      await call(c, left.id, (rr) => ({ header: hdr(rr), op: 'admin', admin: { type: 'transferLeader', peer: freshMeta } })).catch(() => undefined);
      return fresh.isLeader;
    }, 30_000, 200);
    expect(await scanAll(left.id)).toEqual({ pairs: h.expected, errors: [] });
    expect(shown(await readAt(c, left.id, { type: 'get', key: key(7), ts: h.late }))).toMatchObject({ pairs: [], errors: ['KeyIsLocked'] });
    expect(await txn(c, left.id, { type: 'rollback', keys: [key(7)], startTs: h.s4 })).toEqual({ type: 'rollback', errors: [] });
    expect(shown(await readAt(c, left.id, { type: 'get', key: key(7), ts: await c.pd.timestamp() }))).toEqual({ pairs: [{ key: 'k07', value: 'one-7', version: h.c1 }], errors: [] });
  }, 180_000);

  it('a 1PC holds its keys in the memory lock table: a snapshot read above its commit ts waits for it and sees the write; without the oracle (down or hung) a 1PC is refused as retryable and holds nothing', async () => {
    const { c, id } = await setup();
    // Store 0 gets a placement client whose timestamp() answers only when the test opens the gate (the value is fetched at once).
    let open: () => void = () => {};
    let fetched: bigint | undefined;
    let oracleDown = false;
    let oracleHangs = false;
    const gate = new Promise<void>((res) => (open = res));
    const real = new PlacementClient({ addresses: [c.placement.address] });
    const gated = new Proxy(real, {
      get(t, prop) {
        if (prop === 'timestamp') return async () => {
          if (oracleDown) throw new Error('placement unreachable (test)');
          if (oracleHangs) return new Promise<bigint>(() => {});
          const got = await t.timestamp();
          fetched = got;
          await gate;
          return got;
        };
        const v = Reflect.get(t, prop, t) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    await c.stop(0);
    c.storeOpts[0]!.placementClient = gated;
    await c.restart(0);
    const s0 = c.stores[0]!;
    const peer0 = await waitFor('store 0 peer back', () => (s0.store.peers.get(id)?.initialized ? s0.store.peers.get(id) : undefined));
    await waitFor('store 0 leads', async () => {
      if (peer0.isLeader) return true;
      const meta = peer0.region.peers.find((p) => p.id === peer0.peerId)!;
      await call(c, id, (r) => ({ header: hdr(r), op: 'admin', admin: { type: 'transferLeader', peer: meta } })).catch(() => undefined);
      return peer0.isLeader;
    }, 30_000, 200);
    const s1 = await c.pd.timestamp();
    await txn(c, id, { type: 'prewrite', mutations: [{ op: 'put', key: utf8('m'), value: utf8('v1') }], primary: utf8('m'), startTs: s1, lockTtlMs: 5000, txnSize: 1 });
    const c1 = await c.pd.timestamp();
    expect(await txn(c, id, { type: 'commit', keys: [utf8('m')], startTs: s1, commitTs: c1 })).toMatchObject({ errors: [] });

    const cl = new RawStoreClient(s0.address);
    const start = await c.pd.timestamp();
    const onePc = cl.call({ header: hdr(peer0.region), op: 'txn', txn: { type: 'prewrite', mutations: [{ op: 'put', key: utf8('m'), value: utf8('v2') }], primary: utf8('m'), startTs: start, lockTtlMs: 5000, txnSize: 1, onePc: true } });
    // The commit ts is fetched (and held back) before this read ts: R > commit ts, so the read must see the write.
    const held = await waitFor('the 1PC got its commit ts (held back)', () => fetched);
    const readTs = await c.pd.timestamp();
    const read = cl.call({ header: hdr(peer0.region), op: 'txnRead', read: { type: 'get', key: utf8('m'), ts: readTs } });
    // Served as far as ReadIndex and apply allow: only the memory lock holds it now.
    await waitFor('the read waits on the memory lock', () => peer0.reads.length === 1 && peer0.reads[0]!.index !== 0 && peer0.reads[0]!.index <= peer0.apply.appliedIndex);
    open();
    const w = await onePc;
    const r = await read;
    cl.close();
    real.close();
    const commitTs = w.ok && w.txn?.type === 'prewrite' ? w.txn.onePcCommitTs : undefined;
    expect(commitTs).toBe(held);
    expect(held < readTs).toBe(true);
    expect(r.ok ? shown(r.txn!) : r.error).toEqual({ pairs: [{ key: 'm', value: 'v2', version: commitTs }], errors: [] });

    // The oracle unreachable: the 1PC is refused as retryable (the client commits in two phases), nothing is
    // written, and its memory lock is gone (a read at a fresh ts is not held).
    oracleDown = true;
    const cl2 = new RawStoreClient(s0.address);
    const startB = await c.pd.timestamp();
    const refused = await cl2.call({ header: hdr(peer0.region), op: 'txn', txn: { type: 'prewrite', mutations: [{ op: 'put', key: utf8('m'), value: utf8('v3') }], primary: utf8('m'), startTs: startB, lockTtlMs: 5000, txnSize: 1, onePc: true } });
    expect(refused.ok ? 'ok' : `${refused.error.type}: ${refused.error.type === 'ServerIsBusy' ? refused.error.reason : ''}`).toMatch(/^ServerIsBusy: .*commit in two phases/);
    const after = await cl2.call({ header: hdr(peer0.region), op: 'txnRead', read: { type: 'get', key: utf8('m'), ts: await c.pd.timestamp() } });
    expect(after.ok ? shown(after.txn!) : after.error).toEqual({ pairs: [{ key: 'm', value: 'v2', version: commitTs }], errors: [] });
    // An oracle that never answers: refused after ONE_PC_TS_TIMEOUT_MS (5 s), locks released.
    oracleDown = false;
    oracleHangs = true;
    const hung = await cl2.call({ header: hdr(peer0.region), op: 'txn', txn: { type: 'prewrite', mutations: [{ op: 'put', key: utf8('m'), value: utf8('v4') }], primary: utf8('m'), startTs: await c.pd.timestamp(), lockTtlMs: 5000, txnSize: 1, onePc: true } });
    expect(hung.ok ? 'ok' : `${hung.error.type}: ${hung.error.type === 'ServerIsBusy' ? hung.error.reason : ''}`).toMatch(/^ServerIsBusy: .*no answer within 5000 ms/);
    const after2 = await cl2.call({ header: hdr(peer0.region), op: 'txnRead', read: { type: 'get', key: utf8('m'), ts: await c.pd.timestamp() } });
    cl2.close();
    expect(after2.ok ? shown(after2.txn!) : after2.error).toEqual({ pairs: [{ key: 'm', value: 'v2', version: commitTs }], errors: [] });
  }, 120_000);
});
