// cli.test: the sim:raft command line, run as a real child process: its
// exit status is what CI and humans rely on.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cli = join(dirname(fileURLToPath(import.meta.url)), 'cli.ts');

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('sim:raft cli', () => {
  it('exits 0 and prints a JSON summary when every seed passes', () => {
    const r = run(['--seeds', '3', '--start', '7', '--rounds', '300']);
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { passed: number; failed: number; seeds: number };
    expect(summary).toMatchObject({ seeds: 3, passed: 3, failed: 0 });
    expect(r.stderr).toContain('progress: 3/3 seeds');
  });

  it('exits 1 and prints each failing seed with its replay command when a checker fires', () => {
    // A host that loses its hard state is caught within a few seeds.
    const r = run(['--seeds', '30', '--inject', 'lose-hardstate']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/FAIL seed \d+ round \d+: (election safety|log matching|leader completeness|state machine safety|linearizability)/);
    expect(r.stderr).toMatch(/replay: pnpm sim:raft --seeds 1 --start \d+ --inject lose-hardstate --trace/);
  });

  it('exits 2 on a bad argument', () => {
    const r = run(['--nodes', '9']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--nodes must be 3..7');
  });
});
