import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startCluster, waitFor, type TestCluster } from './helpers';

// maxClientConnections was configured and documented but nothing read it:
// a store accepted any number of client connections.
let c: TestCluster;
beforeAll(async () => {
  c = await startCluster(1, { config: { maxClientConnections: 3 } });
}, 30_000);
afterAll(async () => {
  await c?.close();
});

/** dial opens a client connection, resolving with the socket or the HTTP status and body that refused it. */
function dial(address: string): Promise<{ ws?: WebSocket; status?: number; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${address}/client`);
    ws.on('open', () => resolve({ ws }));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', () => {});
  });
}

describe('client connection limit', () => {
  it('refuses the connection past maxClientConnections with 503 and a reason, and admits one again after a close', async () => {
    const address = c.stores[0]!.address;
    const open: WebSocket[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await dial(address);
      expect(r.ws).toBeDefined();
      open.push(r.ws!);
    }
    const refused = await dial(address);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatch(/too many client connections \(limit 3\)/);
    open.pop()!.close();
    const again = await waitFor('a free connection slot', async () => {
      const r = await dial(address);
      if (r.ws) return r.ws;
      return undefined;
    });
    open.push(again);
    for (const ws of open) ws.close();
  });
});
