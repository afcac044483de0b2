import { afterEach, describe, expect, it } from 'vitest';
import { utf8, type Region } from '@flotilla/proto';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

// Load-based split end to end (src/operation/load-split*.ts): a real store
// (real SQLite, real sockets, real placement) whose one Region is small by
// size but takes steady traffic splits by load, at a key inside the range
// the traffic hits.

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

const key = (i: number): Uint8Array => utf8(`k${String(i).padStart(4, '0')}`);
const hdr = (r: Region) => ({ regionId: r.id, regionEpoch: r.epoch });

describe('load-based split', () => {
  it('splits a Region hammered with reads over a key range at a key inside that range', async () => {
    // Thresholds scaled to the test: 100 requests a second over 2 windows of 300 ms.
    cluster = await startCluster(1, { config: { loadSplitQps: 100, loadSplitBytesPerSec: 0, loadSplitWindowMs: 300, loadSplitWindows: 2 } }, { mergeChecker: false });
    const s = cluster.stores[0]!;
    const peer = await waitFor('leader of the first Region', () => [...s.store.peers.values()].find((p) => p.isLeader));
    const client = new RawStoreClient(s.address);
    try {
      // 200 keys: a few KiB, far below the demo profile's size threshold.
      for (let i = 0; i < 200; i++) {
        const r = await client.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: key(i), value: utf8('v') }] });
        expect(r.ok).toBe(true);
      }
      expect(s.store.metrics.loadSplits).toBe(0);
      let i = 0;
      // Reads of keys 50..149 only, 32 at a time, until the Region has split.
      await waitFor(
        'a split by load',
        async () => {
          const region = peer.region;
          await Promise.all(Array.from({ length: 32 }, () => client.call({ header: hdr(region), op: 'read', read: { type: 'get', key: key(50 + (i++ % 100)) } })));
          return s.store.metrics.loadSplits > 0 && s.store.peers.size >= 2;
        },
        20_000,
        0,
      );
    } finally {
      client.close();
    }
    const regions = [...s.store.peers.values()].map((p) => p.region).sort((a, b) => Buffer.compare(Buffer.from(a.startKey), Buffer.from(b.startKey)));
    const boundary = Buffer.from(regions[1]!.startKey).toString();
    // The split key balances the load of keys 50..149, so it lies well inside that range.
    expect(boundary > 'k0060' && boundary < 'k0140').toBe(true);
  }, 40_000);
});
