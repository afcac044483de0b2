import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startPlacementServer, type PlacementServer } from '@flotilla/placement';
import { ClientError, FlotillaClient } from '../src/index';

let dir: string | undefined;
let server: PlacementServer | undefined;
let client: FlotillaClient | undefined;

afterEach(async () => {
  client?.close();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  client = server = dir = undefined;
});

describe('FlotillaClient.timestamp', () => {
  it("returns strictly increasing timestamps from placement's oracle, near the wall clock", async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-client-tso-'));
    server = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0' });
    client = await FlotillaClient.connect({ placement: server.address, timeoutMs: 5000 });
    const before = Date.now();
    const one = await client.timestamp();
    const many = await Promise.all(Array.from({ length: 200 }, () => client!.timestamp()));
    const sorted = [one, ...many];
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!).toBeGreaterThan(sorted[i - 1]!);
    const physicalMs = Number(one >> 18n);
    expect(physicalMs).toBeGreaterThanOrEqual(before - 1000);
    expect(physicalMs).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('says so when its route provider has no oracle', async () => {
    const routes = { getRegion: async () => null, scanRegions: async () => [], getStore: async () => null, close: () => {} };
    client = await FlotillaClient.connect({ routes, timeoutMs: 1000 });
    await expect(client.timestamp()).rejects.toThrow(ClientError);
    await expect(client.timestamp()).rejects.toThrow(/no timestamp oracle/);
  });
});
