import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { decode, encode, type Region } from '@flotilla/proto';
import { PlacementClient, PlacementError, startPlacementServer, type PlacementServer, type WireResponse } from '../src';

const empty = new Uint8Array();
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'placement-server-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** RawConn sends arbitrary frames and reads responses in order. */
class RawConn {
  private queue: WireResponse[] = [];
  private waiters: ((r: WireResponse) => void)[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d: Buffer) => {
      const r = decode(d) as WireResponse;
      const w = this.waiters.shift();
      if (w) w(r);
      else this.queue.push(r);
    });
  }
  static async open(url: string): Promise<RawConn> {
    const ws = new WebSocket(url);
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    return new RawConn(ws);
  }
  next(): Promise<WireResponse> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error('no response within 5 s')), 5000);
      this.waiters.push((x) => {
        clearTimeout(t);
        res(x);
      });
    });
  }
  async request(frame: Uint8Array | string): Promise<WireResponse> {
    this.ws.send(frame);
    return this.next();
  }
  close(): void {
    this.ws.terminate();
  }
}

function expectError(r: WireResponse, code: string, message?: RegExp): void {
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.error.code).toBe(code);
  if (message) expect(r.error.message).toMatch(message);
}

describe('placement server: bad input keeps it serving', () => {
  let server: PlacementServer;
  let conn: RawConn;
  beforeAll(async () => {
    server = await startPlacementServer({ dataDir: tempDir(), listen: '127.0.0.1:0' });
    conn = await RawConn.open(server.wsUrl);
  });
  afterAll(async () => {
    conn.close();
    await server.close();
  });

  it('answers malformed frames, unknown methods and bad params with typed errors', async () => {
    expectError(await conn.request(Buffer.from([0x85, 0xa3, 0x61])), 'MalformedFrame', /malformed msgpack/);
    expectError(await conn.request(Buffer.from([0xc1, 0xff, 0x00])), 'MalformedFrame');
    expectError(await conn.request('{"id":1}'), 'MalformedFrame', /text frames/);
    expectError(await conn.request(encode([1, 2, 3])), 'MalformedFrame');
    expectError(await conn.request(encode({ id: 7 })), 'MalformedFrame', /method/);
    const unknown = await conn.request(encode({ id: 8, method: 'dropAllTables', params: {} }));
    expect(unknown.id).toBe(8);
    expectError(unknown, 'UnknownMethod', /dropAllTables/);
    const missing = await conn.request(encode({ id: 9, method: 'allocId', params: {} }));
    expect(missing.id).toBe(9);
    expectError(missing, 'InvalidArgument', /count/);
    expectError(await conn.request(encode({ id: 10, method: 'allocId', params: { count: 1e9 } })), 'InvalidArgument', /count/);
    expectError(await conn.request(encode({ id: 11, method: 'getRegion', params: { key: 'not-bytes' } })), 'InvalidArgument', /key: expected bytes/);
    expectError(await conn.request(encode({ id: 12, method: 'getRegion', params: { key: Buffer.alloc(10_000) } })), 'InvalidArgument', /key longer than/);
    expectError(await conn.request(encode({ id: 13, method: 'regionHeartbeat', params: { region: { id: 1 } } })), 'InvalidArgument', /region\.startKey/);
    expectError(await conn.request(encode({ id: 14, method: 'regionHeartbeat', params: {} })), 'InvalidArgument', /region/);
  });

  it('bootstraps exactly once and validates the first Region', async () => {
    const ids = await conn.request(encode({ id: 20, method: 'allocId', params: { count: 3 } }));
    expect(ids.ok).toBe(true);
    const [storeId, regionId, peerId] = (ids as { result: { ids: number[] } }).result.ids as [number, number, number];
    expectError(await conn.request(encode({ id: 21, method: 'storeHeartbeat', params: { stats: { storeId, capacityBytes: 1, usedBytes: 0, availableBytes: 1, regionCount: 0, leaderCount: 0 } } })), 'NotBootstrapped');
    const region: Region = { id: regionId, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: peerId, storeId, role: 'voter' }] };
    expectError(await conn.request(encode({ id: 22, method: 'bootstrap', params: { store: { id: storeId, address: 'a:1' }, region: { ...region, endKey: Buffer.from('m') } } })), 'InvalidArgument', /whole key space/);
    expectError(
      await conn.request(encode({ id: 23, method: 'bootstrap', params: { store: { id: storeId, address: 'a:1' }, region: { ...region, startKey: Buffer.from('z'), endKey: Buffer.from('a') } } })),
      'InvalidArgument',
      /region\.endKey/,
    );
    const ok = await conn.request(encode({ id: 24, method: 'bootstrap', params: { store: { id: storeId, address: 'a:1' }, region } }));
    expect(ok).toEqual({ id: 24, ok: true, result: { bootstrapped: true } });
    expectError(await conn.request(encode({ id: 25, method: 'bootstrap', params: { store: { id: storeId, address: 'a:1' }, region } })), 'AlreadyBootstrapped');
    expectError(
      await conn.request(encode({ id: 26, method: 'regionHeartbeat', params: { region, leader: { id: 999, storeId, role: 'voter' }, approximateSizeBytes: 0, approximateKeys: 0 } })),
      'InvalidArgument',
      /leader/,
    );
    expectError(await conn.request(encode({ id: 27, method: 'storeHeartbeat', params: { stats: { storeId: 4242, capacityBytes: 1, usedBytes: 0, availableBytes: 1, regionCount: 0, leaderCount: 0 } } })), 'StoreNotFound');
    // Still serving after all of it.
    const r = await conn.request(encode({ id: 28, method: 'getRegion', params: { key: Buffer.from('anything') } }));
    expect(r.ok && (r.result as { region: { region: Region } }).region.region.id).toBe(regionId);
  });

  it('serves HTTP JSON with readable keys and typed errors for bad paths', async () => {
    const get = async (path: string) => {
      const res = await fetch(server.httpUrl + path);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    expect((await get('/health')).body).toMatchObject({ ok: true, bootstrapped: true });
    const byKey = await get('/regions/key/hello');
    expect(byKey.status).toBe(200);
    expect(byKey.body.region).toMatchObject({ startKey: '', endKey: '' });
    expect((await get('/regions/key/0x00ff')).status).toBe(200);
    const badHex = await get('/regions/key/0xzz');
    expect(badHex.status).toBe(400);
    expect(badHex.body.error).toMatchObject({ code: 'InvalidArgument' });
    expect((await get('/regions/key/%E0%A4%A')).status).toBe(400);
    expect((await get('/stores/abc')).status).toBe(400);
    expect((await get('/stores/12345')).status).toBe(404);
    expect((await get('/regions?limit=0')).status).toBe(400);
    expect((await get('/nope')).status).toBe(404);
    expect((await fetch(server.httpUrl + '/status', { method: 'POST' })).status).toBe(405);
    const status = await get('/status');
    expect(status.body).toMatchObject({ bootstrapped: true, regionCount: 1 });
    expect((await get('/regions')).body).toMatchObject({ count: 1 });
    // The socket API still answers after the HTTP errors.
    const r = await conn.request(encode({ id: 30, method: 'isBootstrapped' }));
    expect(r).toEqual({ id: 30, ok: true, result: { bootstrapped: true } });
  });
});

