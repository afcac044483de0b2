import { afterEach, describe, expect, it } from 'vitest';
import { utf8, fromUtf8, type ClientResponse, type Region } from '@flotilla/proto';
import { startTestCluster, type TestCluster } from '@flotilla/store/testing';
import { RawStoreClient, waitFor } from './helpers';

// The embedded test cluster (@flotilla/store/testing) as a user's test gets
// it: it resolves once Region 1 has its leader and three voters.
let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

async function leaderOf(c: TestCluster, regionId: number) {
  return waitFor(`leader of region ${regionId}`, () => {
    for (const s of c.stores) {
      const p = s?.store.peers.get(regionId);
      if (p?.isLeader) return { handle: s!, peer: p };
    }
    return undefined;
  });
}

function header(region: Region) {
  return { regionId: region.id, regionEpoch: region.epoch };
}

describe('store cluster (3 stores, WebSocket transport, real SQLite)', () => {
  it('bootstraps, replicates Region 1 to three stores and serves writes and linearizable reads', async () => {
    cluster = await startTestCluster({ stores: 3 });
    const c = cluster;
    const { handle, peer } = await leaderOf(c, firstRegionId(c));
    // The replica checker grew Region 1 to three voters before startTestCluster returned.
    expect(peer.region.peers.filter((p) => p.role === 'voter')).toHaveLength(3);
    const client = new RawStoreClient(handle.address);
    const put = await client.call({ header: header(peer.region), op: 'write', writes: [{ type: 'put', key: utf8('k1'), value: utf8('v1') }] });
    expect(put.ok).toBe(true);
    const get = (await client.call({ header: header(peer.region), op: 'read', read: { type: 'get', key: utf8('k1') } })) as Extract<ClientResponse, { ok: true }>;
    expect(get.ok).toBe(true);
    expect(fromUtf8(get.value!)).toBe('v1');
    // Every replica applies the write.
    await waitFor('all replicas applied', () =>
      c.stores.every((s) => {
        const p = s!.store.peers.get(peer.regionId);
        return p && p.apply.appliedIndex >= peer.apply.appliedIndex;
      }),
    );
    // /metrics (Prometheus text) counts what the issue names; the leader's store saw this write through.
    const text = await (await fetch(`http://${handle.address}/metrics`)).text();
    const value = (name: string) => Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
    for (const name of ['flotilla_proposals_total', 'flotilla_entries_committed_total', 'flotilla_entries_applied_total', 'flotilla_poll_rounds_total', 'flotilla_fsyncs_total', 'flotilla_raft_messages_sent_total', 'flotilla_raft_messages_received_total', 'flotilla_reads_total']) {
      expect(value(name), name).toBeGreaterThanOrEqual(1);
    }
    expect(value('flotilla_hibernated_regions')).toBeGreaterThanOrEqual(0);
    expect(value('flotilla_leaders')).toBe(1);
    for (const h of ['flotilla_log_write_seconds', 'flotilla_apply_write_seconds', 'flotilla_command_seconds']) {
      expect(value(`${h}_count`), h).toBeGreaterThanOrEqual(1);
      expect(text).toContain(`# TYPE ${h} histogram`);
      expect(text).toContain(`${h}_bucket{le="+Inf"}`);
    }
    client.close();
  }, 60_000);
});

function firstRegionId(c: TestCluster): number {
  for (const s of c.stores) for (const id of s?.store.peers.keys() ?? []) return id;
  throw new Error('no region');
}
