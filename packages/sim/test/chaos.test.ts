import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../../..');

// The chaos run CI makes on every change (real processes: placement + 3
// stores, SIGKILL/SIGSTOP/leader transfers/splits): 60 s, as the issue asks
// (CHAOS_DURATION_S shortens it for a quick local run). Longer runs:
// `pnpm chaos --duration-s N`.
const DURATION_S = Number(process.env['CHAOS_DURATION_S'] ?? 60);
describe('chaos runner (real processes)', () => {
  it(`runs ${DURATION_S} s of faults and finds the history linearizable`, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'packages/sim/src/chaos/main.ts'), '--duration-s', String(DURATION_S), '--seed', '3'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
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
  }, (DURATION_S + 120) * 1000);
});
