import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ClusterFile } from '../src/cluster-file';
import type { RegionRow } from '../src/commands/info';
import { alive, cleanEnv, readJson, runCli, waitFor } from './helpers';

// `pnpm flotilla up` exactly as the README runs it: pnpm -> (sh, exec'd
// away) -> node, in a process group of its own as a terminal would start
// it, with real placement and store children. A terminal's Ctrl-C is SIGINT
// to the whole group; a service manager sends SIGTERM to pnpm alone. Each
// way must stop every child and exit 0, every time.

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'flotilla-up-signals-'));
const dataDir = join(dir, 'data');
let running: { pid: number; cluster: ClusterFile | null } | undefined;

afterAll(() => {
  killRunning();
  rmSync(dir, { recursive: true, force: true });
});

/** killRunning SIGKILLs what a failed test left: only what this file started, the pnpm group and the children cluster.json names. */
function killRunning(): void {
  if (!running) return;
  try {
    process.kill(-running.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  for (const p of childPids(running.cluster)) if (alive(p)) process.kill(p, 'SIGKILL');
  running = undefined;
}

/** groupMembers lists the live processes whose process group is pgid (from /proc; zombies count as gone). */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command name in parentheses: state ppid pgrp ...
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') out.push(Number(name));
  }
  return out;
}

function childPids(cluster: ClusterFile | null | undefined): number[] {
  return cluster ? [cluster.placement.pid, ...cluster.stores.map((s) => s.pid)] : [];
}

/** startPnpmUp spawns `pnpm --silent flotilla up` detached (its own process group) and waits for its "up" report and cluster.json. */
async function startPnpmUp(): Promise<{ pid: number; out: { stdout: string; stderr: string }; exit: Promise<number | null>; cluster: ClusterFile }> {
  const args = ['--silent', 'flotilla', 'up', '--stores', '3', '--data-dir', dataDir, '--base-port', '0', '--profile', 'demo', '--log-level', 'warn'];
  const child = spawn('pnpm', args, { cwd: REPO, detached: true, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const pid = child.pid!;
  running = { pid, cluster: null };
  // An early exit ends the wait at once (vi.waitFor would retry a throw until its bound).
  const seen = await waitFor<{ exited?: number; cluster?: ClusterFile } | null>(
    'pnpm flotilla up to report that it is up',
    () => {
      if (child.exitCode !== null) return { exited: child.exitCode };
      if (!out.stdout.includes('Press Ctrl-C')) return null;
      const f = readJson<ClusterFile>(join(dataDir, 'cluster.json'));
      return f && !f.stoppedAt ? { cluster: f } : null;
    },
    120_000,
    100,
  );
  const cluster = seen.cluster;
  if (!cluster) throw new Error(`pnpm flotilla up exited with ${seen.exited}: ${out.stderr}`);
  running.cluster = cluster;
  return { pid, out, exit, cluster };
}

/** within resolves as p does, or rejects naming what after ms (a bound on a wait, not a sleep). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  return Promise.race([p, bound]).finally(() => clearTimeout(timer));
}

const TRIALS: { name: string; send: (pgid: number) => void }[] = [
  { name: 'Ctrl-C (SIGINT to the group) and SIGTERM to pnpm', send: (pgid) => (process.kill(-pgid, 'SIGINT'), process.kill(pgid, 'SIGTERM')) },
  { name: 'SIGTERM to pnpm alone', send: (pgid) => process.kill(pgid, 'SIGTERM') },
  { name: 'Ctrl-C twice', send: (pgid) => (process.kill(-pgid, 'SIGINT'), process.kill(-pgid, 'SIGINT')) },
];

describe('pnpm flotilla up: up means replicated, and every signal stops it cleanly', () => {
  afterEach(killRunning);

  it('reports "up" only once every Region has its full replica count', async () => {
    const up = await startPnpmUp();
    // Checked the moment `up` says it is up, not polled: the claim must already hold.
    const r = await runCli(['regions', '--json', '--data-dir', dataDir, '--log-level', 'warn'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const regions = JSON.parse(r.stdout) as RegionRow[];
    expect(regions.length).toBeGreaterThan(0);
    for (const region of regions) expect(region.peers.map((p) => p.role), JSON.stringify(region)).toEqual(['voter', 'voter', 'voter']);
    expect(up.out.stdout).toMatch(/^Flotilla is up: .*; every Region has 3 replicas \(\d+ Regions?\)$/m);
    process.kill(up.pid, 'SIGTERM');
    expect(await within(up.exit, 60_000, 'pnpm flotilla up to exit')).toBe(0);
  }, 180_000);

  for (const trial of TRIALS) {
    it(`${trial.name}: exits 0 after stopping every child`, async () => {
      const up = await startPnpmUp();
      const children = childPids(up.cluster);
      expect(children.every(alive)).toBe(true);
      trial.send(up.pid);
      const code = await within(up.exit, 60_000, 'pnpm flotilla up to exit');
      expect(code, `stdout:\n${up.out.stdout}\nstderr:\n${up.out.stderr}`).toBe(0);
      expect(up.out.stdout).toContain('Stopped.');
      expect(up.out.stderr).not.toContain('second shutdown request');
      // Not polled: when `up` has exited, its children must already be gone.
      expect(children.filter(alive)).toEqual([]);
      expect(groupMembers(up.pid)).toEqual([]);
      expect(readJson<ClusterFile>(join(dataDir, 'cluster.json'))?.stoppedAt).toBeDefined();
    }, 180_000);
  }
});
