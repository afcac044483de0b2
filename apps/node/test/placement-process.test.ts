import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { exited, readJson, runCli, startCli, waitFor } from './helpers';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-placement-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('flotilla placement', () => {
  it('starts, prints its address, serves /health, and stops cleanly on SIGTERM', async () => {
    const child = startCli(['placement', '--data-dir', join(dir, 'p'), '--listen', '127.0.0.1:0', '--log-level', 'warn']);
    try {
      const line = await waitFor('the placement address line on stdout', () => child.out.stdout.split('\n').find((l) => l.startsWith('{')), 30_000);
      const info = JSON.parse(line) as { service: string; address: string; pid: number };
      expect(info.service).toBe('placement');
      expect(info.pid).toBe(child.pid);
      const res = await fetch(`http://${info.address}/health`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { ok: boolean }).ok).toBe(true);
      expect(existsSync(join(dir, 'p'))).toBe(true);
      child.kill('SIGTERM');
      const r = await exited(child, 15_000);
      expect(r.code, r.stderr).toBe(0);
      // The port is released: nothing answers any more.
      await expect(fetch(`http://${info.address}/health`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 120_000);

  it('flotilla up exits 1 with the child log when the placement port is taken, leaving nothing running', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const dataDir = join(dir, 'busy');
      const r = await runCli(['up', '--data-dir', dataDir, '--base-port', String(port), '--stores', '1', '--log-level', 'warn'], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain('placement exited during startup');
      expect(r.stderr).toContain('EADDRINUSE');
      expect(r.stderr).toContain('--base-port');
      expect(readJson(join(dataDir, 'cluster.json'))).toBeNull();
    } finally {
      blocker.close();
    }
  }, 120_000);
});
