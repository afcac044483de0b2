import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger, type Logger } from '@flotilla/proto';
import { UsageError } from '../src/args';
import { loadOrCreateClusterSecret } from '../src/cluster-secret';
import { runCli } from './helpers';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe("flotilla up's cluster secret file", () => {
  it('is made once with mode 0600 and read back after', () => {
    const d = join(dir, 'fresh');
    const first = loadOrCreateClusterSecret(d, silentLogger);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(join(d, 'cluster-secret')).mode & 0o777).toBe(0o600);
    expect(loadOrCreateClusterSecret(d, silentLogger)).toBe(first);
  });

  it('warns when others can read it, and refuses one that is not a secret', () => {
    const d = join(dir, 'loose');
    loadOrCreateClusterSecret(d, silentLogger);
    chmodSync(join(d, 'cluster-secret'), 0o644);
    const warned: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (_o, msg) => void warned.push(msg ?? '') };
    loadOrCreateClusterSecret(d, logger);
    expect(warned.join('\n')).toContain('chmod 600');
    writeFileSync(join(d, 'cluster-secret'), 'short\n');
    expect(() => loadOrCreateClusterSecret(d, silentLogger)).toThrow(UsageError);
    expect(readFileSync(join(d, 'cluster-secret'), 'utf8')).toBe('short\n');
  });
});

describe('the raft-port flags', () => {
  it('are usage errors when incomplete: a short --cluster-secret, --tls-client-auth without a CA', async () => {
    const short = await runCli(['store', '--placement', '127.0.0.1:9', '--data-dir', join(dir, 's1'), '--cluster-secret', 'too-short']);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('--cluster-secret: expected at least 16 characters');
    const noCa = await runCli(['up', '--data-dir', join(dir, 'u1'), '--tls-cert', fixture('store-cert.pem'), '--tls-key', fixture('store-key.pem'), '--tls-client-auth']);
    expect(noCa.code).toBe(2);
    expect(noCa.stderr).toContain('--tls-client-auth: needs --tls-cert, --tls-key and --tls-ca');
    const help = await runCli(['store', '--help']);
    expect(help.stdout).toMatch(/--cluster-secret SECRET.*loopback/);
    expect(help.stdout).toContain('--tls-client-auth');
  }, 60_000);
});

describe('addresses for real deployments', () => {
  it('refuses to bind every interface without an address to announce, naming the flag to add (exit 2, nothing created)', async () => {
    const d = join(dir, 'wild');
    const listen = await runCli(['store', '--placement', '127.0.0.1:9', '--data-dir', d, '--listen', '0.0.0.0:0', '--cluster-secret', 'a-real-cluster-secret-123']);
    expect(listen.code).toBe(2);
    expect(listen.stderr).toContain('--listen 0.0.0.0:0 binds every interface');
    expect(listen.stderr).toContain('add --advertise HOST:PORT');
    const raft = await runCli(['store', '--placement', '127.0.0.1:9', '--data-dir', d, '--listen', '127.0.0.1:0', '--raft-listen', '0.0.0.0:0', '--cluster-secret', 'a-real-cluster-secret-123']);
    expect(raft.code).toBe(2);
    expect(raft.stderr).toContain('add --advertise-raft HOST:PORT');
    expect(() => statSync(d)).toThrow();
    const help = await runCli(['store', '--help']);
    expect(help.stdout).toContain('--advertise-raft HOST:PORT');
  }, 60_000);
});
