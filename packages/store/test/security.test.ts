import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startPlacementServer, type PlacementServer } from '@flotilla/placement';
import { decode, encode, utf8, type ClientResponse } from '@flotilla/proto';
import { startStore, type StoreHandle } from '@flotilla/store';
import { waitFor } from './helpers';

// A self-signed certificate for 127.0.0.1, copied from the transport's fixture (see fixtures/README.md).
const certPath = fileURLToPath(new URL('./fixtures/test-cert.pem', import.meta.url));
const keyPath = fileURLToPath(new URL('./fixtures/test-key.pem', import.meta.url));
const ca = readFileSync(certPath);
const TOKEN = 'store-test-token-5c1f0e';

let dir: string;
let placement: PlacementServer;
let store: StoreHandle;
const logLines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-store-sec-'));
  const tls = { certPath, keyPath, caPath: certPath };
  placement = await startPlacementServer({ dataDir: join(dir, 'placement'), listen: '127.0.0.1:0', maxReplicas: 1, token: TOKEN, tls });
  const capture = (level: string) => (obj: object, msg?: string) => void logLines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  store = await startStore({
    dataDir: join(dir, 'store'),
    listen: '127.0.0.1:0',
    placement: placement.address,
    profile: 'demo',
    tickIntervalMs: 50,
    clientToken: TOKEN,
    tls,
    logger: { debug: capture('debug'), info: capture('info'), warn: capture('warn'), error: capture('error') },
  });
  await waitFor('store leads region 1', () => [...store.store.peers.values()].some((p) => p.isLeader));
}, 30_000);

afterAll(async () => {
  await store?.close();
  await placement?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** dial opens a wss connection to the store's client API, resolving with the socket or the HTTP status that refused it. */
function dial(headers: Record<string, string>, scheme: 'wss' | 'ws' = 'wss'): Promise<{ ws?: WebSocket; status?: number; error?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${scheme}://${store.address}/client`, { headers, ca });
    ws.on('open', () => resolve({ ws }));
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      ws.terminate();
    });
    ws.on('error', (err) => resolve({ error: err.message }));
  });
}

function call(ws: WebSocket, req: object): Promise<ClientResponse> {
  return new Promise((resolve) => {
    ws.once('message', (d: Buffer) => resolve(decode(d) as ClientResponse));
    ws.send(encode({ id: 7, ...req }));
  });
}

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(`https://${store.address}${path}`, { ca, headers }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** header addresses the Region holding "k" (the store's only Region until the split test). */
function header() {
  const p = [...store.store.peers.values()].find((x) => x.isLeader && x.region.startKey.length === 0)!;
  return { regionId: p.region.id, regionEpoch: p.region.epoch };
}

describe('store client API security', () => {
  it('refuses WebSocket upgrades without the right token with 401 and serves the right one over wss', async () => {
    expect((await dial({})).status).toBe(401);
    expect((await dial({ authorization: 'Bearer wrong-token' })).status).toBe(401);
    expect((await dial({ authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    const { ws } = await dial({ authorization: `Bearer ${TOKEN}` });
    expect(ws).toBeDefined();
    const put = await call(ws!, { header: header(), op: 'write', writes: [{ type: 'put', key: utf8('k'), value: utf8('v') }] });
    expect(put.ok).toBe(true);
    ws!.close();
  });

  it('refuses plain ws on the TLS port', async () => {
    const r = await dial({ authorization: `Bearer ${TOKEN}` }, 'ws');
    expect(r.ws).toBeUndefined();
  });

  it('requires the token on /status and /metrics but not /health', async () => {
    expect((await get('/status')).status).toBe(401);
    expect((await get('/metrics', { authorization: 'Bearer nope' })).status).toBe(401);
    const health = await get('/health');
    expect(health.status).toBe(200);
    expect(health.body).not.toContain('regions');
    expect((await get('/status', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await get('/metrics', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
  });

  it("refuses op 'admin' unless enableAdminApi, but still serves split", async () => {
    const { ws } = await dial({ authorization: `Bearer ${TOKEN}` });
    const admin = await call(ws!, { header: header(), op: 'admin', admin: { type: 'compactLog', compactIndex: 1, compactTerm: 1 } });
    expect(admin.ok).toBe(false);
    expect(!admin.ok && admin.error).toMatchObject({ type: 'InvalidRequest', message: expect.stringContaining('admin commands are disabled') });
    const split = await call(ws!, { header: header(), op: 'split', splitKeys: [utf8('m')] });
    expect(split.ok).toBe(true);
    ws!.close();
  });

  it('never writes the token into its logs', () => {
    expect(logLines.some((l) => l.includes('refused'))).toBe(true);
    expect(logLines.join('\n')).not.toContain(TOKEN);
  });
});
