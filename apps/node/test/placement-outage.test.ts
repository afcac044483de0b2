import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { PlacementClient } from '@flotilla/placement/client';
import { waitFor, type CliChild } from './helpers';
import { announced, httpJson, spawnStore, startPlacement, startStore, stopped, type StoreProc } from './processes';

// Restart without placement (issue #15, item 10), with real processes: a
// store that already belongs to a cluster starts from its own data while
// placement is down (cluster ID from store.json, peers' raft addresses from
// its address book), its Regions keep serving, and it registers again once
// placement is back. A brand-new store waits for placement instead of
// exiting. Before this, a store restarted without placement exited after
// 5 s, and a new one too.
//
// The client needs placement to route, so reads and writes go through a
// FlotillaClient whose region cache was warmed while placement was up;
// the Region's leader stays up, so the cache stays right.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-outage-'));
const children: CliChild[] = [];
const tuning = join(dir, 'tuning.json');
writeFileSync(tuning, JSON.stringify({ storeHeartbeatIntervalMs: 300, regionHeartbeatIntervalMs: 300 }));

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface RegionView {
  term: number;
  isLeader: boolean;
  appliedIndex: number;
  commitIndex: number;
}

/** freePort finds a port nothing listens on (bound and released at once). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('a store restarted while placement is down', () => {
  it('starts from its own data, its Regions keep serving, and it registers again when placement is back', async () => {
    const placementDir = join(dir, 'placement');
    let placement = await startPlacement(placementDir);
    children.push(placement.child);
    const stores: StoreProc[] = await Promise.all([1, 2, 3].map((i) => startStore(placement.address, join(dir, `store-${i}`), ['--tuning', tuning])));
    children.push(...stores.map((s) => s.child));
    const pc = new PlacementClient({ addresses: [placement.address] });
    const region = await waitFor('Region 1 with three voters and a leader', async () => {
      const r = await pc.getRegion(new Uint8Array());
      return r?.leader && r.region.peers.filter((p) => p.role === 'voter').length === 3 ? r : null;
    }, 60_000);
    pc.close();
    const regionId = region.region.id;
    const leader = stores.find((s) => s.storeId === region.leader!.storeId)!;
    const [follower, other] = stores.filter((s) => s !== leader) as [StoreProc, StoreProc];
    // Every store's address book knows both of its peers (refreshed from placement with each store heartbeat).
    for (const s of stores) {
      await waitFor(`store ${s.storeId}'s address book`, () => {
        const book = join(s.dataDir, 'address-book.json');
        return existsSync(book) && Object.keys((JSON.parse(readFileSync(book, 'utf8')) as { stores: object }).stores).length === 2;
      }, 30_000);
    }

    const client = await FlotillaClient.connect({ placement: placement.address, timeoutMs: 10_000 });
    try {
      await client.put('before', 'placement-up');
      expect(Buffer.from((await client.get('before'))!).toString()).toBe('placement-up');

      // Placement goes away; then a follower crashes and is restarted on the same data and address.
      placement.child.kill('SIGKILL');
      follower.child.kill('SIGKILL');
      await stopped(follower.child, 'SIGKILL');
      const restarted = spawnStore(placement.address, follower.dataDir, ['--tuning', tuning], follower.address);
      children.push(restarted);
      const info = await announced(restarted, 'the restarted store', 30_000);
      expect(info['storeId']).toBe(follower.storeId);
      expect(restarted.out.stderr).toContain('placement unreachable');
      const status = await httpJson<{ regions: number }>(`http://${follower.address}/status`);
      expect(status.regions).toBeGreaterThanOrEqual(1);
      // It rejoins its Region: the leader cannot dial its new raft port (placement is down), so the
      // restarted store dials the leader from its address book, within an election timeout or two.
      const leaderPeerId = region.leader!.id;
      await waitFor('the restarted store to follow the leader again', async () => {
        const [mine, theirs] = await Promise.all([httpJson<RegionView & { leaderId: number }>(`http://${follower.address}/regions/${regionId}`), httpJson<RegionView>(`http://${leader.address}/regions/${regionId}`)]);
        return mine.leaderId === leaderPeerId && mine.appliedIndex >= theirs.commitIndex;
      }, 20_000);

      // With the other follower down too, every commit needs the restarted store: writes and reads still work.
      other.child.kill('SIGKILL');
      await stopped(other.child, 'SIGKILL');
      await client.put('after', 'placement-down');
      expect(Buffer.from((await client.get('after'))!).toString()).toBe('placement-down');
      expect(Buffer.from((await client.get('before'))!).toString()).toBe('placement-up');
      const leaderView = await httpJson<RegionView>(`http://${leader.address}/regions/${regionId}`);
      await waitFor('the restarted store to apply the write', async () => (await httpJson<RegionView>(`http://${follower.address}/regions/${regionId}`)).appliedIndex >= leaderView.commitIndex, 10_000);

      // Placement comes back on its address: the store registers its new raft address.
      placement = await startPlacement(placementDir, placement.address);
      children.push(placement.child);
      const pc2 = new PlacementClient({ addresses: [placement.address] });
      try {
        await waitFor('placement to hold the restarted store\'s new raft address', async () => (await pc2.getStore(follower.storeId))?.labels?.['raftAddress'] === info['raftAddress'], 30_000);
      } finally {
        pc2.close();
      }
      await waitFor('the store to log that it registered', () => restarted.out.stderr.includes('registered with placement'), 10_000);
    } finally {
      client.close();
    }
  }, 180_000);
});

describe('a brand-new store', () => {
  it('waits for placement with a log line, then starts once placement is up', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const store = spawnStore(address, join(dir, 'new-store'), ['--tuning', tuning]);
    children.push(store);
    await waitFor('the store to say it is waiting for placement', () => {
      if (store.exitCode !== null) throw new Error(`the store exited with ${store.exitCode}: ${store.out.stderr}`);
      return store.out.stderr.includes('waiting for placement');
    }, 30_000);
    // Still waiting, not exited, well past the old 5 s limit.
    await waitFor('a second waiting line', () => store.out.stderr.split('waiting for placement').length > 2, 30_000);
    expect(store.exitCode).toBeNull();
    const placement = await startPlacement(join(dir, 'late-placement'), address, ['--max-replicas', '1']);
    children.push(placement.child);
    const info = await announced(store, 'the new store', 60_000);
    expect(info['storeId']).toBeGreaterThan(0);
  }, 120_000);
});
