import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { exited, readJson, runCli, startCli, waitFor } from './helpers';

// A self-signed certificate for 127.0.0.1 (fixtures/README.md).
const certPath = fileURLToPath(new URL('./fixtures/test-cert.pem', import.meta.url));
const keyPath = fileURLToPath(new URL('./fixtures/test-key.pem', import.meta.url));
const TOKEN = 'cli-test-token-41b7e3c9';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-security-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a cluster started with a token and TLS', () => {
  it('serves ctl commands that bring the token, refuses those that do not, and never logs the token', async () => {
    const dataDir = join(dir, 'c');
    const up = startCli(['up', '--data-dir', dataDir, '--stores', '1', '--base-port', '0', '--profile', 'demo', '--tls-cert', certPath, '--tls-key', keyPath, '--tls-ca', certPath, '--log-level', 'debug'], {
      env: { FLOTILLA_TOKEN: TOKEN },
    });
    try {
      await waitFor('flotilla up is up', () => up.out.stdout.includes('Flotilla is up'), 90_000);
      const file = readJson<{ tls?: { caPath?: string }; placement: { address: string } }>(join(dataDir, 'cluster.json'));
      expect(file?.tls?.caPath).toBe(certPath);
      expect(JSON.stringify(file)).not.toContain(TOKEN);
      expect(up.out.stdout).toContain(`https://${file!.placement.address}/health`);

      const put = await runCli(['put', 'hello', 'world', '--data-dir', dataDir], { env: { FLOTILLA_TOKEN: TOKEN } });
      expect(put.code, put.stderr).toBe(0);
      const get = await runCli(['get', 'hello', '--data-dir', dataDir, '--token', TOKEN]);
      expect(get.code, get.stderr).toBe(0);
      expect(get.stdout.trim()).toBe('world');
      const regions = await runCli(['regions', '--json', '--data-dir', dataDir], { env: { FLOTILLA_TOKEN: TOKEN } });
      expect(regions.code, regions.stderr).toBe(0);

      const noToken = await runCli(['get', 'hello', '--data-dir', dataDir, '--timeout-ms', '3000']);
      expect(noToken.code).toBe(1);
      expect(noToken.stderr).toMatch(/Unauthorized|API token/);
      const wrong = await runCli(['put', 'x', 'y', '--data-dir', dataDir, '--token', 'not-the-token']);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/Unauthorized|API token/);
      const noRegions = await runCli(['regions', '--data-dir', dataDir, '--timeout-ms', '3000']);
      expect(noRegions.code).toBe(1);
      expect(noRegions.stderr).toContain('401');
    } finally {
      up.kill('SIGTERM');
      const r = await exited(up, 30_000);
      expect(r.code, r.stderr).toBe(0);
    }
    // Debug-level logs of every process (the children's files and up's own stderr) never hold the token.
    const logs = readdirSync(join(dataDir, 'logs')).map((f) => readFileSync(join(dataDir, 'logs', f), 'utf8'));
    expect(logs.length).toBe(2);
    expect(logs.join('\n')).toContain('"level":20'); // debug lines were written
    expect(logs.join('\n')).toContain('refused');
    for (const text of [...logs, up.out.stderr, up.out.stdout]) expect(text).not.toContain(TOKEN);
  }, 180_000);

  it('rejects half a certificate and a short token as usage errors', async () => {
    const half = await runCli(['placement', '--data-dir', join(dir, 'p'), '--listen', '127.0.0.1:0', '--tls-cert', certPath]);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain('--tls-cert and --tls-key go together');
    const short = await runCli(['store', '--placement', '127.0.0.1:1', '--data-dir', join(dir, 's')], { env: { FLOTILLA_TOKEN: 'short' } });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('FLOTILLA_TOKEN: expected at least 8 characters');
  }, 60_000);
});
