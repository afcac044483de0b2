import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PlacementError, startPlacementServer } from '../src';
import { addTransferLeader, cancelOperator } from '../src/admin';
import { PlacementCluster } from '../src/cluster';
import { ReplicaChecker } from '../src/schedule/replica-checker';
import { ClusterSim } from './sim/cluster-sim';

// Store removal (offline -> drained -> tombstone) and the hand-made
// operators behind `flotilla store remove`, `transfer-leader` and
// `operator cancel`, driven in process with the simulated cluster; then
// the HTTP admin routes' refusals on a real server socket.

let sims: ClusterSim[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const s of sims) s.close();
  sims = [];
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function newSim(opts: ConstructorParameters<typeof ClusterSim>[0]): ClusterSim {
  const s = new ClusterSim(opts);
  sims.push(s);
  return s;
}
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    if (e instanceof PlacementError) return e.code;
    throw e;
  }
  return undefined;
};

describe('store removal', () => {
  it('moves every peer (leaders first handed over) off an offline store, then tombstones it, never below a live quorum', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 4 })] });
    // Store 0 holds a voter of every Region and leads all of them.
    sim.setup(5, 12, (i) => [0, 1 + (i % 4), 1 + ((i + 1) % 4)]);
    sim.round();
    const gone = sim.storeIds()[0]!;
    expect(sim.cluster.offlineStore(gone).state).toBe('offline');
    const rounds = sim.runUntil(() => sim.cluster.storeInfo(gone)?.state === 'tombstone', 300);
    expect(rounds).toBeGreaterThan(0);
    expect(sim.regionCounts().get(gone)).toBe(0);
    expect(sim.leaderCounts().get(gone)).toBe(0);
    expect(sim.allHealthy(3)).toBe(true);
    expect(sim.stepsApplied.transferLeader).toBeGreaterThanOrEqual(12);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0);
    // A tombstone may not come back under its ID.
    expect(codeOf(() => sim.cluster.dispatch('putStore', { store: { id: gone, address: '10.9.9.9:1' } }))).toBe('StoreTombstone');
    expect(codeOf(() => sim.cluster.dispatch('storeHeartbeat', { stats: { storeId: gone, capacityBytes: 0, usedBytes: 0, availableBytes: 0, regionCount: 0, leaderCount: 0 } }))).toBe('StoreTombstone');
  });

  it('refuses to take a store offline when the others cannot hold max-replicas voters, and tombstones an empty store at once', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 4 })] });
    sim.setup(3, 4, () => [0, 1, 2]);
    sim.round();
    const [a] = sim.storeIds();
    let message = '';
    try {
      sim.cluster.offlineStore(a!);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/only 2 other live stores .* fewer than max-replicas 3: add a store first/);
    expect(sim.cluster.storeInfo(a!)?.state).toBe('up');
    const empty = sim.addStore();
    expect(sim.cluster.offlineStore(empty).state).toBe('tombstone');
    expect(codeOf(() => sim.cluster.offlineStore(999_999))).toBe('StoreNotFound');
  });

  it('keeps a store offline across a placement restart', () => {
    const dir = mkdtempSync(join(tmpdir(), 'placement-admin-'));
    dirs.push(dir);
    const open = (): PlacementCluster => new PlacementCluster({ dataDir: dir, maxReplicas: 1 });
    const c = open();
    const [storeId, regionId, peerId, other] = c.allocId(4);
    c.bootstrap({ store: { id: storeId!, address: '10.0.0.1:1' }, region: { id: regionId!, startKey: new Uint8Array(), endKey: new Uint8Array(), epoch: { confVer: 1, version: 1 }, peers: [{ id: peerId!, storeId: storeId!, role: 'voter' }] } });
    c.putStore({ id: other!, address: '10.0.0.2:1' });
    expect(c.offlineStore(storeId!).state).toBe('offline');
    c.close();
    const again = open();
    expect(again.storeInfo(storeId!)?.state).toBe('offline');
    // Re-registering (a store restart) keeps it offline.
    expect(again.putStore({ id: storeId!, address: '10.0.0.1:2' }).state).toBe('offline');
    again.close();
  });
});

