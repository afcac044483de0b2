// Fuzzing the store client API's bearer-token gate (ed58548): random and
// near-miss tokens over real sockets are refused with 401 at the upgrade and
// apply nothing; the right token is accepted.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { decode, encode, type ClientResponse } from '@flotilla/proto';
import { PlacementCluster } from '@flotilla/placement/internal';
import { startPlacementServer, WS_PATH } from '@flotilla/placement';
import { startStore, type StoreHandle } from '@flotilla/store';
import { LocalNetwork } from '@flotilla/transport';
import { InProcessPlacement } from '../src/placement-adapter';

const TOKEN = 'correct-horse-battery-staple';
export const TOKEN_CASES = 300;

/** wrongHeader: Authorization values that must not pass (random, one character off, wrong scheme, missing). */
const wrongHeader = fc.oneof(
  fc.string({ maxLength: 40 }).map((t) => `Bearer ${t}`),
  fc.constantFrom(`Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, `bearer${TOKEN}`, `Basic ${TOKEN}`, TOKEN, `Bearer  ${TOKEN.toUpperCase()}`, 'Bearer', ''),
  fc.nat(TOKEN.length - 1).chain((i) => fc.integer({ min: 33, max: 126 }).map((c) => `Bearer ${TOKEN.slice(0, i)}${String.fromCharCode(c === TOKEN.charCodeAt(i) ? c + 1 : c)}${TOKEN.slice(i + 1)}`)),
);

/** connect resolves with the HTTP status of a refused upgrade, or 101 and an open socket. */
function connect(address: string, headers: Record<string, string>, path = '/client'): Promise<{ status: number; ws?: WebSocket }> {
  return new Promise((res) => {
    const ws = new WebSocket(`ws://${address}${path}`, { headers });
    ws.once('open', () => res({ status: 101, ws }));
    ws.once('unexpected-response', (_req, r) => {
      res({ status: r.statusCode ?? 0 });
      ws.terminate();
    });
    ws.once('error', () => res({ status: -1 }));
  });
}

describe('fuzz: client API token gate', () => {
  let dir: string;
  let pd: PlacementCluster;
  let store: StoreHandle;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-fuzz-token-'));
    pd = new PlacementCluster({ dataDir: join(dir, 'pd'), maxReplicas: 1 });
    const network = new LocalNetwork({ seed: 1 });
    store = await startStore({
      dataDir: join(dir, 'store'),
      listen: '127.0.0.1:0',
      placement: 'in-process',
      profile: 'demo',
      tickIntervalMs: 20,
      clientToken: TOKEN,
      transportFactory: (id) => network.transport(id),
      placementClient: new InProcessPlacement(() => pd),
    });
  });
  afterAll(async () => {
    await store?.close();
    pd?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${TOKEN_CASES} wrong or malformed Authorization headers are refused with 401; the right one is accepted`, async () => {
    const samples = fc.sample(wrongHeader, { numRuns: TOKEN_CASES, seed: 5 }).filter((h) => h !== `Bearer ${TOKEN}`);
    let tried = 0;
    for (const h of samples) {
      // Header values must be valid HTTP: skip what the ws client itself refuses to send.
      if (/[^\t\x20-\x7e]/.test(h)) continue;
      const r = await connect(store.address, h === '' ? {} : { authorization: h });
      expect(r.status, `header ${JSON.stringify(h)}`).toBe(401);
      tried++;
    }
    expect(tried).toBeGreaterThan(TOKEN_CASES / 2);
    const ok = await connect(store.address, { authorization: `Bearer ${TOKEN}` });
    expect(ok.status).toBe(101);
    // The accepted socket works (an answer, whatever it is), and nothing was written by the refused ones.
    const resp = await new Promise<ClientResponse>((res) => {
      ok.ws!.once('message', (d: Buffer) => res(decode(d) as ClientResponse));
      ok.ws!.send(encode({ id: 5, header: { regionId: 1, regionEpoch: { confVer: 1, version: 1 } }, op: 'read', read: { type: 'get', key: new Uint8Array([1]) } }));
    });
    expect(resp.id).toBe(5);
    ok.ws!.close();
    expect(store.store.stateMachine.scan(new Uint8Array(0), new Uint8Array(0), 10)).toEqual([]);
  }, 120_000);

  it(`placement API: ${TOKEN_CASES} wrong or malformed Authorization headers are refused with 401; the right one is accepted`, async () => {
    const server = await startPlacementServer({ dataDir: join(dir, 'pd-server'), listen: '127.0.0.1:0', token: TOKEN });
    try {
      let tried = 0;
      for (const h of fc.sample(wrongHeader, { numRuns: TOKEN_CASES, seed: 6 })) {
        if (h === `Bearer ${TOKEN}` || /[^\t\x20-\x7e]/.test(h)) continue;
        const r = await connect(server.address, h === '' ? {} : { authorization: h }, WS_PATH);
        expect(r.status, `header ${JSON.stringify(h)}`).toBe(401);
        tried++;
      }
      expect(tried).toBeGreaterThan(TOKEN_CASES / 2);
      const ok = await connect(server.address, { authorization: `Bearer ${TOKEN}` }, WS_PATH);
      expect(ok.status).toBe(101);
      ok.ws!.close();
    } finally {
      await server.close();
    }
  }, 120_000);
});
