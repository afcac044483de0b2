import { describe, expect, it } from 'vitest';
import { LocalNetwork } from '@flotilla/transport';
import { fromUtf8, utf8, type ClientResponse, type Region } from '@flotilla/proto';
import { RawStoreClient, startCluster, waitFor, type TestCluster } from './helpers';

// Lease-based reads (readOnly: 'lease-based'): the leader skips the
// ReadIndex round while its lease holds, and the lease is counted in the
// store's clock, not in raft ticks. The stores here read a clock the test
// can move forward: jumping it emulates a process that stalled (no ticks,
// no I/O) while real time went on — the case STORE_BUGS #6 describes, where
// a tick-counted lease stays "valid" and serves stale reads.

let offsetMs = 0;
const clock = () => performance.now() + offsetMs;

const hdr = (region: Region) => ({ regionId: region.id, regionEpoch: region.epoch });

describe('lease-based reads', () => {
  it('skip the ReadIndex round while the lease holds, and never trust a lease across a stall', async () => {
    const n = new LocalNetwork({ seed: 21 });
    const c: TestCluster = await startCluster(3, { transportFactory: (id) => n.transport(id), config: { readOnly: 'lease-based' }, now: clock });
    try {
      await leaseScenario(c, n);
    } finally {
      await c.close();
      n.close();
    }
  }, 60_000);
});

async function leaseScenario(c: TestCluster, n: LocalNetwork): Promise<void> {
  const id = [...c.stores[0]!.store.peers.keys()][0]!;
  const leaderOf = () =>
    waitFor('a leader with three voters', () => {
      for (const s of c.stores) {
        const p = s?.store.peers.get(id);
        if (p?.isLeader && p.region.peers.filter((x) => x.role === 'voter').length === 3) return { handle: s!, peer: p };
      }
      return undefined;
    }, 30_000);
  const { handle, peer } = await leaderOf();
  await waitFor('every store has the Region', () => c.stores.every((s) => s?.store.peers.get(id)?.initialized), 30_000);
  const client = new RawStoreClient(handle.address);
  try {
    const w = await client.call({ header: hdr(peer.region), op: 'write', writes: [{ type: 'put', key: utf8('k'), value: utf8('v1') }] });
    expect(w.ok).toBe(true);
    const read = async () => (await client.call({ header: hdr(peer.region), op: 'read', read: { type: 'get', key: utf8('k') } })) as ClientResponse;
    const m = handle.store.metrics;

    // The first read confirms leadership with a heartbeat round and starts the lease; the next one uses it.
    const r1 = await read();
    expect(r1.ok && fromUtf8(r1.value!)).toBe('v1');
    const leaseBefore = m.leaseReads;
    const r2 = await read();
    expect(r2.ok && fromUtf8(r2.value!)).toBe('v1');
    expect(m.leaseReads).toBe(leaseBefore + 1);

    // A stall longer than the lease: the leader must confirm again, not read on the old lease.
    offsetMs += 10_000;
    const r3 = await read();
    expect(r3.ok && fromUtf8(r3.value!)).toBe('v1');
    expect(m.leaseReads).toBe(leaseBefore + 1);
    // ...which renews it.
    const r4 = await read();
    expect(r4.ok && fromUtf8(r4.value!)).toBe('v1');
    expect(m.leaseReads).toBe(leaseBefore + 2);

    // Cut off and stalled past its lease, the leader still believes it
    // leads (its ticks have not caught up): it must not answer from
    // the lease; the read waits for a quorum that never comes and fails.
    n.isolate(handle.storeId);
    offsetMs += 10_000;
    const r5 = await read();
    expect(r5.ok).toBe(false);
    if (!r5.ok) expect(r5.error.type).toBe('NotLeader');
    expect(m.leaseReads).toBe(leaseBefore + 2);
  } finally {
    client.close();
  }
}
