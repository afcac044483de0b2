import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { decode, encode, type Region } from '@flotilla/proto';
import { PlacementClient, startPlacementServer, type PlacementServer, type WireResponse } from '../src';

// A placement group of three members in one process: real sockets, real
// SQLite files, fast raft ticks (20 ms, elections after 200-400 ms).

const FAST = { tickMs: 20, electionTicks: 10, heartbeatTicks: 1 };
const empty = new Uint8Array();
const dirs: string[] = [];
const servers: PlacementServer[] = [];
const clients: PlacementClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'placement-raft-'));
  dirs.push(d);
  return d;
}

interface Group {
  root: string;
  initial: string;
  addresses: Map<string, string>;
  servers: Map<string, PlacementServer>;
}

async function startGroup(names: string[], extra: Record<string, unknown> = {}): Promise<Group> {
  const root = tempDir();
  const addresses = new Map<string, string>();
  for (const n of names) addresses.set(n, `127.0.0.1:${await freePort()}`);
  const initial = names.map((n) => `${n}=${addresses.get(n)!}`).join(',');
  const started = await Promise.all(
    names.map((n) => startPlacementServer({ dataDir: join(root, n), listen: addresses.get(n)!, name: n, initialCluster: initial, raftTiming: FAST, ...extra })),
  );
  servers.push(...started);
  return { root, initial, addresses, servers: new Map(names.map((n, i) => [n, started[i]!])) };
}

async function leaderOf(g: Group): Promise<[string, PlacementServer]> {
  let found: [string, PlacementServer] | undefined;
  await expect.poll(() => (found = [...g.servers].find(([, s]) => s.member.isServing)) !== undefined, { timeout: 10_000, interval: 20 }).toBe(true);
  return found!;
}

async function rawRequest(address: string, frame: unknown): Promise<WireResponse> {
  const ws = new WebSocket(`ws://${address}/ws`);
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  try {
    const answer = new Promise<WireResponse>((res) => ws.once('message', (d: Buffer) => res(decode(d) as WireResponse)));
    ws.send(encode(frame));
    return await answer;
  } finally {
    ws.terminate();
  }
}

function firstRegion(regionId: number, peerId: number, storeId: number): Region {
  return { id: regionId, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: peerId, storeId, role: 'voter' }] };
}

