import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { decode, encode, type ClientRequest } from '@flotilla/proto';
import type { RegionWithLeader } from '@flotilla/placement/client';
import { FlotillaClient } from '../src';
import type { RouteProvider } from '../src/route-provider';

// A self-signed certificate for 127.0.0.1, copied from the transport's fixture (see fixtures/README.md).
const certPath = fileURLToPath(new URL('./fixtures/test-cert.pem', import.meta.url));
const keyPath = fileURLToPath(new URL('./fixtures/test-key.pem', import.meta.url));
const TOKEN = 'client-test-token-77aa';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
});

/** tlsStore is a one-Region store on wss that admits only `Authorization: Bearer TOKEN` and answers every request ok. */
async function tlsStore(): Promise<{ address: string; received: ClientRequest[]; refused: number }> {
  const server = createServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) });
  const state = { address: '', received: [] as ClientRequest[], refused: 0 };
  const wss = new WebSocketServer({
    server,
    path: '/client',
    verifyClient: (info: { req: { headers: Record<string, unknown> } }, done: (ok: boolean, code?: number) => void) => {
      if (info.req.headers['authorization'] === `Bearer ${TOKEN}`) return done(true);
      state.refused++;
      done(false, 401);
    },
  });
  wss.on('connection', (ws) =>
    ws.on('message', (d: Buffer) => {
      const req = decode(d) as ClientRequest;
      state.received.push(req);
      ws.send(encode({ id: req.id, ok: true, value: null }));
    }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanup.push(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.close();
  });
  return state;
}

function routes(address: string): RouteProvider {
  const region: RegionWithLeader = {
    region: { id: 1, startKey: new Uint8Array(0), endKey: new Uint8Array(0), epoch: { confVer: 1, version: 1 }, peers: [{ id: 10, storeId: 1, role: 'voter' }] },
    leader: { id: 10, storeId: 1, role: 'voter' },
  };
  return { getRegion: async () => region, scanRegions: async () => [region], getStore: async () => ({ id: 1, address }), close() {} };
}

describe('FlotillaClient token and TLS', () => {
  it('sends the token over wss and trusts the given CA', async () => {
    const store = await tlsStore();
    const client = await FlotillaClient.connect({ routes: routes(store.address), token: TOKEN, tls: { caPath: certPath }, timeoutMs: 3000 });
    cleanup.push(() => client.close());
    expect(await client.get('k')).toBeNull();
    expect(store.received.length).toBe(1);
  });

  it('fails fast with Unauthorized, not a timeout, when the store refuses the token', async () => {
    const store = await tlsStore();
    const client = await FlotillaClient.connect({ routes: routes(store.address), token: 'wrong-token', tls: { caPath: certPath }, timeoutMs: 5000 });
    cleanup.push(() => client.close());
    const started = Date.now();
    await expect(client.get('k')).rejects.toMatchObject({ code: 'Unauthorized' });
    expect(Date.now() - started).toBeLessThan(4000);
    expect(store.refused).toBe(1);
    expect(store.received.length).toBe(0);
  });

  it('does not send anything to a store whose certificate it cannot verify', async () => {
    const store = await tlsStore();
    const client = await FlotillaClient.connect({ routes: routes(store.address), token: TOKEN, tls: {}, timeoutMs: 800, attemptTimeoutMs: 200 });
    cleanup.push(() => client.close());
    await expect(client.get('k')).rejects.toMatchObject({ code: expect.stringMatching(/Timeout|RetriesExhausted/) });
    expect(store.received.length).toBe(0);
  });
});
