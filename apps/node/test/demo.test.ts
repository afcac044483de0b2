import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readJson, runCli } from './helpers';

// `flotilla demo split` end to end with the demo profile's thresholds: the
// issue's 50,000 keys (small values, so the load is quick) split the key
// space into dozens of Regions, then every key and one ordered scan are verified.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('flotilla demo split', () => {
  it('starts a cluster, loads keys, splits into at least 8 Regions, verifies every key and an ordered scan, stops the cluster', async () => {
    const dataDir = join(dir, 'demo');
    const r = await runCli(['demo', 'split', '--data-dir', dataDir, '--keys', '50000', '--value-bytes', '16', '--base-port', '0', '--settle-ms', '20000', '--log-level', 'warn'], { timeoutMs: 150_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('Starting a local cluster');
    expect(r.stdout).toContain('verified: 50000/50000 keys read back with the values written');
    expect(r.stdout).toMatch(/verified: one scan returned 50000 keys in order, crossing \d+ Region boundaries/);
    expect(r.stdout).toContain('Demo passed.');
    const regions = Number(/(\d+) regions?\n/.exec(r.stdout)?.[1]);
    expect(regions).toBeGreaterThanOrEqual(8);
    // Not a TTY: progress comes as plain lines.
    expect(r.stderr).toMatch(/loaded \d+\/50000 keys/);
    // It stopped what it started.
    expect(readJson<{ stoppedAt?: string }>(join(dataDir, 'cluster.json'))?.stoppedAt).toBeDefined();
  }, 180_000);
});
