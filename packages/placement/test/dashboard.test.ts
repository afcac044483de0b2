import { mkdtempSync, rmSync } from 'node:fs';
import { get, type ClientRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Region } from '@flotilla/proto';
import { PlacementClient, PlacementError, startPlacementServer, type PlacementServer } from '../src';

// The dashboard's server side without a browser (apps/node/test/dashboard.test.ts
// has the page in chromium): Region flow from heartbeats, /regions/hot,
// the ?token= rule and its redaction in logs, and the event stream's bound.
const TOKEN = 'dashboard-unit-token';
const WRONG = 'wrong-token-that-must-not-be-logged';
let dir: string;
let server: PlacementServer;
let client: PlacementClient;
let region: Region;
const logs: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'placement-dash-'));
  const capture = (level: string) => (obj: object, msg?: string) => void logs.push(`${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  server = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0', token: TOKEN, logger: { debug: capture('debug'), info: capture('info'), warn: capture('warn'), error: capture('error') } });
  client = new PlacementClient({ addresses: [server.address], token: TOKEN });
  const [s1, r1, p1] = (await client.allocId(3)) as [number, number, number];
  region = { id: r1, startKey: new Uint8Array(), endKey: new Uint8Array(), epoch: { version: 1, confVer: 1 }, peers: [{ id: p1, storeId: s1, role: 'voter' }] };
  await client.bootstrap({ id: s1, address: 'a:1' }, region);
});

afterAll(async () => {
  client?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const auth = { authorization: `Bearer ${TOKEN}` };
const getJson = async (path: string, headers: Record<string, string> = auth): Promise<{ status: number; body: any }> => {
  const res = await fetch(server.httpUrl + path, { headers });
  return { status: res.status, body: await res.json() };
};

describe('placement dashboard routes', () => {
  it('keeps the flow of the last Region heartbeat and lists hot Regions by it', async () => {
    const flow = { readKeysPerSec: 3, readBytesPerSec: 300, writeKeysPerSec: 7, writeBytesPerSec: 7000 };
    await client.regionHeartbeat({ region, leader: region.peers[0]!, approximateSizeBytes: 10, approximateKeys: 1, flow });
    expect((await getJson(`/regions/id/${region.id}`)).body.region.flow).toEqual(flow);
    const hot = await getJson('/regions/hot?by=readKeys&limit=5');
    expect(hot.status).toBe(200);
    expect(hot.body.regions.map((r: { id: number }) => r.id)).toEqual([region.id]);
    expect((await getJson('/regions/hot?by=sideways')).status).toBe(400);
    expect((await getJson('/regions/hot?limit=0')).status).toBe(400);
    const bad = await client.regionHeartbeat({ region, leader: region.peers[0]!, approximateSizeBytes: 10, approximateKeys: 1, flow: { ...flow, writeBytesPerSec: -1 } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(PlacementError);
    // A heartbeat without flow (an older store, or no traffic reported) clears it: the rates are the last interval's, not a sum.
    await client.regionHeartbeat({ region, leader: region.peers[0]!, approximateSizeBytes: 10, approximateKeys: 1 });
    expect((await getJson('/regions/hot?by=writeBytes')).body.regions).toEqual([]);
  });

  it('takes ?token= on dashboard paths only, and never logs it', async () => {
    expect((await getJson(`/dashboard/snapshot?token=${TOKEN}`, {})).status).toBe(200);
    expect((await getJson(`/stores?token=${TOKEN}`, {})).status).toBe(401);
    expect((await getJson(`/dashboard/snapshot?token=${WRONG}`, {})).status).toBe(401);
    const snap = (await getJson('/dashboard/snapshot')).body;
    expect(snap.regions.map((r: { id: number }) => r.id)).toEqual([region.id]);
    expect(snap.regions[0]).toMatchObject({ startFrac: 0, endFrac: 1 });
    expect(logs.some((l) => l.includes('token=REDACTED'))).toBe(true);
    expect(logs.join('\n')).not.toContain(WRONG);
  });

  it('streams snapshots as server-sent events, at most 16 streams at once', async () => {
    const open: ClientRequest[] = [];
    const connect = (): Promise<{ res: IncomingMessage; first: string }> =>
      new Promise((resolve, reject) => {
        const req = get(`${server.httpUrl}/dashboard/events?token=${TOKEN}`, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            text += d;
            const at = text.indexOf('event: snapshot');
            if (res.statusCode !== 200 || (at >= 0 && text.includes('\n\n', at))) resolve({ res, first: text });
          });
          res.on('end', () => resolve({ res, first: text }));
        });
        req.on('error', reject);
        open.push(req);
      });
    try {
      const streams = await Promise.all(Array.from({ length: 16 }, connect));
      for (const s of streams) {
        expect(s.res.statusCode).toBe(200);
        expect(s.res.headers['content-type']).toMatch(/^text\/event-stream/);
        const data = /event: snapshot\ndata: (.*)\n/.exec(s.first)?.[1];
        expect(JSON.parse(data!).regionTotal).toBe(1);
      }
      const extra = await connect();
      expect(extra.res.statusCode).toBe(503);
      expect(extra.first).toContain('16 dashboard event streams');
    } finally {
      for (const r of open) r.destroy();
    }
    // Closed streams free their slots.
    await expect.poll(async () => (await connect()).res.statusCode, { timeout: 5_000 }).toBe(200);
    for (const r of open) r.destroy();
  });
});
