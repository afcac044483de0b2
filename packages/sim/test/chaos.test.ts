import { execFileSync, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { netnsUnavailable } from '../src/netns/topology';

const ROOT = resolve(import.meta.dirname, '../../..');

// The chaos run CI makes on every change (real processes: placement + 3
// stores, SIGKILL/SIGSTOP/leader transfers/splits): 60 s, as the issue asks
// (CHAOS_DURATION_S shortens it for a quick local run). As root, every
// process gets its own network namespace and partitions join the faults
// (`--partitions`); otherwise the run is on loopback and says why.
//
// The seed changes from commit to commit (the HEAD hash; CHAOS_SEED picks
// one), and odd seeds run lease-based reads, even ones safe (ReadIndex)
// reads, so successive CI runs cover both modes. The replay command is
// printed first and on failure. Longer runs: `pnpm chaos --duration-s N`.
const DURATION_S = Number(process.env['CHAOS_DURATION_S'] ?? 60);

/** chaosSeed: CHAOS_SEED, else from the HEAD commit, else from the hour (not a git checkout). */
function chaosSeed(): number {
  if (process.env['CHAOS_SEED']) return Number(process.env['CHAOS_SEED']);
  try {
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return parseInt(head.slice(0, 8), 16) % 1_000_000;
  } catch {
    return Math.floor(Date.now() / 3_600_000) % 1_000_000;
  }
}

const seed = chaosSeed();
const noNetns = await netnsUnavailable();
const flags = ['--duration-s', String(DURATION_S), '--seed', String(seed), ...(seed % 2 === 1 ? ['--lease-reads'] : []), ...(noNetns ? [] : ['--partitions'])];
const replay = `pnpm chaos ${flags.join(' ')}`;
console.warn(`chaos.test.ts: seed ${seed}, ${seed % 2 === 1 ? 'lease-based' : 'safe'} reads, ${noNetns ? `no partitions (${noNetns})` : 'partitions in network namespaces'}; replay: ${replay}`);

describe('chaos runner (real processes)', () => {
  it(`runs ${DURATION_S} s of faults${noNetns ? '' : ' and partitions'} (seed ${seed}, ${seed % 2 === 1 ? 'lease' : 'safe'} reads) and finds the history linearizable`, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'packages/sim/src/chaos/main.ts'), ...flags], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    expect(code, `chaos exited ${code} (replay: ${replay})\n${err.slice(-4000)}`).toBe(0);
    const summary = JSON.parse(out.trim().split('\n').pop()!) as { ops: number; faults: number; faultKinds: Record<string, number>; linearizability: string; unreadableKeys: number; network: string };
    expect(summary.linearizability, replay).toBe('ok');
    expect(summary.unreadableKeys, replay).toBe(0);
    expect(summary.ops).toBeGreaterThan(50);
    expect(summary.faults).toBeGreaterThan(0);
    expect(summary.network.startsWith(noNetns ? 'loopback' : 'netns')).toBe(true);
  }, (DURATION_S + 120) * 1000);
});