describe('placement as a 3-member Raft group', () => {
  it('has one leader; followers answer NotLeader with its address, the same typed errors for bad input, and relay HTTP reads', async () => {
    const g = await startGroup(['p1', 'p2', 'p3']);
    const [leaderName, leader] = await leaderOf(g);
    const followers = [...g.servers].filter(([n]) => n !== leaderName).map(([, s]) => s);
    expect(new Set([...g.servers.values()].map((s) => s.clusterId)).size).toBe(1);
    expect(leader.clusterId).toBeGreaterThan(0);

    const nl = await rawRequest(followers[0]!.address, { id: 5, method: 'allocId', params: { count: 1 } });
    expect(nl).toMatchObject({ id: 5, ok: false, error: { code: 'NotLeader', leader: leader.address } });
    // Bad input gets the same typed error from a follower as from the leader.
    for (const s of [leader, followers[0]!]) {
      expect(await rawRequest(s.address, { id: 6, method: 'allocId', params: { count: 0 } })).toMatchObject({ ok: false, error: { code: 'InvalidArgument' } });
      expect(await rawRequest(s.address, { id: 7, method: 'dropTables', params: {} })).toMatchObject({ ok: false, error: { code: 'UnknownMethod' } });
    }

    // A client given only the followers finds the leader, for calls safe to repeat and for bootstrap alike.
    const c = new PlacementClient({ addresses: followers.map((f) => f.address), reconnectBackoffMs: { initialMs: 10, maxMs: 100 } });
    clients.push(c);
    const [storeId, regionId, peerId] = (await c.allocId(3)) as [number, number, number];
    await c.bootstrap({ id: storeId, address: 's1:1' }, firstRegion(regionId, peerId, storeId));
    expect(await c.isBootstrapped()).toBe(true);

    // HTTP reads work against any member: a follower relays them to the leader.
    const res = await fetch(`http://${followers[1]!.address}/stores`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { stores: { id: number }[] }).stores.map((s) => s.id)).toEqual([storeId]);
    const health = (await (await fetch(`http://${followers[1]!.address}/health`)).json()) as { role: string; leader: string };
    expect(health).toMatchObject({ role: 'follower', leader: leader.address });

    // Prometheus metrics on every member, about itself.
    const leaderMetrics = await (await fetch(`http://${leader.address}/metrics`)).text();
    expect(leaderMetrics).toContain('placement_raft_role{role="leader"} 1');
    expect(leaderMetrics).toMatch(/placement_requests_total\{method="bootstrap"\} 1/);
    expect(leaderMetrics).toContain('placement_stores{state="up"} 1');
    const followerMetrics = await (await fetch(`http://${followers[0]!.address}/metrics`)).text();
    expect(followerMetrics).toContain('placement_raft_role{role="follower"} 1');
    expect(followerMetrics).toMatch(/placement_not_leader_total [1-9]/);
    expect(followerMetrics).toMatch(/placement_raft_term [1-9]/);

    const view = await c.call('getMembers', {});
    expect(view.members.map((m) => [m.name, m.role]).sort()).toEqual([...g.servers.keys()].map((n) => [n, n === leaderName ? 'leader' : 'voter']).sort());
  });

  it('keeps every acknowledged change and never repeats an ID or goes back in time across leader changes', async () => {
    const g = await startGroup(['p1', 'p2', 'p3'], { idStep: 10 });
    const c = new PlacementClient({ addresses: [...g.addresses.values()], requestTimeoutMs: 10_000, reconnectBackoffMs: { initialMs: 10, maxMs: 100 } });
    clients.push(c);
    const ids = new Set<number>();
    const take = async (n: number): Promise<number[]> => {
      const got = await c.allocId(n);
      for (const id of got) {
        expect(ids.has(id)).toBe(false);
        ids.add(id);
      }
      return got;
    };
    const [s1, r1, p1] = (await take(3)) as [number, number, number];
    await c.bootstrap({ id: s1, address: 's1:1' }, firstRegion(r1, p1, s1));
    let lastTs = await c.timestamp();
    for (let round = 0; round < 2; round++) {
      const [name, leader] = await leaderOf(g);
      const storeId = (await take(1))[0]!;
      await c.putStore({ id: storeId, address: `s${storeId}:1` });
      for (let i = 0; i < 5; i++) await take(7); // several steps of the ID window
      const ts = await c.timestamp();
      expect(ts).toBeGreaterThan(lastTs);
      lastTs = ts;
      // The leader stops (handing over), and comes back as a follower on the same data.
      await leader.close();
      servers.splice(servers.indexOf(leader), 1);
      const again = await startPlacementServer({ dataDir: join(g.root, name), listen: g.addresses.get(name)!, name, initialCluster: g.initial, raftTiming: FAST, idStep: 10 });
      servers.push(again);
      g.servers.set(name, again);
      expect(await c.timestamp()).toBeGreaterThan(lastTs);
      const stores = (await c.getAllStores()).map((s) => s.id);
      expect(stores).toContain(storeId);
    }
    expect(ids.size).toBeGreaterThan(70);
  });

  it('adds members online (learner first, from a snapshot), replaces one that lost its disk, and removes the leader', async () => {
    const small = { compactLogEntries: 20, keepLogEntries: 5 };
    const g = await startGroup(['p1', 'p2', 'p3'], small);
    const c = new PlacementClient({ addresses: [...g.addresses.values()], requestTimeoutMs: 10_000, reconnectBackoffMs: { initialMs: 10, maxMs: 100 } });
    clients.push(c);
    const [s1, r1, p1] = (await c.allocId(3)) as [number, number, number];
    await c.bootstrap({ id: s1, address: 's1:1' }, firstRegion(r1, p1, s1));
    // Enough changes that every member's log is compacted: a new member can only catch up from a snapshot.
    for (let i = 0; i < 30; i++) await c.putStore({ id: (await c.allocId(1))[0]!, address: `s${i + 2}:1` });
    // A member is added as a learner, and one that never catches up (nothing serves at its address) is never promoted.
    const ghostAddress = `127.0.0.1:${await freePort()}`;
    const ghost = await c.call('addMember', { name: 'p5', address: ghostAddress });
    expect(ghost.member.role).toBe('learner');
    expect((await c.call('addMember', { name: 'p5', address: ghostAddress })).member.id).toBe(ghost.member.id);
    await expect(c.call('addMember', { name: 'p5', address: 'elsewhere:1' })).rejects.toThrow(/already serves/);
    await expect(c.call('addMember', { name: 'p6', address: g.addresses.get('p1')! })).rejects.toThrow(/p1's address/);

    const join4 = async (name: string): Promise<PlacementServer> => {
      const address = `127.0.0.1:${await freePort()}`;
      const s = await startPlacementServer({ dataDir: join(g.root, `${name}-${Date.now()}`), listen: address, name, join: [...g.addresses.values()], raftTiming: FAST, ...small });
      servers.push(s);
      g.servers.set(name, s);
      g.addresses.set(name, address);
      return s;
    };
    const p4 = await join4('p4');
    const roles = async (): Promise<string> => (await c.call('getMembers', {})).members.map((m) => `${m.name}:${m.role === 'leader' ? 'voter' : m.role}`).sort().join(',');
    await expect.poll(roles, { timeout: 10_000, interval: 50 }).toBe('p1:voter,p2:voter,p3:voter,p4:voter,p5:learner');
    await c.call('removeMember', { name: 'p5' });
    expect(await roles()).toBe('p1:voter,p2:voter,p3:voter,p4:voter');
    expect(p4.member.engine.firstIndex(1)).toBeGreaterThan(1); // its log starts at a snapshot
    expect(p4.member.storage.loadState().stores).toHaveLength(31);
    expect(p4.clusterId).toBe(g.servers.get('p1')!.clusterId);

    // p3 loses its disk: remove it, then it joins again on a fresh directory under a new ID.
    const p3 = g.servers.get('p3')!;
    const oldId = (await c.call('getMembers', {})).members.find((m) => m.name === 'p3')!.id;
    await p3.close();
    servers.splice(servers.indexOf(p3), 1);
    g.addresses.delete('p3');
    expect((await c.call('removeMember', { name: 'p3' })).member.role).toBe('removed');
    await expect(c.call('removeMember', { name: 'p3' })).rejects.toThrow(/no placement member is named/);
    const p3again = await join4('p3');
    await expect.poll(roles, { timeout: 10_000, interval: 50 }).toBe('p1:voter,p2:voter,p3:voter,p4:voter');
    const newId = (await c.call('getMembers', {})).members.find((m) => m.name === 'p3')!.id;
    expect(newId).toBeGreaterThan(oldId);
    expect(p3again.member.storage.loadState().stores).toHaveLength(31);

    // Removing the leader: it hands leadership over, and the new leader removes it.
    const [leaderName] = await leaderOf(g);
    expect((await c.call('removeMember', { name: leaderName })).member.name).toBe(leaderName);
    await expect.poll(async () => (await c.call('getMembers', {})).members.map((m) => m.name).includes(leaderName), { timeout: 10_000 }).toBe(false);
    await expect.poll(() => (g.servers.get(leaderName)!.member.health() as { role: string }).role, { timeout: 10_000 }).toBe('removed');
    expect(await c.getAllStores()).toHaveLength(31);
  });
});

