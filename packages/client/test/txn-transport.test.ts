import { afterEach, describe, expect, it } from 'vitest';
import type { ClientRequest, ClientResponse, RegionError, TxnCommand } from '@flotilla/proto';
import { FlotillaClient } from '../src/client';
import { FakeCluster, b, s } from './fake-cluster';
import { FakeTso, Percolator } from './txn-fake';

// ClientTxnTransport over real WebSockets (FakeCluster stores answering
// txn / txnRead from an in-memory Percolator after the store contract's
// leader, epoch and key-range checks): grouping by Region, re-grouping
// after a split placement has not seen, 1PC only for a whole transaction.

let cluster: FakeCluster | undefined;
let client: FlotillaClient | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await cluster?.shutdown();
  cluster = undefined;
});

async function start(refuseOnePc = false): Promise<{ c: FakeCluster; cl: FlotillaClient; store: Percolator; sent: TxnCommand[] }> {
  const c = await FakeCluster.start(1);
  const tso = new FakeTso();
  const store = new Percolator(tso);
  const sent: TxnCommand[] = [];
  Object.assign(c, { timestamp: async () => tso.next() });
  for (const st of c.stores) {
    st.script = (req: ClientRequest): ClientResponse | RegionError | undefined => {
      if (req.op !== 'txn' && req.op !== 'txnRead') return undefined;
      // The contract's checks, borrowed from the fake store's batchGet / scan handling.
      const probe: ClientRequest =
        req.op === 'txnRead' && req.read.type === 'scan'
          ? { id: req.id, header: req.header, op: 'read', read: { type: 'scan', startKey: req.read.startKey, endKey: req.read.endKey, limit: 1 } }
          : { id: req.id, header: req.header, op: 'read', read: { type: 'batchGet', keys: keysOf(req) } };
      const check = c.serve(st.id, probe);
      if (!('ok' in check)) return check;
      if (req.op === 'txn') sent.push(req.txn);
      // A store that cannot take a commit ts for 1PC answers ServerIsBusy (store/src/operation/txn.ts startOnePc).
      if (refuseOnePc && req.op === 'txn' && req.txn.type === 'prewrite' && req.txn.onePc) return { type: 'ServerIsBusy', reason: 'no commit ts for 1PC', backoffMs: 1 };
      return { id: req.id, ok: true, txn: req.op === 'txn' ? store.apply(req.txn) : store.read(req.read) };
    };
  }
  const cl = await FlotillaClient.connect({ routes: c, backoff: { baseMs: 1, maxMs: 20 } });
  cluster = c;
  client = cl;
  return { c, cl, store, sent };
}

function keysOf(req: Extract<ClientRequest, { op: 'txn' | 'txnRead' }>): Uint8Array[] {
  if (req.op === 'txnRead') return req.read.type === 'get' ? [req.read.key] : req.read.type === 'batchGet' ? req.read.keys : [];
  const t = req.txn;
  switch (t.type) {
    case 'prewrite':
      return t.mutations.map((m) => m.key);
    case 'commit':
    case 'rollback':
      return t.keys;
    case 'resolveLock':
      return t.keys ?? [];
    default:
      return [t.primary];
  }
}

describe('txn transport over FlotillaClient routing', () => {
  it('commits in one phase within one Region, then re-groups a transaction after a split placement has not seen', async () => {
    const { c, cl, sent } = await start();
    await cl.txn((tx) => {
      tx.put('a', '1');
      tx.put('x', '1');
    });
    expect(sent.map((x) => x.type + (x.type === 'prewrite' && x.onePc ? ':1pc' : ''))).toEqual(['prewrite:1pc']);
    sent.length = 0;
    c.splitAt('m'); // the truth changes; placement and the client's cache still say one Region
    await cl.txn((tx) => {
      tx.put('a', '2');
      tx.put('x', '2');
    }, { waitForSecondaries: true });
    const prewrites = sent.filter((x): x is Extract<TxnCommand, { type: 'prewrite' }> => x.type === 'prewrite');
    // The stale 1PC attempt was refused with EpochNotMatch (nothing applied); what applied is one 2PC prewrite per Region.
    expect(prewrites.map((p) => [p.onePc === true, p.mutations.map((m) => s(m.key)).join()])).toEqual([
      [false, 'a'],
      [false, 'x'],
    ]);
    expect(sent.filter((x) => x.type === 'commit')).toHaveLength(2);
    const snap = await cl.snapshot();
    expect((await snap.batchGet(['a', 'x'])).map(s)).toEqual(['2', '2']);
    expect((await snap.scan('', '')).map((p) => `${s(p.key)}=${s(p.value)}`)).toEqual(['a=2', 'x=2']);
  });

  it('falls back to 2PC when the store refuses 1PC with ServerIsBusy', async () => {
    const { cl, sent } = await start(true);
    await cl.txn((tx) => {
      tx.put('a', '1');
      tx.put('b', '1');
    }, { waitForSecondaries: true });
    expect(sent.map((x) => x.type + (x.type === 'prewrite' && x.onePc ? ':1pc' : ''))).toEqual(['prewrite:1pc', 'prewrite', 'commit', 'commit']);
    expect((await (await cl.snapshot()).batchGet(['a', 'b'])).map(s)).toEqual(['1', '1']);
  });

  it('snapshot reads resolve a dead client\'s locks across Regions; txnIf works over the wire', async () => {
    const { c, cl, store } = await start();
    c.splitAt('m');
    c.syncPlacement();
    await cl.txn((tx) => {
      tx.put('a', 'old');
      tx.put('x', 'old');
    });
    await cl
      .txn((tx) => {
        tx.put('a', 'new');
        tx.put('x', 'new');
      }, { lockTtlMs: 100, hooks: { afterPrewrite: () => { throw new Error('died'); } } })
      .catch(() => {});
    expect(store.locks.size).toBe(2);
    const snap = await cl.snapshot();
    expect((await snap.scan('', '')).map((p) => s(p.value))).toEqual(['old', 'old']);
    expect(store.locks.size).toBe(0);
    const r = await cl.txnIf([{ key: 'a', target: 'value', op: '=', value: 'old' }]).then([{ op: 'put', key: 'x', value: 'moved' }]).commit();
    expect(r.succeeded).toBe(true);
    expect(s(await (await cl.snapshot()).get('x'))).toBe('moved');
    expect(s(await (await cl.snapshot(r.commitTs - 1n)).get(b('x')))).toBe('old');
  });
});
