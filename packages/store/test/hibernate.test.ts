import { afterEach, describe, expect, it } from 'vitest';
import { LocalNetwork } from '@flotilla/transport';
import { utf8, type ClientResponse, type Region } from '@flotilla/proto';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

let cluster: TestCluster | undefined;
let net: LocalNetwork | undefined;
afterEach(async () => {
  await cluster?.close();
  net?.close();
});

function hdr(region: Region) {
  return { regionId: region.id, regionEpoch: region.epoch };
}

const REGIONS = 1000;
const key = (i: number) => utf8(`k${String(i).padStart(5, '0')}`);

describe('many Regions per store', () => {
  it(`${REGIONS} pre-split Regions elect leaders, serve writes, then hibernate and stop ticking`, async () => {
    net = new LocalNetwork({ seed: 11 });
    const nn = net;
    // Balancing would legitimately move leaders (and wake Regions); this test is about idleness.
    cluster = await startCluster(3, { transportFactory: (id) => nn.transport(id), config: { hibernateAfterTicks: 10 } }, { balanceLeader: false, balanceRegion: false });
    const c = cluster;
    const first = [...c.stores[0]!.store.peers.keys()][0]!;
    const lead = () =>
      waitFor('leader', () => {
        for (const s of c.stores) {
          const p = s!.store.peers.get(first);
          if (p?.isLeader) return { s: s!, p };
        }
        return undefined;
      });
    let { s, p } = await lead();
    await waitFor('three voters', () => p.region.peers.filter((x) => x.role === 'voter').length === 3, 30_000);
    // Split Region 1 into REGIONS Regions, at most 64 keys per BatchSplit, right to left so the
    // leader keeps the rest. Leadership may move meanwhile (balance-leader): each round recomputes
    // what is still to split from the Region's current range, so a retried split never repeats.
    const keys = Array.from({ length: REGIONS - 1 }, (_, i) => key(i + 1));
    await waitFor(
      'pre-split done',
      async () => {
        ({ s, p } = await lead());
        const end = p.region.endKey;
        const todo = keys.filter((k) => end.length === 0 || Buffer.compare(Buffer.from(k), Buffer.from(end)) < 0);
        if (todo.length === 0) return true;
        const client = new RawStoreClient(s.address);
        try {
          await client.call({ header: hdr(p.region), op: 'split', splitKeys: todo.slice(-64) });
        } finally {
          client.close();
        }
        return false;
      },
      120_000,
    );
    await waitFor('every store hosts every Region', () => c.stores.every((st) => st!.store.peers.size === REGIONS), 60_000);
    await waitFor('every Region has a leader', () => {
      let leaders = 0;
      for (const st of c.stores) leaders += (st!.store.status() as { leaders: number }).leaders;
      return leaders === REGIONS;
    }, 60_000);
    // One write per Region, through its leader, all in flight at once.
    const written = new Set<number>();
    const clients = new Map<string, RawStoreClient>();
    const t0 = Date.now();
    await waitFor('one write acknowledged by every Region', async () => {
      const calls: Promise<void>[] = [];
      for (const st of c.stores) {
        for (const peer of st!.store.peers.values()) {
          if (!peer.isLeader || written.has(peer.regionId)) continue;
          let cl = clients.get(st!.address);
          if (!cl) clients.set(st!.address, (cl = new RawStoreClient(st!.address)));
          const k = peer.region.startKey.length === 0 ? utf8('a') : peer.region.startKey;
          const regionId = peer.regionId;
          calls.push(
            cl.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: k, value: utf8('v') }] }).then((res: ClientResponse) => {
              if (res.ok) written.add(regionId);
            }),
          );
        }
      }
      await Promise.all(calls);
      return written.size === REGIONS;
    }, 60_000);
    for (const cl of clients.values()) cl.close();
    console.log(`wrote to ${REGIONS} regions in ${Date.now() - t0} ms`);
    // Then everything goes quiet: all peers hibernate and ticks stop.
    const t1 = Date.now();
    await waitFor('all peers hibernated', () => c.stores.every((st) => (st!.store.status() as { hibernated: number }).hibernated === REGIONS), 60_000);
    console.log(`hibernated in ${Date.now() - t1} ms`);
    const ticksBefore = c.stores.map((st) => st!.store.metrics.peerTicks);
    const roundsBefore = c.stores.map((st) => st!.store.metrics.tickRounds);
    await waitFor('ten more base ticks', () => c.stores.every((st, i) => st!.store.metrics.tickRounds >= roundsBefore[i]! + 10));
    const ticksAfter = c.stores.map((st) => st!.store.metrics.peerTicks);
    expect(ticksAfter).toEqual(ticksBefore);
  }, 180_000);
});
