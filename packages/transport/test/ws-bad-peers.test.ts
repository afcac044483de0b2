// Misbehaving peers: each connection is closed with a logged reason, the
// server keeps serving good peers, and nothing reaches the store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { decode } from '@flotilla/proto';
import { WsTransport } from '../src/ws-transport';
import { CloseCode, computeMac, encodeChallenge, encodeHello, encodeWelcome, newNonce } from '../src/handshake';
import { encodeRaftFrame } from '../src/codec';
import { captureLogger, raftMsg, waitFor } from './helpers';

const SECRET = 'the-cluster-secret-do-not-log';
const cap = captureLogger();
let server: WsTransport;
let good: WsTransport;
const delivered: { from: number; count: number }[] = [];

beforeAll(async () => {
  server = new WsTransport({
    storeId: 1,
    clusterId: 'prod',
    secret: SECRET,
    resolveAddress: async (id) => (id === 2 ? good.address : undefined),
    logger: cap.logger,
    handshakeTimeoutMs: 300,
    maxFrameBytes: 64 * 1024,
    keepaliveIntervalMs: 100,
  });
  server.onMessages((msgs, from) => delivered.push({ from, count: msgs.length }));
  await server.start();
  good = new WsTransport({ storeId: 2, clusterId: 'prod', secret: SECRET, resolveAddress: async (id) => (id === 1 ? server.address : undefined) });
  await good.start();
});

afterAll(async () => {
  await good.close();
  await server.close();
});

interface Outcome {
  code: number;
  reason: string;
}

