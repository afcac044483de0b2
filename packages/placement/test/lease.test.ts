import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PlacementClient, PlacementError, startPlacementServer, type LeaseReaper, type PlacementServer } from '../src';

// Leases on placement: grant, keepalive, attach, revoke and expiry on the
// leader, replicated through the placement log (persisted across a restart
// and a leader change, where the new leader extends every lease to a full
// TTL). The transactional keyspace is a fake reaper here; the client's
// real one is tested against a cluster in packages/client/test/lease.test.ts.
// Real sockets and SQLite files; the members' clock is shifted by the test.

const FAST = { tickMs: 20, electionTicks: 10, heartbeatTicks: 1 };
const dirs: string[] = [];
const servers: PlacementServer[] = [];
const clients: PlacementClient[] = [];
let offsetMs = 0;
const clock = (): number => Date.now() + offsetMs;

afterEach(async () => {
  offsetMs = 0;
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

function client(addresses: string[]): PlacementClient {
  const c = new PlacementClient({ addresses, reconnectBackoffMs: { initialMs: 10, maxMs: 100 }, requestTimeoutMs: 5000 });
  clients.push(c);
  return c;
}

/** FakeReaper records what placement asks of the transactional keyspace; failing > 0 makes that many reaps fail first. */
class FakeReaper implements LeaseReaper {
  readonly installed: number[] = [];
  readonly reaped: { id: number; keys: string[] }[] = [];
  failing = 0;
  async install(id: number): Promise<void> {
    this.installed.push(id);
  }
  async reap(id: number, keys: readonly Uint8Array[]): Promise<void> {
    if (this.failing > 0) {
      this.failing--;
      throw new Error('planted reap failure');
    }
    this.reaped.push({ id, keys: keys.map((k) => new TextDecoder().decode(k)).sort() });
  }
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(PlacementError);
    return (err as PlacementError).code;
  }
}

describe('placement leases', () => {
  it('grants, keeps alive, attaches, revokes and expires, with typed errors for bad input, and keeps its leases across a restart', async () => {
    const root = mkdtempSync(join(tmpdir(), 'placement-lease-'));
    dirs.push(root);
    const reaper = new FakeReaper();
    const opts = { dataDir: root, listen: '127.0.0.1:0', raftTiming: FAST, clock, lease: { reaper, reapBackoffMs: { baseMs: 10, maxMs: 50 } } };
    let s = await startPlacementServer(opts);
    servers.push(s);
    let c = client([s.address]);

    const a = await c.leaseGrant(1000);
    expect(a.ttlMs).toBe(1000);
    expect(reaper.installed).toEqual([a.id]);
    await c.leaseAttach(a.id, enc('k1'));
    await c.leaseAttach(a.id, enc('k2'));
    await c.leaseAttach(a.id, enc('k1'));
    const info = await c.leaseTimeToLive(a.id, true);
    expect(info.remainingMs).toBeGreaterThan(0);
    expect(info.remainingMs).toBeLessThanOrEqual(1000);
    expect(info.keys!.map((k) => new TextDecoder().decode(k)).sort()).toEqual(['k1', 'k2']);
    expect((await c.leaseList()).map((l) => l.id)).toEqual([a.id]);

    // Bad input: typed errors, nothing granted.
    expect(await code(c.leaseKeepAlive(987654))).toBe('LeaseNotFound');
    expect(await code(c.leaseRevoke(987654))).toBe('LeaseNotFound');
    expect(await code(c.leaseAttach(987654, enc('x')))).toBe('LeaseNotFound');
    expect(await code(c.leaseTimeToLive(987654))).toBe('LeaseNotFound');
    expect(await code(c.leaseGrant(10))).toBe('InvalidArgument');
    expect(await code(c.leaseAttach(a.id, new Uint8Array(0)))).toBe('InvalidArgument');

    // Kept alive across twice its TTL: never reaped.
    for (let i = 0; i < 4; i++) {
      offsetMs += 500;
      await c.leaseKeepAlive(a.id);
    }
    expect(reaper.reaped).toEqual([]);

    // Revoke: its keys go in one reap, after which it is gone for every call.
    await c.leaseRevoke(a.id);
    expect(reaper.reaped).toEqual([{ id: a.id, keys: ['k1', 'k2'] }]);
    expect(await code(c.leaseKeepAlive(a.id))).toBe('LeaseNotFound');
    expect(await code(c.leaseAttach(a.id, enc('k3')))).toBe('LeaseNotFound');
    expect(await code(c.leaseTimeToLive(a.id))).toBe('LeaseNotFound');

    // Expiry: no keepalive for more than the TTL; the reap fails twice first and is retried.
    const b = await c.leaseGrant(1000);
    await c.leaseAttach(b.id, enc('b1'));
    reaper.failing = 2;
    offsetMs += 1100;
    await expect.poll(() => reaper.reaped.length, { timeout: 5000, interval: 20 }).toBe(2);
    expect(reaper.reaped[1]).toEqual({ id: b.id, keys: ['b1'] });
    expect(reaper.failing).toBe(0);
    expect(await code(c.leaseKeepAlive(b.id))).toBe('LeaseNotFound');

    // A restart keeps a live lease and its keys (with a full TTL again), and finishes a revocation left half done.
    const d = await c.leaseGrant(60_000);
    await c.leaseAttach(d.id, enc('d1'));
    const e = await c.leaseGrant(60_000);
    await c.leaseAttach(e.id, enc('e1'));
    reaper.failing = 1_000_000;
    const revoking = c.leaseRevoke(e.id).catch((err: unknown) => err);
    await expect.poll(() => code(c.leaseKeepAlive(e.id)), { timeout: 5000, interval: 20 }).toBe('LeaseNotFound');
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    expect(await revoking).toBeInstanceOf(PlacementError);
    reaper.failing = 0;
    s = await startPlacementServer(opts);
    servers.push(s);
    c = client([s.address]);
    await expect.poll(() => reaper.reaped.some((r) => r.id === e.id), { timeout: 5000, interval: 20 }).toBe(true);
    expect(reaper.reaped.find((r) => r.id === e.id)!.keys).toEqual(['e1']);
    const back = await c.leaseTimeToLive(d.id, true);
    expect(back.keys!.map((k) => new TextDecoder().decode(k))).toEqual(['d1']);
    expect(back.remainingMs).toBeGreaterThan(59_000);
    expect((await c.leaseList()).map((l) => l.id)).toEqual([d.id]);
    // IDs come from the allocator: never reused after the restart.
    const f = await c.leaseGrant(1000);
    expect([a.id, b.id, d.id, e.id]).not.toContain(f.id);
  });

  it('refuses grants when started without a reaper', async () => {
    const root = mkdtempSync(join(tmpdir(), 'placement-lease-'));
    dirs.push(root);
    const s = await startPlacementServer({ dataDir: root, listen: '127.0.0.1:0', raftTiming: FAST, clock });
    servers.push(s);
    expect(await code(client([s.address]).leaseGrant(1000))).toBe('Unsupported');
  });

  it('a new leader extends every lease to a full TTL, so none expires because of the failover, and keeps the attached keys', async () => {
    const root = mkdtempSync(join(tmpdir(), 'placement-lease-'));
    dirs.push(root);
    const names = ['p1', 'p2', 'p3'];
    const addresses = new Map<string, string>();
    for (const n of names) addresses.set(n, `127.0.0.1:${await freePort()}`);
    const initial = names.map((n) => `${n}=${addresses.get(n)!}`).join(',');
    const reaper = new FakeReaper();
    const group = await Promise.all(
      names.map((n) => startPlacementServer({ dataDir: join(root, n), listen: addresses.get(n)!, name: n, initialCluster: initial, raftTiming: FAST, clock, lease: { reaper } })),
    );
    servers.push(...group);
    const c = client([...addresses.values()]);
    // 3 s of the lease's 10 s left when its leader stops (room for a slow hand-over on a loaded machine).
    const l = await c.leaseGrant(10_000);
    await c.leaseAttach(l.id, enc('kept'));
    offsetMs += 7000;
    expect((await c.leaseTimeToLive(l.id)).remainingMs).toBeLessThanOrEqual(3000);

    const leader = group.find((s) => s.member.isServing)!;
    await leader.close();
    servers.splice(servers.indexOf(leader), 1);
    // Served by the new leader: a full TTL from when it took over, the key still attached, nothing reaped.
    const after = await c.leaseTimeToLive(l.id, true);
    expect(after.remainingMs).toBeGreaterThan(6000);
    expect(after.keys!.map((k) => new TextDecoder().decode(k))).toEqual(['kept']);
    expect(reaper.reaped).toEqual([]);
    await c.leaseKeepAlive(l.id);
    // And it still expires there once keepalives stop.
    offsetMs += 10_100;
    await expect.poll(() => reaper.reaped.map((r) => r.id), { timeout: 5000, interval: 20 }).toEqual([l.id]);
  });
});
