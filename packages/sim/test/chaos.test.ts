import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../../..');

// A short smoke run of the chaos runner (real processes: placement + 3
// stores, SIGKILL/SIGSTOP/leader transfers/splits). The long run is
// `pnpm chaos --duration-s 60`; this only proves the runner and the cluster
// work end to end on every change.
describe('chaos runner (real processes)', () => {
  it('runs 8 s of faults and finds the history linearizable', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'packages/sim/src/chaos/main.ts'), '--duration-s', '8', '--seed', '3'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    expect(code, `chaos exited ${code}\n${err.slice(-4000)}`).toBe(0);
    const summary = JSON.parse(out.trim().split('\n').pop()!) as { ops: number; faults: number; linearizability: string; unreadableKeys: number };
    expect(summary.linearizability).toBe('ok');
    expect(summary.unreadableKeys).toBe(0);
    expect(summary.ops).toBeGreaterThan(50);
    expect(summary.faults).toBeGreaterThan(0);
  }, 120_000);
});
