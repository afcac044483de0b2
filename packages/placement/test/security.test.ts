import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { PlacementClient, PlacementError, PlacementErrorCode, startPlacementServer, type PlacementServer } from '../src';

// A self-signed certificate for 127.0.0.1, copied from the transport's fixture (see fixtures/README.md).
const certPath = fileURLToPath(new URL('./fixtures/test-cert.pem', import.meta.url));
const keyPath = fileURLToPath(new URL('./fixtures/test-key.pem', import.meta.url));
const ca = readFileSync(certPath);
const TOKEN = 'placement-test-token-9d2a71';

let dir: string;
let server: PlacementServer;
const logLines: string[] = [];
const clients: PlacementClient[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'placement-sec-'));
  const capture = (level: string) => (obj: object, msg?: string) => void logLines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  server = await startPlacementServer({
    dataDir: dir,
    listen: '127.0.0.1:0',
    token: TOKEN,
    tls: { certPath, keyPath },
    logger: { debug: capture('debug'), info: capture('info'), warn: capture('warn'), error: capture('error') },
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

function client(opts: Partial<ConstructorParameters<typeof PlacementClient>[0]>): PlacementClient {
  const c = new PlacementClient({ addresses: [server.address], requestTimeoutMs: 3000, reconnectBackoffMs: { initialMs: 20, maxMs: 100 }, ...opts });
  clients.push(c);
  return c;
}

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(`${server.httpUrl}${path}`, { ca, headers }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('placement API security', () => {
  it('serves a client with the token over wss', async () => {
    expect(server.wsUrl.startsWith('wss://')).toBe(true);
    const c = client({ token: TOKEN, tls: { caPath: certPath } });
    expect(await c.isBootstrapped()).toBe(false);
    expect((await c.allocId(2)).length).toBe(2);
  });

  it('fails calls without the token or with a wrong one with Unauthorized', async () => {
    for (const token of [undefined, 'wrong', TOKEN + 'x']) {
      const c = client({ ...(token ? { token } : {}), tls: { caPath: certPath } });
      const err = await c.allocId(1).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(PlacementError);
      expect((err as PlacementError).code).toBe(PlacementErrorCode.Unauthorized);
    }
  });

  it('refuses the upgrade with HTTP 401 before reading any frame', async () => {
    const status = await new Promise<number | undefined>((resolve) => {
      const ws = new WebSocket(server.wsUrl, { ca });
      ws.on('open', () => resolve(undefined));
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode);
        ws.terminate();
      });
      ws.on('error', () => resolve(undefined));
    });
    expect(status).toBe(401);
  });

  it('does not trust an unknown certificate unless told to', async () => {
    const c = client({ token: TOKEN, tls: {}, requestTimeoutMs: 500 });
    await expect(c.isBootstrapped()).rejects.toMatchObject({ code: PlacementErrorCode.Timeout });
    const insecure = client({ token: TOKEN, tls: { rejectUnauthorized: false } });
    expect(await insecure.isBootstrapped()).toBe(false);
  });

  it('requires the token on every HTTP route but /health', async () => {
    for (const path of ['/status', '/stores', '/regions', '/operators']) {
      expect((await get(path)).status).toBe(401);
      expect((await get(path, { authorization: 'Bearer nope' })).status).toBe(401);
      expect((await get(path, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    }
    expect((await get('/health')).status).toBe(200);
  });

  it('never writes the token into its logs', () => {
    expect(logLines.some((l) => l.includes('refused'))).toBe(true);
    expect(logLines.join('\n')).not.toContain(TOKEN);
  });
});
