import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { encode, type Region } from '@flotilla/proto';
import { PlacementCluster } from '../src/cluster';
import { PlacementClient, PlacementStorageError } from '../src';
import { DB_FILE_NAME } from '../src/storage';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'placement-persist-'));
  dirs.push(d);
  return d;
}

const empty = new Uint8Array();
function firstRegion(regionId: number, peerId: number, storeId: number): Region {
  return { id: regionId, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: peerId, storeId, role: 'voter' }] };
}

describe('persistence across restarts (in process)', () => {
  it('keeps cluster meta, stores, Regions, leaders and the ID high-water mark', () => {
    const dir = tempDir();
    const a = new PlacementCluster({ dataDir: dir, maxReplicas: 5, clusterId: 4242 });
    const [storeId, regionId, peerId, store2] = a.allocId(4) as [number, number, number, number];
    a.dispatch('bootstrap', { store: { id: storeId, address: 'h1:1', labels: { zone: 'a' } }, region: firstRegion(regionId, peerId, storeId) });
    a.dispatch('putStore', { store: { id: store2, address: 'h2:1' } });
    const splitIds = a.askBatchSplit(firstRegion(regionId, peerId, storeId), 1);
    const newRegionId = splitIds[0]!.newRegionId;
    const left: Region = { ...firstRegion(regionId, peerId, storeId), endKey: Buffer.from('m'), epoch: { version: 2, confVer: 1 } };
    const right: Region = { id: newRegionId, startKey: Buffer.from('m'), endKey: empty, epoch: { version: 2, confVer: 1 }, peers: [{ id: splitIds[0]!.newPeerIds[0]!, storeId, role: 'voter' }] };
    a.dispatch('reportBatchSplit', { regions: [left, right] });
    a.dispatch('regionHeartbeat', { region: right, leader: right.peers[0], approximateSizeBytes: 1000, approximateKeys: 50 });
    // A size-only change inside statsPersistIntervalMs is held back from the batch, but a clean close still writes it.
    a.dispatch('regionHeartbeat', { region: right, leader: right.peers[0], approximateSizeBytes: 1234, approximateKeys: 56 });
    const lastIds = a.allocId(10);
    const clusterId = a.clusterId;
    a.close();

    const b = new PlacementCluster({ dataDir: dir });
    expect(b.clusterId).toBe(clusterId);
    expect(clusterId).toBe(4242);
    expect(b.maxReplicas).toBe(5);
    expect(b.isBootstrapped()).toBe(true);
    expect(b.allStores().map((s) => [s.id, s.address, s.labels])).toEqual([
      [storeId, 'h1:1', { zone: 'a' }],
      [store2, 'h2:1', undefined],
    ]);
    expect(b.tree.all().map((r) => r.region.id)).toEqual([regionId, newRegionId]);
    const r = b.tree.search(Buffer.from('zzz'))!;
    expect(r.region.id).toBe(newRegionId);
    expect(r.leader?.id).toBe(right.peers[0]!.id);
    expect(r.approximateSizeBytes).toBe(1234);
    expect(b.regionCountOf(storeId)).toBe(2);
    expect(b.leaderCountOf(storeId)).toBe(1);
    expect(Math.min(...b.allocId(3))).toBeGreaterThan(Math.max(...lastIds));
    expect(() => b.dispatch('bootstrap', { store: { id: 99, address: 'x:1' }, region: firstRegion(98, 97, 99) })).toThrow(/already bootstrapped/);
    b.close();
  });

  it('keeps operators in flight across a restart', () => {
    const dir = tempDir();
    const a = new PlacementCluster({ dataDir: dir, maxReplicas: 3, balanceLeader: false, balanceRegion: false });
    const [s1, s2, s3, regionId, peerId] = a.allocId(5) as [number, number, number, number, number];
    const region = firstRegion(regionId, peerId, s1);
    a.dispatch('bootstrap', { store: { id: s1, address: 'h1:1' }, region });
    a.dispatch('putStore', { store: { id: s2, address: 'h2:1' } });
    a.dispatch('putStore', { store: { id: s3, address: 'h3:1' } });
    a.dispatch('regionHeartbeat', { region, leader: region.peers[0], approximateSizeBytes: 1, approximateKeys: 1 });
    expect(a.runSchedulers()).toBe(1);
    const op = a.operators.get(regionId)!;
    expect(op.steps.map((s) => s.type)).toEqual(['addLearner', 'promoteLearner']);
    a.close();
    const b = new PlacementCluster({ dataDir: dir, balanceLeader: false, balanceRegion: false });
    expect(b.operators.get(regionId)).toEqual(op);
    // The restored operator still drives the Region: the next heartbeat gets its first step.
    const resp = b.dispatch('regionHeartbeat', { region, leader: region.peers[0], approximateSizeBytes: 1, approximateKeys: 1 }) as { operator?: { operatorId: number } };
    expect(resp.operator?.operatorId).toBe(op.id);
    b.close();
  });

  it('resolves overlapping persisted Regions by the normal rule and deletes the loser', () => {
    const dir = tempDir();
    const a = new PlacementCluster({ dataDir: dir });
    const [storeId, regionId, peerId] = a.allocId(3) as [number, number, number];
    a.dispatch('bootstrap', { store: { id: storeId, address: 'h1:1' }, region: firstRegion(regionId, peerId, storeId) });
    a.close();
    // A stale Region row covering part of the key space, as a cut batch could leave behind.
    const db = new Database(join(dir, DB_FILE_NAME));
    const stale: Region = { id: 500, startKey: Buffer.from('a'), endKey: Buffer.from('c'), epoch: { version: 0, confVer: 1 }, peers: [{ id: 501, storeId, role: 'voter' }] };
    db.prepare('INSERT INTO regions (id, meta, leader_peer_id, size_bytes, keys) VALUES (?, ?, NULL, 0, 0)').run(500, encode(stale));
    db.close();
    const b = new PlacementCluster({ dataDir: dir });
    expect(b.tree.all().map((r) => r.region.id)).toEqual([regionId]);
    b.close();
    const check = new Database(join(dir, DB_FILE_NAME));
    expect((check.prepare('SELECT COUNT(*) AS n FROM regions').get() as { n: number }).n).toBe(1);
    check.close();
  });

  it('rejects a bad configuration before touching the database', () => {
    const dir = tempDir();
    expect(() => new PlacementCluster({ dataDir: dir, maxReplicas: 0 })).toThrow(/maxReplicas: 0/);
    expect(() => new PlacementCluster({ dataDir: dir, maxStoreDownTimeMs: -5 })).toThrow(/maxStoreDownTimeMs/);
    new PlacementCluster({ dataDir: dir }).close(); // not left locked
  });

  it('refuses a file that is not a database, naming the path', () => {
    const dir = tempDir();
    writeFileSync(join(dir, DB_FILE_NAME), Buffer.alloc(8192, 0x5a));
    let err: unknown;
    try {
      new PlacementCluster({ dataDir: dir });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlacementStorageError);
    expect((err as Error).message).toContain(join(dir, DB_FILE_NAME));
    expect((err as Error).message).toMatch(/not a valid placement database/);
  });

  it('refuses a database written by a newer format', () => {
    const dir = tempDir();
    new PlacementCluster({ dataDir: dir }).close();
    const db = new Database(join(dir, DB_FILE_NAME));
    db.prepare("UPDATE meta SET value = 99 WHERE key = 'schema_version'").run();
    db.close();
    expect(() => new PlacementCluster({ dataDir: dir })).toThrow(/newer format \(schema 99/);
  });

  it('refuses corrupt rows and a data directory already in use', () => {
    const dir = tempDir();
    const a = new PlacementCluster({ dataDir: dir });
    expect(() => new PlacementCluster({ dataDir: dir })).toThrow(/in use by another placement server/);
    a.close();
    const db = new Database(join(dir, DB_FILE_NAME));
    db.prepare("UPDATE meta SET value = 'banana' WHERE key = 'id_high_water'").run();
    db.close();
    expect(() => new PlacementCluster({ dataDir: dir })).toThrow(/id_high_water is banana/);
  });
});

const MAIN = resolve(__dirname, '../src/main.ts');

/** startChild runs main.ts in a child process and resolves with its printed address. */
async function startChild(dataDir: string): Promise<{ child: ChildProcess; address: string; httpUrl: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const line = await new Promise<string>((res, rej) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => rej(new Error(`placement child did not start within 20 s: ${stderr}`)), 20_000);
    rl.once('line', (l) => {
      clearTimeout(timer);
      res(l);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`placement child exited with ${code}: ${stderr}`));
    });
  });
  const info = JSON.parse(line) as { address: string; httpUrl: string };
  return { child, address: info.address, httpUrl: info.httpUrl };
}

