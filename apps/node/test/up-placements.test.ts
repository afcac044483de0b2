import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterFile } from '../src/cluster-file';
import { alive, readJson, runCli, startCli, waitFor, type CliChild } from './helpers';
import { httpJson } from './processes';

// `flotilla up --placements 3`: a replicated placement with one store, as
// an operator runs it. `placement members` shows the roles, ctl commands
// work against any member and keep working after the placement leader is
// SIGKILLed, and `up` stops everything on SIGTERM.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-up-placements-'));
const dataDir = join(dir, 'data');
let up: CliChild | undefined;
let cluster: ClusterFile | null = null;

afterAll(() => {
  if (up && up.exitCode === null) up.kill('SIGKILL');
  for (const p of [...(cluster?.placements ?? []), ...(cluster?.stores ?? [])]) if (alive(p.pid)) process.kill(p.pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const cli = (args: string[]) => runCli([...args, '--data-dir', dataDir], { timeoutMs: 30_000 });

describe('flotilla up --placements 3', () => {
  it('runs three placement members; ctl commands work against any of them and across a leader kill', async () => {
    up = startCli(['up', '--placements', '3', '--stores', '1', '--data-dir', dataDir, '--base-port', '0', '--profile', 'demo', '--log-level', 'warn']);
    cluster = await waitFor('the cluster to be up', () => {
      if (up!.exitCode !== null) throw new Error(`flotilla up exited with ${up!.exitCode}: ${up!.out.stderr}`);
      return up!.out.stdout.includes('Press Ctrl-C') ? readJson<ClusterFile>(join(dataDir, 'cluster.json')) : null;
    }, 90_000, 200);
    expect(up.out.stdout).toContain('3 placement members + 1 store');
    expect(cluster.placements?.map((p) => p.name)).toEqual(['p1', 'p2', 'p3']);

    const members = await cli(['placement', 'members', '--json']);
    expect(members.code, members.stderr).toBe(0);
    const view = JSON.parse(members.stdout) as { members: { name: string; role: string }[] };
    expect(view.members.map((m) => m.role).sort()).toEqual(['leader', 'voter', 'voter']);
    const leaderName = view.members.find((m) => m.role === 'leader')!.name;
    const leader = cluster.placements!.find((p) => p.name === leaderName)!;
    const follower = cluster.placements!.find((p) => p.name !== leaderName)!;

    // Against one follower alone: reads relayed, writes redirected.
    expect((await runCli(['regions', '--placement', follower.address], { timeoutMs: 30_000 })).stdout).toMatch(/1 region/);
    expect((await runCli(['stores', '--placement', follower.address], { timeoutMs: 30_000 })).stdout).toMatch(/1 store/);
    const ts1 = BigInt(JSON.parse((await cli(['tso', '--json'])).stdout).first as string);

    process.kill(leader.pid, 'SIGKILL');
    const put = await cli(['put', 'k', 'v', '--timeout-ms', '20000']);
    expect(put.code, put.stderr).toBe(0);
    expect((await cli(['get', 'k'])).stdout).toBe('v\n');
    const ts2 = BigInt(JSON.parse((await cli(['tso', '--json'])).stdout).first as string);
    expect(ts2).toBeGreaterThan(ts1);
    const after = JSON.parse((await cli(['placement', 'members', '--json'])).stdout) as { members: { name: string; role: string }[] };
    expect(after.members.find((m) => m.role === 'leader')!.name).not.toBe(leaderName);
    const health = await httpJson<{ role: string }>(`http://${follower.address}/health`);
    expect(['leader', 'follower']).toContain(health.role);

    up.kill('SIGTERM');
    await waitFor('up to exit', () => up!.exitCode !== null, 30_000, 100);
    expect(up.exitCode).toBe(0);
    for (const p of [...cluster.placements!, ...cluster.stores]) expect(alive(p.pid)).toBe(false);
  }, 150_000);
});