describe('key rendering', () => {
  it('shows printable keys as text and anything else (or a literal 0x prefix) as hex, and parses both back', async () => {
    const { renderKey, parseKey } = await import('../src/http');
    expect(renderKey(new Uint8Array())).toBe('');
    expect(renderKey(Buffer.from('user/42'))).toBe('user/42');
    expect(renderKey(Buffer.from([0, 255, 16]))).toBe('0x00ff10');
    expect(renderKey(Buffer.from('0xabc'))).toBe('0x3078616263');
    for (const k of [Buffer.from('user/42'), Buffer.from([0, 255, 16]), Buffer.from('0xabc')]) expect(Buffer.from(parseKey(renderKey(k))).equals(k)).toBe(true);
  });
});

describe('PlacementClient', () => {
  let sockets: { close(): unknown }[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) await s.close();
  });

  it('mirrors the API with typed results and typed errors', async () => {
    const server = await startPlacementServer({ dataDir: tempDir(), listen: '127.0.0.1:0' });
    sockets.push(server);
    const c = new PlacementClient({ addresses: [server.address] });
    sockets.push(c);
    expect(await c.isBootstrapped()).toBe(false);
    const [s1, r1, p1, s2] = (await c.allocId(4)) as [number, number, number, number];
    const region: Region = { id: r1, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: p1, storeId: s1, role: 'voter' }] };
    await c.bootstrap({ id: s1, address: 'a:1' }, region);
    const err = await c.bootstrap({ id: s1, address: 'a:1' }, region).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlacementError);
    expect((err as PlacementError).code).toBe('AlreadyBootstrapped');
    expect((err as PlacementError).retryable).toBe(false);
    expect((await c.putStore({ id: s2, address: 'b:1' })).state).toBe('up');
    const dup = await c.putStore({ id: s2 + 1000, address: 'b:1' }).catch((e: unknown) => e);
    expect((dup as PlacementError).code).toBe('InvalidArgument');
    expect((await c.storeHeartbeat({ storeId: s2, capacityBytes: 100, usedBytes: 10, availableBytes: 90, regionCount: 0, leaderCount: 0 })).stats?.usedBytes).toBe(10);
    const hb = await c.regionHeartbeat({ region, leader: region.peers[0]!, approximateSizeBytes: 5, approximateKeys: 1 });
    expect(hb.stale).toBe(false);
    const stale = await c.regionHeartbeat({ region: { ...region, epoch: { version: 0, confVer: 1 } }, leader: region.peers[0]!, approximateSizeBytes: 5, approximateKeys: 1 });
    expect(stale.stale).toBe(true);
    const splits = await c.askBatchSplit(region, 2);
    expect(splits).toHaveLength(2);
    expect(splits[0]!.newPeerIds).toHaveLength(1);
    expect((await c.getRegion(Buffer.from('x')))?.leader?.id).toBe(p1);
    expect((await c.getRegionById(r1))?.region.id).toBe(r1);
    expect(await c.getRegionById(987654)).toBeNull();
    expect(await c.scanRegions(empty, empty, 10)).toHaveLength(1);
    expect((await c.getStore(s2))?.address).toBe('b:1');
    expect(await c.getStore(55555)).toBeNull();
    expect((await c.getAllStores()).map((s) => s.id)).toEqual([s1, s2]);
    expect(await c.getClusterInfo()).toMatchObject({ bootstrapped: true, storeCount: 2, regionCount: 1, maxReplicas: 3 });
  });

  it('times out, bounds pending calls, fails in-flight calls on disconnect and reconnects', async () => {
    // A server that accepts and never answers.
    const mute = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    let received = 0;
    mute.on('connection', (ws) => ws.on('message', () => received++));
    await new Promise((r) => mute.once('listening', r));
    const mutePort = (mute.address() as AddressInfo).port;
    const c = new PlacementClient({ addresses: [`ws://127.0.0.1:${mutePort}/ws`], requestTimeoutMs: 200, maxPendingRequests: 2 });
    sockets.push(c);
    const a = c.getClusterInfo().catch((e: unknown) => e);
    const b = c.getClusterInfo().catch((e: unknown) => e);
    const third = await c.getClusterInfo().catch((e: unknown) => e);
    expect((third as PlacementError).code).toBe('TooManyPending');
    expect(((await a) as PlacementError).code).toBe('Timeout');
    expect(((await b) as PlacementError).code).toBe('Timeout');
    // Disconnect with calls in flight: a repeatable call is resent on the next connection,
    // a non-repeatable one (bootstrap) fails with Unavailable rather than hanging.
    const inflight = new PlacementClient({ addresses: [`127.0.0.1:${mutePort}`], requestTimeoutMs: 5000, reconnectBackoffMs: { initialMs: 10, maxMs: 50 } });
    sockets.push(inflight);
    const region: Region = { id: 2, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: 3, storeId: 1, role: 'voter' }] };
    const boot = inflight.bootstrap({ id: 1, address: 'a:1' }, region).catch((e: unknown) => e);
    const read = inflight.getClusterInfo().catch((e: unknown) => e);
    await expect.poll(() => received, { timeout: 5000, interval: 10, message: 'both calls reached the server' }).toBeGreaterThanOrEqual(4);
    for (const ws of mute.clients) ws.terminate();
    expect(((await boot) as PlacementError).code).toBe('Unavailable');
    await expect.poll(() => received, { timeout: 5000, interval: 10, message: 'getClusterInfo was sent again after reconnecting' }).toBeGreaterThanOrEqual(5);
    inflight.close();
    expect(((await read) as PlacementError).code).toBe('Closed');
    await new Promise<void>((r) => mute.close(() => r()));

    // A port nobody listens on yet: calls wait for the connection, then succeed once a server appears there.
    const port = await freePort();
    const late = new PlacementClient({ addresses: [`127.0.0.1:${port}`], requestTimeoutMs: 10_000, reconnectBackoffMs: { initialMs: 20, maxMs: 100 } });
    sockets.push(late);
    const waiting = late.isBootstrapped(); // issued while nothing listens on the port
    const server = await startPlacementServer({ dataDir: tempDir(), listen: `127.0.0.1:${port}` });
    sockets.push(server);
    expect(await waiting).toBe(false);
    expect(late.connected).toBe(true);
    late.close();
    expect(((await late.isBootstrapped().catch((e: unknown) => e)) as PlacementError).code).toBe('Closed');
  });

  it('hands out an operator in a region heartbeat response over the socket', async () => {
    const server = await startPlacementServer({ dataDir: tempDir(), listen: '127.0.0.1:0', scheduleIntervalMs: 20, maxReplicas: 3 });
    sockets.push(server);
    const c = new PlacementClient({ addresses: [server.address] });
    sockets.push(c);
    const [s1, s2, s3, r1, p1] = (await c.allocId(5)) as [number, number, number, number, number];
    const region: Region = { id: r1, startKey: empty, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [{ id: p1, storeId: s1, role: 'voter' }] };
    await c.bootstrap({ id: s1, address: 'a:1' }, region);
    await c.putStore({ id: s2, address: 'b:1' });
    await c.putStore({ id: s3, address: 'c:1' });
    let step: { type: string } | undefined;
    const deadline = Date.now() + 10_000;
    while (!step && Date.now() < deadline) {
      step = (await c.regionHeartbeat({ region, leader: region.peers[0]!, approximateSizeBytes: 1, approximateKeys: 1 })).operator?.step;
      if (!step) await new Promise((r) => setTimeout(r, 10)); // polling a condition with a bound, like a store's heartbeat loop
    }
    expect(step?.type).toBe('addLearner');
    const op = await c.getOperator(r1);
    expect(op?.kind).toBe('add-replica');
    const stores = (await (await fetch(`${server.httpUrl}/stores`)).json()) as { stores: { id: number; state: string }[] };
    expect(stores.stores.map((x) => x.state)).toEqual(['up', 'up', 'up']);
  });

  it('carries on across a placement restart on the same address and data directory', async () => {
    const dir = tempDir();
    const first = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0' });
    const c = new PlacementClient({ addresses: [first.address], requestTimeoutMs: 10_000, reconnectBackoffMs: { initialMs: 10, maxMs: 100 } });
    sockets.push(c);
    const before = await c.allocId(5);
    await first.close();
    const pending = c.allocId(5); // issued while placement is down
    const second = await startPlacementServer({ dataDir: dir, listen: first.address });
    sockets.push(second);
    const after = await pending;
    expect(Math.min(...after)).toBeGreaterThan(Math.max(...before));
    expect(second.clusterId).toBe(first.clusterId);
  });

  it('fails over to the next address', async () => {
    const dead = await freePort();
    const server = await startPlacementServer({ dataDir: tempDir(), listen: '127.0.0.1:0' });
    sockets.push(server);
    const c = new PlacementClient({ addresses: [`127.0.0.1:${dead}`, server.address], requestTimeoutMs: 5000, reconnectBackoffMs: { initialMs: 10, maxMs: 50 } });
    sockets.push(c);
    expect(await c.allocId(2)).toHaveLength(2);
  });
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
