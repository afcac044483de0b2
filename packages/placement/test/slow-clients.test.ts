// Slow and greedy clients of placement (issue #15 item 5): a connection
// that never finishes its request head is closed within the header timeout;
// connections (HTTP and WebSocket alike) are bounded and the one past the
// bound is told why with HTTP 503 before any upgrade; a client that sends
// faster than it reads is no longer read from (not buffered, not cut off)
// and gets every answer once it reads again; repeated 401s are logged once
// per address and window.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { decode, encode, type Logger } from '@flotilla/proto';
import { startPlacementServer, type PlacementServer, type WireResponse } from '../src';

const dirs: string[] = [];
const servers: PlacementServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function recorder(): { logger: Logger; lines: { obj: Record<string, unknown>; msg: string }[] } {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const at = (obj: object, msg?: string) => void lines.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' });
  return { logger: { debug: () => {}, info: at, warn: at, error: at }, lines };
}

async function start(opts: Partial<Parameters<typeof startPlacementServer>[0]> = {}): Promise<PlacementServer> {
  const dir = mkdtempSync(join(tmpdir(), 'placement-slow-'));
  dirs.push(dir);
  const s = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0', ...opts });
  servers.push(s);
  return s;
}

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

/** dial opens a WebSocket to /ws: the open socket, or the HTTP status and body that refused it. */
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

describe('placement against slow and greedy clients', () => {
  it('closes a connection whose request head never ends within the header timeout', async () => {
    const s = await start({ headersTimeoutMs: 300 });
    const t0 = performance.now();
    const partial = await rawSocket(s.address, 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
    const partialHttp = await rawSocket(s.address, 'GET /status HTTP/1.1\r\nHost: x\r\n');
    await vi.waitFor(() => expect(partial.closed() && partialHttp.closed()).toBe(true), { timeout: 2_000, interval: 10 });
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(partial.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('refuses HTTP and WebSocket connections past maxConnections with 503 and the reason, logged once', async () => {
    const rec = recorder();
    const s = await start({ maxConnections: 2, logger: rec.logger });
    const held = [await rawSocket(s.address), await rawSocket(s.address)];
    const refused = await dial(s.wsUrl);
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.body!)).toEqual({ ok: false, error: { code: 'Unavailable', message: 'too many placement connections (limit 2); retry later or raise maxConnections' } });
    const http = await fetch(`${s.httpUrl}/health`);
    expect(http.status).toBe(503);
    expect(((await http.json()) as { error: { message: string } }).error.message).toMatch(/too many placement connections \(limit 2\)/);
    expect(rec.lines.filter((l) => l.msg === 'placement connection refused: connection limit reached')).toHaveLength(1);
    for (const h of held) h.socket.destroy();
    const admitted = await vi.waitFor(
      async () => {
        const r = await dial(s.wsUrl);
        if (!r.ws) throw new Error(`still refused: ${r.status}`);
        return r.ws;
      },
      { timeout: 5_000, interval: 20 },
    );
    admitted.terminate();
  });

  it('stops reading a client that does not read its answers, and answers every request once it reads again', async () => {
    const rec = recorder();
    const s = await start({ maxBufferedBytes: 256 * 1024, logger: rec.logger });
    const ws = (await dial(s.wsUrl)).ws!;
    const answers: WireResponse[] = [];
    ws.on('message', (d: Buffer) => answers.push(decode(d) as WireResponse));
    // 40 stores with 32 long labels each: every getAllStores answer is about 500 KB.
    const labels = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`label-${i}-`.padEnd(128, 'k'), 'v'.repeat(256)]));
    const region = { id: 1000, startKey: new Uint8Array(), endKey: new Uint8Array(), epoch: { version: 1, confVer: 1 }, peers: [{ id: 1001, storeId: 1, role: 'voter' }] };
    ws.send(encode({ id: 1, method: 'bootstrap', params: { store: { id: 1, address: 'store-1:20160', labels }, region } }));
    for (let id = 2; id <= 40; id++) ws.send(encode({ id, method: 'putStore', params: { store: { id, address: `store-${id}:20160`, labels } } }));
    await vi.waitFor(() => expect(answers.length).toBe(40), { timeout: 5_000, interval: 10 });
    expect(answers.filter((a) => !a.ok)).toEqual([]);
    answers.length = 0;

    ws.pause();
    const requests = 32; // about 16 MB of answers: far more than the kernel's socket buffers hold
    for (let i = 1; i <= requests; i++) ws.send(encode({ id: 1000 + i, method: 'getAllStores', params: {} }));
    // Logged once reading has stayed stopped for a second.
    const stall = await vi.waitFor(
      () => {
        const line = rec.lines.find((l) => l.msg.startsWith('placement client is not reading its answers'));
        if (!line) throw new Error('no stall logged yet');
        return line.obj;
      },
      { timeout: 5_000, interval: 10 },
    );
    // What waits on the server is about the limit plus one answer, not every answer asked for (~16 MB).
    expect(stall['bufferedBytes']).toBeLessThan(1.5 * 1024 * 1024);
    expect(stall['held']).toBeLessThan(requests);
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.resume();
    await vi.waitFor(() => expect(answers.length).toBe(requests), { timeout: 10_000, interval: 10 });
    expect(answers.map((a) => a.id)).toEqual(Array.from({ length: requests }, (_, i) => 1001 + i));
    expect(answers.every((a) => a.ok && (a.result as { stores: unknown[] }).stores.length === 40)).toBe(true);
    ws.terminate();
  });

  it('logs repeated 401s from one address once per window, for WebSocket and HTTP alike', async () => {
    const rec = recorder();
    const s = await start({ token: 'the-right-token', logger: rec.logger });
    for (let i = 0; i < 5; i++) expect((await dial(s.wsUrl, { authorization: 'Bearer wrong' })).status).toBe(401);
    for (let i = 0; i < 5; i++) expect((await fetch(`${s.httpUrl}/status`)).status).toBe(401);
    expect(rec.lines.filter((l) => l.msg === 'placement connection refused: missing or wrong API token')).toHaveLength(1);
    expect(rec.lines.filter((l) => l.msg === 'placement HTTP request refused: missing or wrong API token')).toHaveLength(1);
  });
});
