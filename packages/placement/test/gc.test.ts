import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PlacementClient, PlacementError, composeTs, startPlacementServer, type PlacementServer } from '../src';
import { FsmStore } from '../src/raft/fsm-store';
import { PlacementStorage } from '../src/storage';

// GC safe points on placement: the leader's worker raises the cluster safe
// point to now - life time, bounded by live service safe points; every
// answer is committed, so a new leader (or a restart) knows as much.
// Real sockets, real SQLite files; the members' wall clock is shifted by
// the test (the clock option), so "ten minutes later" takes no time.

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

const GC = { lifeTimeMs: 60_000, intervalMs: 20 };

describe('placement GC safe points', () => {
  it('trails now by the life time, is bounded by a live service safe point, refuses a service below it, and shows it all in status', async () => {
    const root = mkdtempSync(join(tmpdir(), 'placement-gc-'));
    dirs.push(root);
    const s = await startPlacementServer({ dataDir: root, listen: '127.0.0.1:0', raftTiming: FAST, clock, gc: GC });
    servers.push(s);
    const c = client([s.address]);

    // The worker's first run puts the safe point at about now - 60 s.
    await expect.poll(() => c.getGcSafePoint(), { timeout: 5000, interval: 20 }).toBeGreaterThan(0n);
    const first = await c.getGcSafePoint();
    expect(first).toBeLessThanOrEqual(composeTs(clock() - GC.lifeTimeMs, 0));
    expect(first).toBeGreaterThan(composeTs(clock() - GC.lifeTimeMs - 5000, 0));

    // Below the safe point: refused, nothing registered.
    const below = await c.updateServiceSafePoint('backup-1', first - 1n, 60_000);
    expect(below).toMatchObject({ accepted: false, minServiceSafePoint: null });
    expect(below.gcSafePoint).toBeGreaterThanOrEqual(first);

    // A service safe point 30 s ahead of the safe point holds it there however far time moves.
    const held = composeTs(clock() - 30_000, 0);
    expect(await c.updateServiceSafePoint('backup-1', held, 60_000)).toMatchObject({ accepted: true, minServiceSafePoint: held });
    offsetMs = 40_000;
    await expect.poll(() => c.getGcSafePoint(), { timeout: 5000, interval: 20 }).toBe(held);
    const status = await c.getGcStatus();
    expect(status).toMatchObject({ safePoint: held, clusterSafePoint: held, gcLifeTimeMs: 60_000 });
    expect(status.services).toHaveLength(1);
    expect(status.services[0]).toMatchObject({ serviceId: 'backup-1', ts: held });
    expect(status.services[0]!.ttlLeftMs).toBeGreaterThan(10_000);
    expect(status.services[0]!.ttlLeftMs).toBeLessThanOrEqual(20_000);

    // A store's progress rides on its poll and shows in status (and over HTTP).
    await c.getGcSafePoint({ storeId: 7, safePoint: held, regionsDone: 3, versionsRemoved: 1234 });
    const http = (await (await fetch(`http://${s.address}/gc`)).json()) as Record<string, unknown>;
    expect(http).toMatchObject({ safePoint: held.toString(), services: [{ serviceId: 'backup-1', ts: held.toString() }], stores: [{ storeId: 7, regionsDone: 3, versionsRemoved: 1234, safePoint: held.toString() }] });

    // Removing it (ttl 0) lets the safe point move on to now - life time.
    expect(await c.updateServiceSafePoint('backup-1', 0n, 0)).toMatchObject({ accepted: true, minServiceSafePoint: null });
    await expect.poll(() => c.getGcSafePoint(), { timeout: 5000, interval: 20 }).toBeGreaterThan(held);
    expect((await c.getGcStatus()).services).toEqual([]);

    // An expired service safe point no longer holds anything.
    const shortHeld = composeTs(clock() - 10_000, 0);
    expect((await c.updateServiceSafePoint('watch-9', shortHeld, 1000)).accepted).toBe(true);
    offsetMs += 60_000;
    await expect.poll(() => c.getGcSafePoint(), { timeout: 5000, interval: 20 }).toBeGreaterThan(shortHeld);
    expect((await c.getGcStatus()).services).toEqual([]);

    // Bad input: a clear InvalidArgument naming the field.
    for (const [id, ttl] of [['', 1000], ['ok', -1], ['ok', 10 ** 12]] as const) {
      const err = await c.updateServiceSafePoint(id, 1n, ttl).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(PlacementError);
      expect((err as PlacementError).code).toBe('InvalidArgument');
      expect((err as PlacementError).message).toMatch(/serviceId|ttlMs/);
    }
  });

  it('survives a leader change and a restart: the new leader starts from the committed safe points', async () => {
    const root = mkdtempSync(join(tmpdir(), 'placement-gc-'));
    dirs.push(root);
    const names = ['p1', 'p2', 'p3'];
    const addresses = new Map<string, string>();
    for (const n of names) addresses.set(n, `127.0.0.1:${await freePort()}`);
    const initial = names.map((n) => `${n}=${addresses.get(n)!}`).join(',');
    const start = (n: string): Promise<PlacementServer> => startPlacementServer({ dataDir: join(root, n), listen: addresses.get(n)!, name: n, initialCluster: initial, raftTiming: FAST, clock, gc: GC });
    const group = new Map<string, PlacementServer | undefined>();
    for (const [i, s] of (await Promise.all(names.map(start))).entries()) group.set(names[i]!, s);
    servers.push(...[...group.values()].map((s) => s!));
    const c = client([...addresses.values()]);

    await expect.poll(() => c.getGcSafePoint(), { timeout: 10_000, interval: 20 }).toBeGreaterThan(0n);
    const held = composeTs(clock() - 20_000, 0);
    expect((await c.updateServiceSafePoint('backup-2', held, 600_000)).accepted).toBe(true);
    offsetMs = 120_000;
    await expect.poll(() => c.getGcSafePoint(), { timeout: 5000, interval: 20 }).toBe(held);

    // Stop the leader: the next one holds the same service safe point and the same cluster safe point.
    const leaderName = [...group].find(([, s]) => s!.member.isServing)![0];
    const old = group.get(leaderName)!;
    await old.close();
    servers.splice(servers.indexOf(old), 1);
    const status = await c.getGcStatus();
    expect(status.clusterSafePoint).toBe(held);
    expect(status.services.map((x) => [x.serviceId, x.ts])).toEqual([['backup-2', held]]);
    const newLeader = [...group].find(([n, s]) => n !== leaderName && s!.member.isServing)![0];

    // The stopped member comes back from its own files with the rows applied (and catches up).
    const back = await start(leaderName);
    servers.push(back);
    await c.updateServiceSafePoint('backup-2', 0n, 0);
    await expect.poll(() => c.getGcSafePoint(), { timeout: 5000, interval: 20 }).toBeGreaterThan(held);
    const moved = await c.getGcSafePoint();
    expect(newLeader).not.toBe(leaderName);
    // Every member applied the same rows: stop the others, so the restarted one must lead with them.
    for (const [n, s] of group) {
      if (n === leaderName || !s) continue;
      await s.close();
      servers.splice(servers.indexOf(s), 1);
    }
    const again = await Promise.all(names.filter((n) => n !== leaderName).map(start));
    servers.push(...again);
    await expect.poll(() => c.getGcStatus().then((x) => x.clusterSafePoint >= moved && x.services.length === 0), { timeout: 10_000, interval: 20 }).toBe(true);
  });

  it('carries the safe points in a placement snapshot (a member that catches up from one knows them)', () => {
    const root = mkdtempSync(join(tmpdir(), 'placement-gc-'));
    dirs.push(root);
    const a = PlacementStorage.open(join(root, 'a'), { clusterId: 1, maxReplicas: 3 }).storage;
    const b = PlacementStorage.open(join(root, 'b'), { clusterId: 1, maxReplicas: 3 }).storage;
    try {
      const from = new FsmStore(a);
      const big = (1n << 62n) + 12345n; // beyond a double's exact range
      from.gc.raiseClusterSafePoint(big);
      from.gc.raiseClusterSafePoint(5n); // never goes back
      from.gc.putService('backup-1', big + 1n, 1_000_000);
      from.gc.putService('gone', 7n, 1_000);
      from.gc.putService('gone', 0n, 0);
      const to = new FsmStore(b);
      to.gc.putService('stale', 9n, 5);
      to.restore(from.dump(), 10, 2, { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false });
      expect(to.gc.load()).toEqual({ clusterSafePoint: big, services: [{ serviceId: 'backup-1', ts: big + 1n, expireAtMs: 1_000_000 }] });
    } finally {
      a.close();
      b.close();
    }
  });
});
