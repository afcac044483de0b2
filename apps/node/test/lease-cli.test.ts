import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientLeaseReaper, FlotillaClient } from '@flotilla/client';
import { startTestCluster, type TestCluster } from '@flotilla/store/testing';
import { exited, runCli, startCli, waitFor } from './helpers';

// `flotilla lease`, `put --lease`, `lock -- COMMAND` and `elect` as real
// processes against a cluster in this process (placement with the client's
// reaper, as `flotilla placement` runs it; three stores, two Regions).

let cluster: TestCluster;
let address = '';
beforeAll(async () => {
  const reaper = new ClientLeaseReaper(() => FlotillaClient.connect({ placement: address }));
  cluster = await startTestCluster({ stores: 3, splitKeys: ['m'], placement: { lease: { reaper } } });
  address = cluster.placementAddress;
}, 60_000);
afterAll(async () => {
  await cluster?.close();
});

const str = (x: Uint8Array | null | undefined): string | null => (x ? Buffer.from(x).toString('utf8') : null);

async function readNow(keys: string[]): Promise<(string | null)[]> {
  return (await (await cluster.client.snapshot()).batchGet(keys)).map(str);
}

describe('the lease, lock and elect CLI', () => {
  it('lease grant, ttl, keepalive --once, put --lease, list and revoke; typed failures exit 1', async () => {
    const p = ['--placement', cluster.placementAddress];
    const [g, bad, noCmd, help] = await Promise.all([runCli(['lease', 'grant', '20000', '--json', ...p]), runCli(['lease', 'grant', 'soon', ...p]), runCli(['lock', 'x', ...p]), runCli(['lock', '--help'])]);
    expect(bad.code).toBe(2);
    expect(noCmd.code).toBe(2);
    expect(help.stdout).toMatch(/FLOTILLA_FENCING_TOKEN/);
    expect(g.code, g.stderr).toBe(0);
    const id = (JSON.parse(g.stdout) as { id: number }).id;
    const put = await runCli(['put', '--lease', String(id), 'k/cli', 'v', ...p]);
    expect(put.code, put.stderr).toBe(0);
    const [ttl, ka, list] = await Promise.all([runCli(['lease', 'ttl', '--keys', String(id), ...p]), runCli(['lease', 'keepalive', '--once', String(id), ...p]), runCli(['lease', 'list', ...p])]);
    expect(ttl.stdout).toMatch(new RegExp(`^lease ${id} granted with TTL 20000 ms, remaining \\d+ ms, attached keys \\[k/cli\\]`));
    expect(ka.stdout).toBe(`lease ${id} keepalived with TTL 20000 ms\n`);
    expect(list.stdout).toContain(`${id}\tTTL 20000 ms`);
    expect(await readNow(['k/cli'])).toEqual(['v']);
    const rv = await runCli(['lease', 'revoke', String(id), ...p]);
    expect(rv.stdout).toBe(`lease ${id} revoked\n`);
    expect(await readNow(['k/cli'])).toEqual([null]);
    const again = await runCli(['lease', 'keepalive', '--once', String(id), ...p]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not found/);
  }, 40_000);

  it('lease keepalive runs until the lease is revoked (exit 1); elect leads until SIGTERM and --observe follows it', async () => {
    const p = ['--placement', cluster.placementAddress];
    const { id } = await cluster.client.lease.grant(5000);
    const ka = startCli(['lease', 'keepalive', String(id), ...p]);
    await waitFor('two refreshes', () => ka.out.stdout.split('\n').filter((l) => l.includes('keepalived')).length >= 2, 20_000, 20);
    await cluster.client.lease.revoke(id);
    const kaDone = await exited(ka, 20_000);
    expect(kaDone.code).toBe(1);
    expect(kaDone.stderr).toMatch(/not found|expired/);

    const leader = startCli(['elect', 'elect/cli', 'n1', '--ttl-ms', '3000', ...p]);
    await waitFor('n1 elected', () => leader.out.stdout.startsWith('elected elect/cli n1 revision '), 20_000, 20);
    const observer = startCli(['elect', '--observe', 'elect/cli', ...p]);
    await waitFor('the observer to see n1', () => observer.out.stdout.includes('n1\n'), 20_000, 20);
    leader.kill('SIGTERM');
    expect((await exited(leader, 20_000)).code).toBe(0);
    await waitFor('the observer to see nobody lead', () => observer.out.stdout.includes('(no leader)'), 20_000, 20);
    observer.kill('SIGTERM');
    expect((await exited(observer, 20_000)).code).toBe(0);
  }, 50_000);

  it('lock NAME -- COMMAND runs the command while holding and exits with its status; a second one waits for it', async () => {
    const p = ['--placement', cluster.placementAddress];
    // The first holder runs until the test lets it finish (a file appears); the second must not start before.
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-lock-cli-'));
    try {
      const go = join(dir, 'go');
      const first = startCli(['lock', 'locks/cli', ...p, '--', 'sh', '-c', `echo first $FLOTILLA_FENCING_TOKEN; while [ ! -f ${go} ]; do sleep 0.05; done; exit 3`]);
      await waitFor('the first holder to run', () => first.out.stdout.includes('first'), 20_000, 20);
      const second = startCli(['lock', 'locks/cli', ...p, '--', 'sh', '-c', 'echo second $FLOTILLA_FENCING_TOKEN']);
      await waitFor('the second to queue', async () => (await cluster.client.lease.list()).length >= 2, 20_000, 20);
      expect(second.out.stdout).toBe('');
      writeFileSync(go, '');
      const [r1, r2] = await Promise.all([exited(first, 20_000), exited(second, 20_000)]);
      expect(r1.code, r1.stderr).toBe(3);
      expect(r2.code, r2.stderr).toBe(0);
      const t1 = BigInt(r1.stdout.trim().split(' ')[1]!);
      const t2 = BigInt(r2.stdout.trim().split(' ')[1]!);
      expect(t2).toBeGreaterThan(t1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 50_000);
});