describe('crash safety (child process, SIGKILL)', () => {
  it('loses no store, Region or allocated ID when killed with SIGKILL', async () => {
    const dir = tempDir();
    const first = await startChild(dir);
    const c1 = new PlacementClient({ addresses: [first.address], requestTimeoutMs: 10_000 });
    const handedOut: number[] = [];
    for (let i = 0; i < 30; i++) handedOut.push(...(await c1.allocId(97))); // crosses several high-water bumps
    const [storeId, regionId, peerId, store2] = handedOut.slice(-4) as [number, number, number, number];
    await c1.bootstrap({ id: storeId, address: '127.0.0.1:20160' }, firstRegion(regionId, peerId, storeId));
    await c1.putStore({ id: store2, address: '127.0.0.1:20161' });
    const [split] = await c1.askBatchSplit(firstRegion(regionId, peerId, storeId), 1);
    handedOut.push(split!.newRegionId, ...split!.newPeerIds);
    const left: Region = { ...firstRegion(regionId, peerId, storeId), endKey: Buffer.from('m'), epoch: { version: 2, confVer: 1 } };
    const right: Region = { id: split!.newRegionId, startKey: Buffer.from('m'), endKey: empty, epoch: { version: 2, confVer: 1 }, peers: [{ id: split!.newPeerIds[0]!, storeId, role: 'voter' }] };
    expect(await c1.reportBatchSplit([left, right])).toBe(2);
    // A heartbeat is persisted by the next batch flush; wait until /status shows nothing pending.
    await c1.regionHeartbeat({ region: left, leader: left.peers[0]!, approximateSizeBytes: 777, approximateKeys: 7 });
    const pendingWrites = async () => ((await (await fetch(`${first.httpUrl}/status`)).json()) as { pendingWrites: number }).pendingWrites;
    await expect.poll(pendingWrites, { timeout: 10_000, interval: 20, message: 'placement flushed its pending writes' }).toBe(0);
    c1.close();
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));

    const second = await startChild(dir);
    const c2 = new PlacementClient({ addresses: [second.address], requestTimeoutMs: 10_000 });
    expect(await c2.isBootstrapped()).toBe(true);
    expect((await c2.getAllStores()).map((s) => s.id)).toEqual([storeId, store2].sort((a, b) => a - b));
    const regions = await c2.scanRegions(empty, empty, 100);
    expect(regions.map((r) => r.region.id)).toEqual([regionId, split!.newRegionId]);
    expect(regions[0]!.leader?.id).toBe(peerId);
    const fresh = await c2.allocId(50);
    expect(Math.min(...fresh)).toBeGreaterThan(Math.max(...handedOut));
    expect(new Set([...handedOut, ...fresh]).size).toBe(handedOut.length + fresh.length);
    c2.close();
  });
});
