import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { startCli, waitFor, type CliChild } from './helpers';
import { announced, httpJson } from './processes';

// Leases with every part a real process: three `flotilla placement`
// members (whose lease reaper is the one the command builds) and three
// stores, keys of one lease in two Regions. The placement leader is
// SIGKILLed while keepalives flow: the keys stay (the new leader gives the
// lease a full TTL), and once keepalives stop they go within TTL + 2 s,
// deleted by the new leader's reaper.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-lease-failover-'));
const children: CliChild[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function start(args: string[]): CliChild {
  const child = startCli([...args, '--log-level', 'warn']);
  children.push(child);
  return child;
}

describe('leases across a placement leader kill', () => {
  it('keys stay while keepalives flow across the failover, and go within TTL + 2 s after they stop', async () => {
    const names = ['p1', 'p2', 'p3'];
    const addresses = await Promise.all(names.map(async () => `127.0.0.1:${await freePort()}`));
    const initial = names.map((n, i) => `${n}=${addresses[i]}`).join(',');
    const members = names.map((n) => start(['placement', '--name', n, '--initial-cluster', initial, '--data-dir', join(dir, n)]));
    await Promise.all(members.map((m, i) => announced(m, `placement ${names[i]}`)));
    const placement = addresses.join(',');
    const stores = [1, 2, 3].map((i) => start(['store', '--placement', placement, '--data-dir', join(dir, `store-${i}`), '--listen', '127.0.0.1:0']));
    await Promise.all(stores.map((s, i) => announced(s, `store ${i + 1}`)));

    const client = await FlotillaClient.connect({ placement, timeoutMs: 20_000 });
    try {
      await waitFor('a second Region', async () => (await client.split('m')).length === 2 || (await client.regions()).length >= 2, 30_000, 200);
      const ttl = 5000;
      const { id } = await client.lease.grant(ttl);
      const ka = await client.lease.keepAlive(id);
      await client.put('a/lease', '1', { lease: id });
      await client.put('z/lease', '2', { lease: id });
      const both = async (): Promise<(string | null)[]> => (await (await client.snapshot()).batchGet(['a/lease', 'z/lease'])).map((v) => (v ? Buffer.from(v).toString() : null));
      expect(await both()).toEqual(['1', '2']);

      let leader = -1;
      await waitFor('the placement leader', async () => {
        for (const [i, a] of addresses.entries()) if ((await httpJson<{ role: string }>(`http://${a}/health`).catch(() => ({ role: '' }))).role === 'leader') leader = i;
        return leader >= 0;
      }, 20_000, 100);
      members[leader]!.kill('SIGKILL');
      // Keepalives flow through the failover: for two TTLs after the kill, every look finds both keys.
      const until = performance.now() + 2 * ttl;
      while (performance.now() < until) {
        expect(await both()).toEqual(['1', '2']);
        expect(ka.isLost).toBe(false);
      }
      await client.lease.keepAliveOnce(id);
      ka.close();
      const stoppedAt = performance.now();
      await waitFor('the keys to go', async () => (await both()).every((v) => v === null), ttl + 10_000, 50);
      expect(performance.now() - stoppedAt).toBeLessThan(ttl + 2000);
      const gone = (await client.lease.timeToLive(id).catch((e: unknown) => e)) as { code?: string };
      expect(gone.code).toBe('LeaseNotFound');
    } finally {
      client.close();
    }
  }, 55_000);
});
