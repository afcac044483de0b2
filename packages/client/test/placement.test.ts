import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PlacementClient, startPlacementServer, type PlacementServer } from '@flotilla/placement';
import { FlotillaClient } from '../src/index';
import { FakeCluster, s } from './fake-cluster';

// The real placement service in-process as the route provider: the client
// learns Regions and store addresses from it over its WebSocket API, while
// fake stores answer the data requests.

let dir: string | undefined;
let server: PlacementServer | undefined;
let cluster: FakeCluster | undefined;
let pc: PlacementClient | undefined;
let client: FlotillaClient | undefined;

afterEach(async () => {
  client?.close();
  pc?.close();
  await server?.close();
  await cluster?.shutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
  client = pc = server = cluster = dir = undefined;
});

describe('FlotillaClient with the real placement service', () => {
  it('routes through Regions and store addresses registered in placement', async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-client-'));
    server = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0' });
    cluster = await FakeCluster.start(3);
    pc = new PlacementClient({ addresses: [server.address] });
    const first = cluster.stores[0]!;
    await pc.bootstrap({ id: first.id, address: first.address }, cluster.regions[0]!.region);
    for (const st of cluster.stores.slice(1)) await pc.putStore({ id: st.id, address: st.address });
    // Leadership lives on store 2; placement has heard of no leader, so the client probes peers and follows the hint.
    cluster.setLeader(1, 2);

    client = await FlotillaClient.connect({ placement: server.address, timeoutMs: 5000 });
    await client.put('hello', 'world');
    expect(s(await client.get('hello'))).toBe('world');
    expect(client.cachedRegions()[0]?.leader?.storeId).toBe(2);
    const regions = await client.regions();
    expect(regions.map((r) => r.region.id)).toEqual([1]);
  });
});
