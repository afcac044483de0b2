import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { PlacementClient } from '@flotilla/placement/client';
import type { ClusterFile } from '../src/cluster-file';
import { alive, exited, killAll, readJson, runCli, startCli, startUp, waitFor, type CliChild } from './helpers';

// End to end through real processes: `flotilla up --stores 3` in a temp dir,
// the ctl commands against it, then a store killed with SIGKILL in the
// middle of a write load and restarted.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-up-'));
const dataDir = join(dir, 'data');
let up: CliChild;
let cluster: ClusterFile;
const extra: CliChild[] = [];

beforeAll(async () => {
  ({ up, cluster } = await startUp(dataDir));
}, 120_000);

afterAll(async () => {
  killAll(up, cluster, extra);
  rmSync(dir, { recursive: true, force: true });
});

const ctl = (args: string[]) => runCli([...args, '--data-dir', dataDir, '--log-level', 'warn'], { timeoutMs: 30_000 });

describe('flotilla up + ctl commands', () => {
  it('put, get, scan, cas, del, regions and stores through the CLI', async () => {
    expect(cluster.stores).toHaveLength(3);
    // Independent invocations run side by side; each is still a separate process.
    const puts = await Promise.all([ctl(['put', 'greeting', 'hello']), ctl(['put', 'greeting2', 'hi'])]);
    for (const p of puts) expect(p.code, p.stderr).toBe(0);
    const [got, missing, scan] = await Promise.all([ctl(['get', 'greeting']), ctl(['get', 'nope']), ctl(['scan', 'greeting', 'greetinh'])]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toBe('hello\n');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('not found');
    expect(scan.stdout).toBe('greeting\thello\ngreeting2\thi\n');
    const casOk = await ctl(['cas', 'greeting', '--expected', 'hello', '--value', 'bonjour']);
    expect(casOk.code, casOk.stderr).toBe(0);
    const [casBad, del, split] = await Promise.all([ctl(['cas', 'greeting', '--expected', 'hello', '--value', 'hola']), ctl(['del', 'greeting2']), ctl(['split', 'm'])]);
    expect(casBad.code).toBe(1);
    expect(casBad.stderr).toContain('bonjour');
    expect(del.code, del.stderr).toBe(0);
    expect(split.code, split.stderr).toBe(0);
    const [gone, regions, table, stores] = await Promise.all([ctl(['get', 'greeting2']), ctl(['regions', '--json']), ctl(['regions']), ctl(['stores'])]);
    expect(gone.code).toBe(1);
    expect(regions.code, regions.stderr).toBe(0);
    const rows = JSON.parse(regions.stdout) as { startKey: string; endKey: string }[];
    expect(rows.some((r) => r.endKey === 'm')).toBe(true);
    expect(table.stdout).toContain('KEY RANGE');
    expect(stores.code, stores.stderr).toBe(0);
    expect(stores.stdout).toContain('3 stores');
    // And back: merge [m, +inf) into [-inf, m).
    const merge = await ctl(['merge', 'm', 'a']);
    expect(merge.code, merge.stderr).toBe(0);
    expect(merge.stdout).toMatch(/^OK: region \d+ merged into region \d+\n$/);
    const after = await ctl(['scan', '', '', '--keys-only']);
    expect(after.stdout).toBe('greeting\n');
  }, 120_000);

  // Before the SIGKILL test: a merge needs every replica of both Regions caught up.
  it('demo merge runs against the running cluster: splits, merges the demo range back into one Region, leaves the cluster up', async () => {
    const r = await runCli(['demo', 'merge', '--data-dir', dataDir, '--keys', '2000', '--value-bytes', '200', '--settle-ms', '20000', '--log-level', 'warn'], { timeoutMs: 100_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('Using the cluster already running');
    const merged = r.stdout.match(/merged region \d+ into region \d+/g) ?? [];
    expect(merged.length).toBeGreaterThanOrEqual(2);
    expect(r.stdout).toContain('1 Region left in the demo range');
    expect(r.stdout).toContain('verified: 100/100 keys read back with the values written');
    expect(r.stdout).toContain('verified: one scan returned 100 keys in order, crossing 0 Region boundaries');
    expect(r.stdout).not.toContain('Stopping the cluster');
    expect(alive(up.pid!)).toBe(true);
  }, 120_000);

  it('keeps every acknowledged write when a store is killed with SIGKILL mid-load, and the store catches up after restart', async () => {
    // Each key is written once with one value, so retrying a batch whose
    // connection died in flight cannot reorder anything here.
    const client = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000, retryWritesInFlight: true });
    const pc = new PlacementClient({ addresses: [cluster.placement.address] });
    try {
      const victim = cluster.stores[1]!;
      const acked = new Map<string, string>();
      const total = 3000;
      let next = 0;
      let killed = false;
      const worker = async (): Promise<void> => {
        while (next < total) {
          const from = next;
          next += 50;
          const pairs: [string, string][] = [];
          for (let i = from; i < from + 50; i++) pairs.push([`load/${String(i).padStart(6, '0')}`, `v${i}-${'x'.repeat(150)}`]);
          try {
            await client.batchPut(pairs);
          } catch (e) {
            // A batch whose connection died with it in flight may or may not
            // have applied (Undetermined): it is simply not acknowledged.
            if ((e as { code?: string }).code === 'Undetermined') continue;
            throw e;
          }
          for (const [k, v] of pairs) acked.set(k, v);
          if (!killed && acked.size >= total / 3) {
            killed = true;
            process.kill(victim.pid, 'SIGKILL');
          }
        }
      };
      await Promise.all([worker(), worker(), worker()]);
      expect(killed).toBe(true);
      expect(alive(victim.pid)).toBe(false);
      await waitFor('the supervisor to report the dead store', () => up.out.stderr.includes('store-2') && up.out.stderr.includes('exited unexpectedly'), 10_000);

      // No acknowledged write is lost.
      const keys = [...acked.keys()];
      const values = await client.batchGet(keys);
      const lost = keys.filter((k, i) => values[i] === null || Buffer.from(values[i]!).toString() !== acked.get(k));
      expect(lost).toEqual([]);

      // Restart the store on its data directory and address; it rejoins and catches up (splits included).
      // By hand, it needs the cluster's secret, which `up` keeps in the data dir and hands its children in the environment.
      const secret = readFileSync(join(dataDir, 'cluster-secret'), 'utf8').trim();
      const restarted = startCli(['store', '--placement', cluster.placement.address, '--data-dir', victim.dataDir, '--listen', victim.address, '--profile', 'demo', '--log-level', 'warn'], {
        env: { FLOTILLA_CLUSTER_SECRET: secret },
      });
      extra.push(restarted);
      // The load splits the Region (demo thresholds); placement learns it from the next heartbeat.
      const regionCount = await waitFor('the load to have split the Region', async () => {
        const n = (await pc.getClusterInfo()).regionCount;
        return n > 1 ? n : null;
      }, 30_000, 200);
      expect(regionCount).toBeGreaterThan(1);
      await waitFor(
        `restarted store to host all ${regionCount} Regions`,
        async () => {
          if (restarted.exitCode !== null) throw new Error(`restarted store exited: ${restarted.out.stderr}`);
          const res = await fetch(`http://${victim.address}/status`, { signal: AbortSignal.timeout(1000) });
          const s = (await res.json()) as { regions?: number };
          return s.regions !== undefined && s.regions >= (await pc.getClusterInfo()).regionCount;
        },
        40_000,
        250,
      );

      // Proof it caught up on the log: with another store gone, every quorum needs the restarted one, and writes still commit.
      const second = cluster.stores[2]!;
      process.kill(second.pid, 'SIGKILL');
      await client.batchPut(Array.from({ length: 200 }, (_, i) => [`after/${i}`, `a${i}`] as [string, string]));
      const after = await client.batchGet(Array.from({ length: 200 }, (_, i) => `after/${i}`));
      expect(after.every((v, i) => v !== null && Buffer.from(v).toString() === `a${i}`)).toBe(true);
      const again = await client.batchGet(keys);
      expect(again.filter((v) => v === null)).toHaveLength(0);
    } finally {
      client.close();
      pc.close();
    }
  }, 120_000);

  it('stops every child on SIGTERM and exits 0; ctl commands then say the cluster is stopped', async () => {
    for (const c of extra) c.kill('SIGTERM');
    up.kill('SIGTERM');
    const r = await exited(up, 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Stopped.');
    await waitFor('placement and stores to be gone', () => [cluster.placement, ...cluster.stores].every((p) => !alive(p.pid)), 15_000);
    expect(readJson<ClusterFile>(join(dataDir, 'cluster.json'))?.stoppedAt).toBeDefined();
    const get = await ctl(['get', 'greeting']);
    expect(get.code).toBe(1);
    expect(get.stderr).toContain('was stopped at');
  }, 120_000);

  it('resumes on the same ports with the same data when started again', async () => {
    const before = cluster.stores.map((st) => st.address);
    const placementBefore = cluster.placement.address;
    let again: ClusterFile;
    ({ up, cluster: again } = await startUp(dataDir));
    cluster = again;
    expect(again.stoppedAt).toBeUndefined();
    expect(again.placement.address).toBe(placementBefore);
    expect(again.stores.map((st) => st.address)).toEqual(before);
    const got = await ctl(['get', 'greeting']);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toBe('bonjour\n');
    const scan = await ctl(['scan', 'load/', 'load0', '--limit', '5', '--keys-only']);
    expect(scan.stdout.split('\n').filter(Boolean)).toEqual(['load/000000', 'load/000001', 'load/000002', 'load/000003', 'load/000004']);
    up.kill('SIGTERM');
    expect((await exited(up, 30_000)).code).toBe(0);
  }, 120_000);
});