/** rawPeer connects with a plain ws client and runs `script` against the challenge. */
function rawPeer(script: (ws: WebSocket, challenge: Record<string, unknown>) => void, autoPong = true): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${server.address}/flotilla/raft`, { maxPayload: 1 << 30, autoPong });
    ws.once('message', (data) => script(ws, decode(data as Buffer) as Record<string, unknown>));
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on('error', () => {});
    setTimeout(() => reject(new Error('peer connection was never closed')), 5_000).unref();
  });
}

function hello(challenge: Record<string, unknown>, opts: { clusterId?: string; secret?: string; from?: number } = {}): Uint8Array {
  const clusterId = opts.clusterId ?? 'prod';
  const from = opts.from ?? 66;
  const nonce = newNonce();
  const mac = computeMac(Buffer.from(opts.secret ?? SECRET), 'client', clusterId, 'raft', from, 1, challenge['nonce'] as Uint8Array, nonce);
  return encodeHello({ clusterId, from, to: 1, channel: 'raft', nonce, mac });
}

/** goodHandshake completes a valid handshake, then calls `after`. */
function goodHandshake(after: (ws: WebSocket) => void) {
  return (ws: WebSocket, challenge: Record<string, unknown>) => {
    ws.send(hello(challenge));
    ws.once('message', () => after(ws)); // the welcome
  };
}

function logged(pattern: RegExp): boolean {
  return cap.lines.some((l) => pattern.test(String(l['reason'] ?? '')));
}

describe('WsTransport against bad peers', () => {
  it('closes a peer with the wrong cluster ID', async () => {
    const before = server.stats().handshakesRejected;
    const out = await rawPeer((ws, ch) => ws.send(hello(ch, { clusterId: 'staging' })));
    expect(out.code).toBe(CloseCode.HandshakeRejected);
    expect(out.reason).toMatch(/cluster ID mismatch/);
    expect(logged(/cluster ID mismatch/)).toBe(true);
    expect(server.stats().handshakesRejected).toBe(before + 1);
  });

  it('closes a peer with the wrong secret', async () => {
    const out = await rawPeer((ws, ch) => ws.send(hello(ch, { secret: 'guessed-secret' })));
    expect(out.code).toBe(CloseCode.HandshakeRejected);
    expect(out.reason).toMatch(/bad MAC/);
    expect(logged(/bad MAC/)).toBe(true);
  });

  it('closes a peer whose first frame is garbage', async () => {
    const out = await rawPeer((ws) => ws.send(Buffer.from([0xc1, 0xff, 0x00, 0x13, 0x37])));
    expect(out.code).toBe(CloseCode.HandshakeRejected);
    expect(logged(/does not decode/)).toBe(true);
  });

  it('closes a peer that never finishes the handshake', async () => {
    const t0 = performance.now();
    const out = await rawPeer(() => {});
    expect(out.code).toBe(CloseCode.HandshakeTimeout);
    expect(performance.now() - t0).toBeLessThan(3_000);
    expect(logged(/handshake timeout/)).toBe(true);
  });

  it('closes a peer that sends random bytes after a good handshake', async () => {
    const before = server.stats().protocolErrors;
    const out = await rawPeer(
      goodHandshake((ws) => {
        const junk = Buffer.alloc(300);
        for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 0xff;
        junk[0] = 1; // looks like a raft frame, is not one
        ws.send(junk);
        ws.send(encodeRaftFrame([raftMsg(1, 66, 1, 1)])); // a valid frame after the junk must not be delivered
      }),
    );
    expect(out.code).toBe(CloseCode.ProtocolError);
    expect(logged(/raft frame/)).toBe(true);
    expect(server.stats().protocolErrors).toBe(before + 1);
  });

  it('closes a peer that sends a raft frame over the frame limit', async () => {
    const out = await rawPeer(goodHandshake((ws) => ws.send(Buffer.alloc(200 * 1024, 1))));
    expect(out.code).toBe(CloseCode.ProtocolError);
    expect(logged(/exceeds the limit of 65536/)).toBe(true);
  });

  it('closes a peer that sends a frame over the WebSocket payload limit', async () => {
    const out = await rawPeer(goodHandshake((ws) => ws.send(Buffer.alloc(3 * 1024 * 1024, 1))));
    expect(out.code).toBe(1009); // message too big
    await waitFor(() => logged(/Max payload size exceeded/i), 'oversize logged');
  });

  it('closes a peer that sends an oversized frame before the handshake', async () => {
    const out = await rawPeer((ws) => ws.send(Buffer.alloc(3 * 1024 * 1024, 1)));
    expect(out.code).toBe(1009);
  });

  it('closes a silent peer that stops answering keepalive pings', async () => {
    good.send(1, raftMsg(5, 2, 1, 1));
    good.flush();
    await waitFor(() => server.connections().some((c) => c.storeId === 2), 'good peer connected');
    const goodConn = server.connections().find((c) => c.storeId === 2)!;
    const out = await rawPeer(goodHandshake(() => {}), false);
    expect(out.reason).toBe('keepalive timeout');
    expect(cap.lines.some((l) => l['msg'] === 'keepalive timeout, closing connection')).toBe(true);
    // The good peer answered the same pings and kept its connection.
    expect(server.connections().find((c) => c.storeId === 2)).toEqual(goodConn);
  });

  it('lets a newer dial from the same store replace a connection that store gave up on', async () => {
    // Store 77 connects, then (as if it restarted while the server missed the FIN) connects again.
    const first = rawPeer((ws, ch) => ws.send(hello(ch, { from: 77 })));
    await waitFor(() => server.connections().some((c) => c.storeId === 77), 'first connection');
    const before = server.connections().find((c) => c.storeId === 77)!;
    rawPeer((ws, ch) => ws.send(hello(ch, { from: 77 }))).catch(() => {}); // closed by the server's afterAll
    const out = await first;
    expect(out.code).toBe(CloseCode.Duplicate);
    await waitFor(() => server.connections().filter((c) => c.storeId === 77).length === 1, 'one connection left');
    expect(server.connections().find((c) => c.storeId === 77)!.remote).not.toBe(before.remote);
  });

  it('bounds connections stuck in their handshake', async () => {
    const small = new WsTransport({ storeId: 9, clusterId: 'prod', secret: SECRET, resolveAddress: async () => undefined, maxPendingHandshakes: 2, handshakeTimeoutMs: 5_000 });
    await small.start();
    const closes: number[] = [];
    const sockets = [0, 1, 2].map(() => {
      const ws = new WebSocket(`ws://${small.address}/flotilla/raft`);
      ws.on('error', () => {});
      ws.on('close', (code) => closes.push(code));
      return ws;
    });
    // The third is refused at once; the first two wait for their (long) timeout.
    await waitFor(() => closes.length === 1, 'one refused connection');
    expect(closes).toEqual([CloseCode.Busy]);
    expect(small.stats().handshakesRejected).toBe(1);
    for (const ws of sockets) ws.terminate();
    await small.close();
  });

  it('refuses to talk to a server that cannot prove it knows the secret', async () => {
    // A fake store 3: right cluster and store ID, but it cannot compute the welcome MAC.
    const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => fake.once('listening', r));
    fake.on('connection', (ws) => {
      ws.send(encodeChallenge({ clusterId: 'prod', storeId: 3, nonce: newNonce() }));
      ws.once('message', () => ws.send(encodeWelcome(newNonce())));
    });
    const port = (fake.address() as { port: number }).port;
    const client = new WsTransport({ storeId: 4, clusterId: 'prod', secret: SECRET, resolveAddress: async () => `127.0.0.1:${port}`, logger: cap.logger });
    await client.start();
    const unreachable: number[] = [];
    client.onUnreachable((id) => unreachable.push(id));
    client.send(3, raftMsg(1, 4, 3, 1));
    client.flush();
    await waitFor(() => client.stats().dialFailures === 1, 'dial failure');
    expect(client.stats().handshakesRejected).toBe(1);
    expect(client.stats().droppedUnreachable).toBe(1);
    expect(unreachable).toEqual([3]);
    expect(logged(/server failed authentication/)).toBe(true);
    await client.close();
    fake.close();
  });

  it('delivered nothing from bad peers, kept serving a good one, and never logged the secret', async () => {
    good.send(1, raftMsg(5, 2, 1, 42));
    good.flush();
    await waitFor(() => delivered.length > 1, 'good peer message');
    expect(delivered).toEqual([
      { from: 2, count: 1 },
      { from: 2, count: 1 },
    ]);
    expect(cap.text()).not.toContain(SECRET);
    expect(server.stats().handshakesRejected).toBeGreaterThanOrEqual(4);
  });
});
