import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogEngine } from '@flotilla/log-engine';
import { buildShim, readEvents, restoreFromShadow, shimEnv, type KillAt } from '../src/powerloss/shim';

const ROOT = resolve(import.meta.dirname, '../../..');
const FIXTURES = join(import.meta.dirname, 'fixtures');

// Power-loss mode (docs/testing.md, "Power loss"): an LD_PRELOAD shim keeps
// what a power loss would leave of a data directory. The first tests pin
// the shim's model on tiny files; the last runs the power-loss driver
// against real store processes. Longer runs: `pnpm powerloss --crashes N`.
const shim = buildShim();
if (!shim.ok) console.log(`power-loss tests skipped: ${shim.reason}`);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** crashChild runs a fixture under the shim in a fresh data directory, expects it to die by SIGKILL, and restores the directory from the shadow. */
function crashChild(args: string[], killAt?: KillAt): { dir: string; shadow: string } {
  const root = mkdtempSync(join(tmpdir(), 'flotilla-powerloss-test-'));
  dirs.push(root);
  const dir = join(root, 'data');
  const shadow = join(root, 'shadow');
  mkdirSync(dir);
  const r = spawnSync(process.execPath, [...args, dir], { cwd: ROOT, env: shimEnv(shim.ok ? shim.path : '', dir, shadow, killAt ? { killAt } : {}), encoding: 'utf8' });
  expect(r.signal, `the child should die by SIGKILL; it exited ${r.status}: ${r.stderr}`).toBe('SIGKILL');
  restoreFromShadow(shadow, dir);
  return { dir, shadow };
}

const contents = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f), 'latin1')]));

describe.skipIf(!shim.ok)('power-loss shim: what survives', () => {
  it('only fsynced content, and only names a directory fsync saw (write, O_TRUNC, ftruncate, rename, unlink)', () => {
    const { dir } = crashChild([join(FIXTURES, 'powerloss-child.mjs'), 'names']);
    expect(contents(dir)).toEqual({
      unsynced: '', // named by the directory fsync, its content never synced; its unlink was not made durable
      synced: 'kept', // the later O_TRUNC + write was never fsynced
      old: 'old', // the rename over it was never followed by a directory fsync
      trunc: '0123456789', // the ftruncate was never fsynced
      trunc2: 'ab\0\0XY', // truncated, then written past the end, then fsynced: the gap is zeros
    }); // and no old.tmp or late: fsynced, but their names never were
  });

  it('a rename and an unlink are durable after the directory fsync; POWERLOSS_KILL_AT kills at the chosen fsync, before it counts', () => {
    const { dir, shadow } = crashChild([join(FIXTURES, 'powerloss-child.mjs'), 'renames'], { prefix: 'killme$', n: 2, when: 'before' });
    expect(contents(dir)).toEqual({ a: 'A2', killme: 'first' });
    const events = readEvents(shadow).map((e) => `${e.kind} ${e.name}`);
    expect(events.filter((e) => e.endsWith('killme'))).toEqual(['fsync killme', 'kill-before killme']);
  });

  it('SQLite through the shim: commits with synchronous=NORMAL are lost, with FULL they survive', async () => {
    const { dir } = crashChild(['--import', 'tsx', join(FIXTURES, 'powerloss-sqlite-child.ts')]);
    const last = async (name: string) => {
      const e = LogEngine.open({ path: join(dir, name) });
      try {
        return e.lastIndex(1);
      } finally {
        await e.close();
      }
    };
    expect(await last('full.db')).toBe(3);
    expect(await last('relaxed.db')).toBe(0);
  });
});

// The CI run: placement + 3 real stores under the shim, at least 10 crash
// points (one store at a time, or, in 70 % of the draws, all three at once:
// three crash points for one restart), then the history, the replicas and
// every crash's durable state are checked. About 46 s on the shared 2-core
// box at load 9 with the suite's CLI bundle (65 s through tsx at load 7);
// the bound covers a loaded one. The acceptance runs are longer:
// docs/testing.md.
describe.skipIf(!shim.ok)('power-loss run (real processes)', () => {
  it('loses no acknowledged write over 10+ crash points, keeps the log within the durable apply, and the replicas converge', async () => {
    const args = ['--import', 'tsx', join(ROOT, 'packages/sim/src/powerloss/main.ts'), '--crashes', '10', '--seed', '5', '--blackout-share', '0.7', '--max-duration-s', '150'];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    expect(code, `powerloss exited ${code}\n${err.slice(-5000)}`).toBe(0);
    const summary = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number | string>;
    expect(summary['crashes']).toBeGreaterThanOrEqual(10);
    expect(summary['invariantViolations']).toBe(0);
    expect(summary['linearizability']).toBe('ok');
    expect(summary['unreadableKeys']).toBe(0);
    expect(summary['replicaDifferences']).toBe(0);
    expect(summary['acked']).toBeGreaterThan(50);
  }, 300_000);
});
