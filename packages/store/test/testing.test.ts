import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// @flotilla/store/testing as a user's test process meets it: a separate
// node process (a fresh module cache, nothing of vitest's) starts a cluster
// with a pre-split key space, writes and reads through the returned client,
// closes it, and then must exit by itself. A socket, timer or worker left
// open by close() would keep it alive and the bound below would fail the test.
const SCRIPT = `
  import { existsSync } from 'node:fs';
  import { startTestCluster } from '@flotilla/store/testing';
  const t0 = performance.now();
  const cluster = await startTestCluster({ stores: 3, splitKeys: ['m', 't', 'm'] });
  const startMs = Math.round(performance.now() - t0);
  const { client } = cluster;
  await client.put('apple', 'red');
  await client.put('tomato', 'also red');
  const more = await cluster.connect();
  const got = [await more.get('apple'), await more.get('tomato'), await more.get('nothing')].map((v) => (v === null ? null : new TextDecoder().decode(v)));
  const regions = (await client.regions()).map((r) => ({ voters: r.region.peers.filter((p) => p.role === 'voter').length, leader: r.leader !== undefined }));
  const stores = cluster.stores.map((s) => s.storeId);
  await cluster.close();
  await cluster.close();
  console.log(JSON.stringify({ startMs, got, regions, stores, placement: cluster.placementAddress, dataDir: cluster.dataDir, dirLeft: existsSync(cluster.dataDir) }));
`;

describe('startTestCluster', () => {
  it('starts placement and three stores in one process, serves a client, and close() leaves nothing that keeps the process alive', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: resolve(__dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exitBoundMs = 45_000;
    const code = await new Promise<number | null>((done) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), exitBoundMs);
      child.once('exit', (c) => {
        clearTimeout(timer);
        done(c);
      });
    });
    expect(code, `the process did not exit by itself within ${exitBoundMs} ms (a handle left open?)\n${stdout}\n${stderr}`).toBe(0);
    expect(stderr).toBe('');
    const r = JSON.parse(stdout.trim()) as { startMs: number; got: (string | null)[]; regions: { voters: number; leader: boolean }[]; stores: number[]; placement: string; dataDir: string; dirLeft: boolean };
    expect(r.got).toEqual(['red', 'also red', null]);
    // Two distinct split keys: three Regions, each with a leader and three voters when startTestCluster returned.
    expect(r.regions).toEqual([1, 2, 3].map(() => ({ voters: 3, leader: true })));
    expect(new Set(r.stores).size).toBe(3);
    expect(r.placement).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.placement.endsWith(':0')).toBe(false);
    expect(r.dirLeft).toBe(false);
    expect(existsSync(r.dataDir)).toBe(false);
    console.log(`startTestCluster: 3 stores, 3 Regions settled in ${r.startMs} ms`);
  }, 60_000);
});
