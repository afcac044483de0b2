import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { PlacementClient } from '@flotilla/placement/client';
import { utf8 } from '@flotilla/proto';
import type { ClusterFile } from '../src/cluster-file';
import { killAll, startCli, startUp, waitFor, type CliChild } from './helpers';

// A store is killed with SIGKILL right after a merge starts (the source
// Region's leader store: the one that drives PrepareMerge and CommitMerge),
// then restarted. The merge must complete or roll back — never half-apply —
// and no acknowledged write may be lost or duplicated.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-merge-crash-'));
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

describe('merge and SIGKILL', () => {
  it('a store killed in the middle of a merge and restarted: the merge completes or rolls back, nothing lost or duplicated', async () => {
    const client = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
    const pc = new PlacementClient({ addresses: [cluster.placement.address] });
    try {
      const acked = new Map<string, string>();
      const keys = [...Array.from({ length: 100 }, (_, i) => `a/${String(i).padStart(3, '0')}`), ...Array.from({ length: 100 }, (_, i) => `n/${String(i).padStart(3, '0')}`)];
      await client.batchPut(keys.map((k) => [k, `v-${k}`] as [string, string]));
      for (const k of keys) acked.set(k, `v-${k}`);
      await client.split('m');
      // Both Regions fully replicated (a merge needs voters on the same stores).
      await waitFor(
        'two Regions with three voters each, leaders known',
        async () => {
          const rs = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10);
          return rs.length === 2 && rs.every((r) => r.leader && r.region.peers.filter((p) => p.role === 'voter').length === 3);
        },
        60_000,
        200,
      );
      const source = (await pc.getRegion(utf8('n/000')))!;
      const leaderStore = (await pc.getStore(source.leader!.storeId))!;
      const victim = cluster.stores.find((s) => s.address === leaderStore.address)!;
      expect(victim).toBeDefined();

      // Start the merge and kill the source leader's store while it runs.
      const merging = client.merge('n/000', 'a/000').then(
        () => 'merged',
        (e: Error) => `failed: ${e.message}`,
      );
      // A merge takes a few milliseconds here: kill almost at once, so the crash
      // lands between PrepareMerge and CommitMerge more often than not.
      await new Promise((r) => setTimeout(r, 3));
      process.kill(victim.pid, 'SIGKILL');
      const outcome = await merging;

      // By hand, the store needs the cluster's secret (`up` keeps it in the data dir).
      const secret = readFileSync(join(dataDir, 'cluster-secret'), 'utf8').trim();
      const restarted = startCli(['store', '--placement', cluster.placement.address, '--data-dir', victim.dataDir, '--listen', victim.address, '--profile', 'demo', '--log-level', 'warn'], {
        env: { FLOTILLA_CLUSTER_SECRET: secret },
      });
      extra.push(restarted);

      // The key space settles: either one Region (merged) or two (rolled back), and writes to
      // both halves succeed again.
      await waitFor(
        'writes to both halves succeed',
        async () => {
          try {
            await client.put('a/new', 'x');
            await client.put('n/new', 'y');
            return true;
          } catch {
            return false;
          }
        },
        90_000,
        500,
      );
      acked.set('a/new', 'x');
      acked.set('n/new', 'y');
      const regions = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10);
      expect([1, 2]).toContain(regions.length);

      // Nothing lost, nothing duplicated: one ordered scan returns exactly the acknowledged keys.
      const scanned = await client.scan('', '', 10_000);
      const got = scanned.map((p) => [Buffer.from(p.key).toString(), Buffer.from(p.value).toString()] as const);
      expect(got.map(([k]) => k)).toEqual([...acked.keys()].sort());
      for (const [k, v] of got) expect(v).toBe(acked.get(k));
      expect(typeof outcome).toBe('string');
      console.log(`merge outcome: ${outcome}; regions after restart: ${regions.length}`);
    } finally {
      client.close();
      pc.close();
    }
  }, 240_000);
});
