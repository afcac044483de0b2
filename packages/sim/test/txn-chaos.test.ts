import { execFileSync, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { netnsUnavailable } from '../src/netns/topology';

const ROOT = resolve(import.meta.dirname, '../../..');

// One short transaction chaos run per CI change: `pnpm chaos --workload
// bank|list-append` against real processes (placement + 3 stores, the
// suite's CLI bundle) under SIGKILL / SIGSTOP / leader transfers / splits,
// and partitions in network namespaces when root (as chaos.test.ts).
// The seed comes from the HEAD commit (CHAOS_SEED picks one): even seeds run
// bank, odd ones list-append, so successive runs cover both. 12 s of faults
// (TXN_CHAOS_DURATION_S changes it); the whole test stays under 60 s when
// the machine is not overloaded. Longer runs: pnpm chaos --workload W --duration-s N.
const DURATION_S = Number(process.env['TXN_CHAOS_DURATION_S'] ?? 12);

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
const workload = seed % 2 === 0 ? 'bank' : 'list-append';
const noNetns = await netnsUnavailable();
const flags = ['--duration-s', String(DURATION_S), '--seed', String(seed), '--workload', workload, '--keys', '8', ...(noNetns ? [] : ['--partitions'])];
const replay = `pnpm chaos ${flags.join(' ')}`;
console.warn(`txn-chaos.test.ts: seed ${seed}, ${workload}, ${noNetns ? `no partitions (${noNetns})` : 'partitions in network namespaces'}; replay: ${replay}`);

describe('transaction chaos (real processes)', () => {
  it(`runs ${DURATION_S} s of ${workload} under faults (seed ${seed}) and the checker finds nothing`, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'packages/sim/src/chaos/main.ts'), ...flags], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    expect(code, `chaos exited ${code} (replay: ${replay})\n${err.slice(-4000)}`).toBe(0);
    const summary = JSON.parse(out.trim().split('\n').pop()!) as { workload: string; txns: number; ok: number; checker: string; unreadableKeys: number; faults: number };
    expect(summary.workload).toBe(workload);
    expect(summary.checker, replay).toBe('ok');
    expect(summary.unreadableKeys, replay).toBe(0);
    expect(summary.ok).toBeGreaterThan(20);
    expect(summary.faults).toBeGreaterThan(0);
  }, (DURATION_S + 150) * 1000);
});
