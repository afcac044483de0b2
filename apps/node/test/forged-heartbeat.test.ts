import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PlacementClient } from '@flotilla/placement/client';
import type { ClusterFile } from '../src/cluster-file';
import { forgeHeartbeat, type ForgeOutcome, type ForgeTarget } from './forge';
import { exited, readJson, runCli, startCli, waitFor, type CliChild } from './helpers';

// Issue #15's forged-heartbeat attack, replayed against real `flotilla up`
// clusters: once with every default, once set up as docs/security.md says
// (API token, TLS with the cluster CA, mutual TLS on the raft port). An
// intruder that can reach the raft port must be refused at the handshake,
// and the Region leader must keep its term.

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const TOKEN = 'forged-heartbeat-token-7d21';
const CLOSE_HANDSHAKE_REJECTED = 4001;

const dir = mkdtempSync(join(tmpdir(), 'flotilla-forge-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Up {
  up: CliChild;
  dataDir: string;
  cluster: ClusterFile;
  pc: PlacementClient;
}

async function startUp(name: string, extra: string[], env: Record<string, string> = {}, tls?: { caPath: string }): Promise<Up> {
  const dataDir = join(dir, name);
  const up = startCli(['up', '--stores', '1', '--data-dir', dataDir, '--base-port', '0', '--profile', 'demo', '--log-level', 'info', ...extra], { env });
  await waitFor('flotilla up is up', () => {
    if (up.exitCode !== null) throw new Error(`flotilla up exited with ${up.exitCode}: ${up.out.stderr}`);
    return up.out.stdout.includes('Press Ctrl-C');
  }, 90_000, 200);
  const cluster = readJson<ClusterFile>(join(dataDir, 'cluster.json'))!;
  const pc = new PlacementClient({ addresses: [cluster.placement.address], ...(env['FLOTILLA_TOKEN'] ? { token: env['FLOTILLA_TOKEN'] } : {}), ...(tls ? { tls } : {}) });
  return { up, dataDir, cluster, pc };
}

async function stopUp(u: Up): Promise<void> {
  u.pc.close();
  u.up.kill('SIGTERM');
  const r = await exited(u.up, 30_000);
  expect(r.code, r.stderr).toBe(0);
}

/** target finds Region 1's leader and its store's raft address through placement. */
async function target(pc: PlacementClient): Promise<ForgeTarget & { httpAddress: string }> {
  return waitFor('a leader of the first Region with a raft address', async () => {
    const r = await pc.getRegion(new Uint8Array());
    if (!r?.leader) return null;
    const s = await pc.getStore(r.leader.storeId);
    const raftAddress = s?.labels?.['raftAddress'];
    return raftAddress ? { raftAddress, region: r.region, leader: r.leader, httpAddress: s.address } : null;
  }, 30_000);
}

/** term reads the leader's raft term from its store's /regions/ID route. */
async function term(t: ForgeTarget & { httpAddress: string }, scheme: 'http' | 'https', fetchTerm: (url: string) => Promise<number>): Promise<number> {
  return fetchTerm(`${scheme}://${t.httpAddress}/regions/${t.region.id}`);
}

const plainTerm = async (url: string): Promise<number> => ((await (await fetch(url, { signal: AbortSignal.timeout(2000) })).json()) as { term: number }).term;

/**
 * settle: after a run that got welcomed (the bug), give the forged term a
 * bounded chance to show up, so the failure says what the attack did.
 */
async function termAfter(outcomes: ForgeOutcome[], read: () => Promise<number>, before: number): Promise<number> {
  if (outcomes.some((o) => o.welcomed)) {
    await waitFor('the forged heartbeat to reach raft', async () => (await read()) !== before, 5_000).catch(() => undefined);
  }
  return read();
}

describe('the forged-heartbeat attack on the raft port', () => {
  it('is refused at the handshake of a `flotilla up` cluster with defaults, and the leader keeps its term', async () => {
    const u = await startUp('defaults', []);
    try {
      const t = await target(u.pc);
      const before = await term(t, 'http', plainTerm);
      // The development secret is in the source: an intruder signs with it. A random MAC is the blind guess.
      const withDevSecret = await forgeHeartbeat(t, { mac: 'development-secret' });
      const withRandomMac = await forgeHeartbeat(t, { mac: 'random' });
      const after = await termAfter([withDevSecret, withRandomMac], () => term(t, 'http', plainTerm), before);
      expect({ withDevSecret, withRandomMac, term: after }).toMatchObject({
        withDevSecret: { challenged: true, welcomed: false, closeCode: CLOSE_HANDSHAKE_REJECTED },
        withRandomMac: { challenged: true, welcomed: false, closeCode: CLOSE_HANDSHAKE_REJECTED },
        term: before,
      });

      // The per-cluster secret: kept with the data dir, owner-only, and never on a command line, in cluster.json or in a log.
      const secretPath = join(u.dataDir, 'cluster-secret');
      expect(statSync(secretPath).mode & 0o777).toBe(0o600);
      const secret = readFileSync(secretPath, 'utf8').trim();
      expect(secret).toMatch(/^[0-9a-f]{64}$/);
      for (const p of [u.cluster.placement, ...u.cluster.stores]) expect(readFileSync(`/proc/${p.pid}/cmdline`, 'utf8')).not.toContain(secret);
      expect(readFileSync(join(u.dataDir, 'cluster.json'), 'utf8')).not.toContain(secret);
      const logs = readdirSync(join(u.dataDir, 'logs')).map((f) => readFileSync(join(u.dataDir, 'logs', f), 'utf8'));
      expect(logs.join('\n')).toContain('inbound handshake rejected');
      for (const text of [...logs, u.up.out.stdout, u.up.out.stderr]) expect(text).not.toContain(secret);
    } finally {
      await stopUp(u);
    }
    // (A second `up` on the directory reads the same file back: cluster-secret.test.ts.)
  }, 180_000);

  it('is refused at the TLS handshake of the docs/security.md setup (token, cluster CA, --tls-client-auth), and the leader keeps its term', async () => {
    const ca = readFileSync(fixture('ca-cert.pem'));
    const tlsFlags = ['--tls-cert', fixture('store-cert.pem'), '--tls-key', fixture('store-key.pem'), '--tls-ca', fixture('ca-cert.pem'), '--tls-client-auth'];
    const u = await startUp('secure', tlsFlags, { FLOTILLA_TOKEN: TOKEN }, { caPath: fixture('ca-cert.pem') });
    try {
      const t = await target(u.pc);
      const https = await import('node:https');
      const secureTerm = (url: string): Promise<number> =>
        new Promise((resolve, reject) => {
          https.get(url, { ca, headers: { authorization: `Bearer ${TOKEN}` }, timeout: 2000 }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve((JSON.parse(body) as { term: number }).term));
          }).on('error', reject);
        });
      const before = await term(t, 'https', secureTerm);
      const noCertificate = await forgeHeartbeat(t, { mac: 'development-secret', tls: { ca } });
      const strangersCertificate = await forgeHeartbeat(t, { mac: 'development-secret', tls: { ca, cert: readFileSync(fixture('intruder-cert.pem')), key: readFileSync(fixture('intruder-key.pem')) } });
      // Defence in depth: even with a store's own certificate (stolen), the cluster secret still refuses the hello.
      const stolenCertificate = await forgeHeartbeat(t, { mac: 'development-secret', tls: { ca, cert: readFileSync(fixture('store-cert.pem')), key: readFileSync(fixture('store-key.pem')) } });
      const after = await termAfter([noCertificate, strangersCertificate, stolenCertificate], () => term(t, 'https', secureTerm), before);
      expect({ noCertificate, strangersCertificate, stolenCertificate, term: after }).toMatchObject({
        noCertificate: { challenged: false, welcomed: false },
        strangersCertificate: { challenged: false, welcomed: false },
        stolenCertificate: { challenged: true, welcomed: false, closeCode: CLOSE_HANDSHAKE_REJECTED },
        term: before,
      });
    } finally {
      await stopUp(u);
    }
  }, 180_000);
});

describe('flotilla store with the development secret', () => {
  it('refuses to bind or dial anything but loopback, says why, exits 2 and leaves no data dir', async () => {
    const cases = [
      { flags: ['--listen', '0.0.0.0:0'], offending: '--listen 0.0.0.0:0' },
      { flags: ['--raft-listen', '0.0.0.0:0'], offending: '--raft-listen 0.0.0.0:0' },
      { flags: ['--placement', '10.11.12.13:20160'], offending: '--placement 10.11.12.13:20160' },
      { flags: ['--advertise', 'store-1.example:20161'], offending: '--advertise store-1.example:20161' },
    ];
    const results = await Promise.all(
      cases.map(async (c, i) => {
        const dataDir = join(dir, `insecure-${i}`);
        const r = await runCli(['store', '--placement', '127.0.0.1:9', '--data-dir', dataDir, ...c.flags], { timeoutMs: 20_000 });
        return { ...r, dataDir };
      }),
    );
    results.forEach((r, i) => {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('development cluster secret');
      expect(r.stderr).toContain(cases[i]!.offending);
      expect(r.stderr).toContain('--cluster-secret');
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(() => statSync(r.dataDir)).toThrow();
    });
  }, 60_000);
});
