// Slow and greedy peers on the raft port (issue #15 item 5): a connection
// that never finishes its upgrade request is closed within the handshake
// timeout (Node checks header timeouts only every 30 s unless told
// otherwise); inbound connections are bounded and the one past the bound is
// told why with HTTP 503 before any upgrade; repeated refusals from one
// address are logged once per window, not once per connection.
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { decode } from '@flotilla/proto';
import { WsTransport } from '../src/ws-transport';
import { computeMac, encodeHello, newNonce } from '../src/handshake';
import { captureLogger, waitFor } from './helpers';

const SECRET = 'slow-peers-secret';
const started: WsTransport[] = [];
afterAll(async () => {
  for (const t of started) await t.close();
});

async function transport(extra: Partial<ConstructorParameters<typeof WsTransport>[0]>): Promise<WsTransport> {
  const t = new WsTransport({ storeId: 1, clusterId: 'c', secret: SECRET, resolveAddress: async () => undefined, ...extra });
  await t.start();
  started.push(t);
  return t;
}

/** RawSocket is a TCP connection that records what it received and when it was closed. */
interface RawSocket {
  socket: Socket;
  received: () => string;
  closed: () => boolean;
}

function rawSocket(address: string, write?: string): Promise<RawSocket> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    let data = '';
    let closed = false;
    const socket = connect(port, host, () => {
      if (write !== undefined) socket.write(write);
      resolve({ socket, received: () => data, closed: () => closed });
    });
    socket.on('data', (d) => (data += d.toString()));
    socket.on('close', () => (closed = true));
    socket.on('error', reject);
  });
}

/** dial opens a WebSocket to the raft port: the challenge frame when admitted, or the HTTP refusal. */
function dial(address: string): Promise<{ ws?: WebSocket; status?: number; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${address}/flotilla/raft`);
    ws.once('message', () => resolve({ ws }));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', () => {});
  });
}

describe('raft port against slow and greedy peers', () => {
  it('closes a connection whose upgrade request head never ends within the handshake timeout', async () => {
    const t = await transport({ handshakeTimeoutMs: 300 });
    const t0 = performance.now();
    const partial = await rawSocket(t.address, 'GET /flotilla/raft HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
    const silent = await rawSocket(t.address);
    // 300 ms plus at most a 75 ms check interval; without connectionsCheckingInterval Node looks every 30 s.
    await waitFor(() => partial.closed() && silent.closed(), 'both slow sockets closed', 2_000);
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(partial.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it('refuses connections past maxInboundConnections with 503 and the reason, logs the refusals once, and admits again after a close', async () => {
    const cap = captureLogger();
    const t = await transport({ maxInboundConnections: 2, handshakeTimeoutMs: 5_000, logger: cap.logger });
    const held = [await rawSocket(t.address), await rawSocket(t.address)];
    const refusals = await Promise.all([dial(t.address), dial(t.address), dial(t.address)]);
    for (const r of refusals) {
      expect(r.status).toBe(503);
      expect(r.body).toMatch(/too many raft connections \(limit 2\); retry later or raise maxInboundConnections/);
    }
    expect(cap.lines.filter((l) => l['msg'] === 'raft connection refused: connection limit reached')).toHaveLength(1);
    held[0]!.socket.destroy();
    const again = await vi.waitFor(
      async () => {
        const r = await dial(t.address);
        if (!r.ws) throw new Error(`still refused: ${r.status}`);
        return r.ws;
      },
      { timeout: 5_000, interval: 20 },
    );
    again.terminate();
    held[1]!.socket.destroy();
  });

  it('logs a peer that keeps failing authentication once per window, however often it tries', async () => {
    const cap = captureLogger();
    const t = await transport({ handshakeTimeoutMs: 5_000, logger: cap.logger });
    const attempts = 6;
    for (let i = 0; i < attempts; i++) {
      await new Promise<void>((resolve) => {
        const ws = new WebSocket(`ws://${t.address}/flotilla/raft`);
        ws.once('message', (data) => {
          const challenge = decode(data as Buffer) as { nonce: Uint8Array };
          const nonce = newNonce();
          const mac = computeMac(Buffer.from('a wrong secret'), 'client', 'c', 'raft', 66, 1, challenge.nonce, nonce);
          ws.send(encodeHello({ clusterId: 'c', from: 66, to: 1, channel: 'raft', nonce, mac }));
        });
        ws.on('close', () => resolve());
        ws.on('error', () => {});
      });
    }
    await waitFor(() => t.stats().handshakesRejected === attempts, 'every attempt rejected');
    const lines = cap.lines.filter((l) => /bad MAC/.test(String(l['reason'])));
    expect(lines).toHaveLength(1);
    expect(lines[0]!['msg']).toBe('inbound handshake rejected');
  });
});