describe('hand-made operators', () => {
  it('transfer-leader runs in the next heartbeat; refusals name why; cancel drops an operator', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [] });
    sim.setup(4, 3, () => [0, 1, 2]);
    sim.round();
    const [, s1, s2, s3] = sim.storeIds();
    const [r1, r2] = [...sim.regions.keys()];
    const added = addTransferLeader(sim.cluster, r1!, s1!);
    expect('operator' in added && added.operator.scheduler).toBe('admin');
    sim.round();
    expect(sim.leaderCounts().get(s1!)).toBe(1);
    sim.round(); // the heartbeat that shows the new leader finishes the operator
    expect(sim.cluster.operators.get(r1!)).toBeUndefined();
    expect(sim.cluster.operators.stats.finished).toBe(1);
    expect(addTransferLeader(sim.cluster, r1!, s1!)).toEqual({ alreadyLeader: true });
    expect(() => addTransferLeader(sim.cluster, r1!, s3!)).toThrow(/store \d+ holds no peer of region \d+ \(peers: /);
    expect(codeOf(() => addTransferLeader(sim.cluster, 999_999, s1!))).toBe('RegionNotFound');
    // One operator per Region: a second is refused; cancel frees the Region.
    sim.regions.get(r2!)!.ignoreOperators = true;
    addTransferLeader(sim.cluster, r2!, s1!);
    expect(() => addTransferLeader(sim.cluster, r2!, s2!)).toThrow(/refused: region \d+ already has operator \d+/);
    expect(cancelOperator(sim.cluster, r2!).kind).toBe('transfer-leader');
    expect(sim.cluster.operators.get(r2!)).toBeUndefined();
    expect(sim.cluster.operators.stats.canceled).toBe(1);
    expect(codeOf(() => cancelOperator(sim.cluster, r2!))).toBe('OperatorNotFound');
  });
});

describe('HTTP admin routes', () => {
  it('need a JSON body for POST, answer typed errors with 4xx, and leave GET as it was', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placement-admin-http-'));
    dirs.push(dir);
    const server = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0' });
    try {
      const call = async (method: string, path: string, body?: string, type?: string): Promise<{ status: number; code?: string; message?: string }> => {
        const res = await fetch(`${server.httpUrl}${path}`, { method, ...(body !== undefined ? { body } : {}), headers: type ? { 'content-type': type } : {}, signal: AbortSignal.timeout(5000) });
        const json = (await res.json()) as { error?: { code: string; message: string } };
        return { status: res.status, ...(json.error ? { code: json.error.code, message: json.error.message } : {}) };
      };
      const good = JSON.stringify({ type: 'transfer-leader', regionId: 1, storeId: 2 });
      expect(await call('POST', '/operators', good, 'text/plain')).toMatchObject({ status: 400, message: expect.stringContaining('Content-Type: application/json') });
      expect(await call('POST', '/operators', '{"type":"split"}', 'application/json')).toMatchObject({ status: 400, message: expect.stringContaining('expected {"type":"transfer-leader"') });
      expect(await call('POST', '/operators', 'nope', 'application/json')).toMatchObject({ status: 400, message: expect.stringContaining('not JSON') });
      expect(await call('POST', '/operators', good, 'application/json')).toMatchObject({ status: 404, code: 'RegionNotFound' });
      expect(await call('DELETE', '/operators/7')).toMatchObject({ status: 404, code: 'OperatorNotFound' });
      expect(await call('DELETE', '/stores/3')).toMatchObject({ status: 409, code: 'NotBootstrapped' });
      expect(await call('DELETE', '/stores/x')).toMatchObject({ status: 400, code: 'InvalidArgument' });
      expect(await call('POST', '/stores/3')).toMatchObject({ status: 405, message: expect.stringContaining('not an admin route') });
      expect(await call('PUT', '/operators')).toMatchObject({ status: 405 });
      expect((await call('GET', '/operators')).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
