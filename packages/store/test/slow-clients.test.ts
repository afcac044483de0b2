// Slow and greedy clients of a store (issue #15 item 5): the client port
// closes a connection whose request head never ends within
// clientHeadersTimeoutMs; the raft port refuses connections past
// maxRaftConnections with HTTP 503 and the reason; a client that does not
// read its answers is no longer read from (rather than having every answer
// buffered for it) and gets them all once it reads again; repeated 401s are
// logged once per address and window.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { decode, encode, type ClientResponse } from '@flotilla/proto';
import type { StoreHandle } from '@flotilla/store';
import { startCluster, waitFor, type TestCluster } from './helpers';

const TOKEN = 'slow-clients-token';
const auth = { authorization: `Bearer ${TOKEN}` };
const lines: { obj: Record<string, unknown>; msg: string }[] = [];
const record = (obj: object, msg?: string) => void lines.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' });
const logger = { debug: () => {}, info: record, warn: record, error: record };

let c: TestCluster;
let store: StoreHandle;
beforeAll(async () => {
  c = await startCluster(1, {
    logger,
    clientToken: TOKEN,
    config: { clientHeadersTimeoutMs: 500, maxBufferedBytesPerConnection: 256 * 1024, maxRaftConnections: 2 },
  });
  store = c.stores[0]!;
  await waitFor('a leader', () => [...store.store.peers.values()].some((p) => p.isLeader));
}, 30_000);
afterAll(async () => {
  await c?.close();
});

function rawSocket(address: string, write?: string): Promise<{ socket: Socket; received: () => string; closed: () => boolean }> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    let data = '';
    let closed = false;
    const socket = connect(Number(address.slice(i + 1)), address.slice(0, i), () => {
      if (write !== undefined) socket.write(write);
      resolve({ socket, received: () => data, closed: () => closed });
    });
    socket.on('data', (d) => (data += d.toString()));
    socket.on('close', () => (closed = true));
    socket.on('error', reject);
  });
}

function dial(url: string, headers: Record<string, string> = {}): Promise<{ ws?: WebSocket; status?: number; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ ws }));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', () => {});
  });
}

function header() {
  const p = [...store.store.peers.values()].find((x) => x.isLeader && x.region.startKey.length === 0)!;
  return { regionId: p.region.id, regionEpoch: p.region.epoch };
}

describe('store against slow and greedy clients', () => {
  it('closes a client-port connection whose request head never ends within clientHeadersTimeoutMs', async () => {
    const t0 = performance.now();
    const partial = await rawSocket(store.address, 'GET /client HTTP/1.1\r\nHost: x\r\n');
    // 500 ms plus at most a 125 ms check interval; without connectionsCheckingInterval Node looks every 30 s.
    await vi.waitFor(() => expect(partial.closed()).toBe(true), { timeout: 2_500, interval: 10 });
    expect(performance.now() - t0).toBeLessThan(2_500);
    expect(partial.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('refuses raft-port connections past maxRaftConnections with 503 and the reason', async () => {
    const held = [await rawSocket(store.raftAddress), await rawSocket(store.raftAddress)];
    const refused = await dial(`ws://${store.raftAddress}/flotilla/raft`);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatch(/too many raft connections \(limit 2\); retry later or raise maxInboundConnections \(store: maxRaftConnections\)/);
    for (const h of held) h.socket.destroy();
  });

  it('stops reading a client that does not read its answers, and answers every request once it reads again', async () => {
    const ws = (await dial(`ws://${store.address}/client`, auth)).ws!;
    const answers: ClientResponse[] = [];
    ws.on('message', (d: Buffer) => answers.push(decode(d) as ClientResponse));
    const value = new Uint8Array(1024 * 1024).fill(7);
    ws.send(encode({ id: 1, header: header(), op: 'write', writes: [{ type: 'put', key: Buffer.from('big'), value }] }));
    await vi.waitFor(() => expect(answers.length).toBe(1), { timeout: 5_000, interval: 10 });
    expect(answers[0]!.ok).toBe(true);
    answers.length = 0;

    ws.pause();
    const get = (id: number) => encode({ id, header: header(), op: 'read', read: { type: 'get', key: Buffer.from('big') } });
    const send = (bytes: Uint8Array) => new Promise<void>((resolve, reject) => ws.send(bytes, (err) => (err ? reject(err) : resolve())));
    // 16 MiB of answers: far more than the kernel's socket buffers hold. These are read at once and go to raft.
    const first = 16;
    for (let i = 1; i <= first; i++) await send(get(100 + i));
    // Logged once reading has stayed stopped for a second.
    await vi.waitFor(() => expect(lines.some((l) => l.msg.startsWith('client is not reading its answers'))).toBe(true), { timeout: 5_000, interval: 10 });
    // Requests sent now are not read at all while the client does not read: they wait in TCP, not in the store.
    const handled = store.store.metrics.clientRequests;
    const second = 8;
    for (let i = 1; i <= second; i++) await send(get(200 + i));
    expect(store.store.metrics.clientRequests).toBe(handled);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.resume();
    await vi.waitFor(() => expect(answers.length).toBe(first + second), { timeout: 10_000, interval: 10 });
    expect(answers.map((a) => a.id)).toEqual([...Array.from({ length: first }, (_, i) => 101 + i), ...Array.from({ length: second }, (_, i) => 201 + i)]);
    for (const a of answers) {
      expect(a.ok).toBe(true);
      expect(Buffer.from((a as { value: Uint8Array }).value).equals(Buffer.from(value))).toBe(true);
    }
    ws.terminate();
  });

  it('logs repeated 401s from one address once per window, for WebSocket and HTTP alike', async () => {
    for (let i = 0; i < 5; i++) expect((await dial(`ws://${store.address}/client`, { authorization: 'Bearer wrong' })).status).toBe(401);
    for (let i = 0; i < 5; i++) expect((await fetch(`http://${store.address}/status`)).status).toBe(401);
    expect(lines.filter((l) => l.msg === 'client connection refused: missing or wrong API token')).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'client HTTP request refused: missing or wrong API token')).toHaveLength(1);
  });
});
