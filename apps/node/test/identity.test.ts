import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlacementClient } from '@flotilla/placement/client';
import { runCli, type CliChild } from './helpers';
import { fingerprint, startPlacement, startStore, stopped, type PlacementProc } from './processes';

// Cluster identity (issue #15, item 2), with real processes and real data
// directories: a store's data dir remembers the cluster it belongs to
// (store.json), and a store refuses to start against another cluster's
// placement, or with a store ID its cluster never issued, without changing
// a byte on disk. Before this, a copied dir joined silently (as a second
// store with an existing ID) and a copy started against a fresh placement
// bootstrapped a second cluster.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-identity-'));
const children: CliChild[] = [];
let a: PlacementProc;
let b: PlacementProc;
let storeA: string;

beforeAll(async () => {
  [a, b] = await Promise.all([startPlacement(join(dir, 'placement-a'), '127.0.0.1:0', ['--max-replicas', '1']), startPlacement(join(dir, 'placement-b'), '127.0.0.1:0', ['--max-replicas', '1'])]);
  children.push(a.child, b.child);
  storeA = join(dir, 'store-a');
  const [sa, sb] = await Promise.all([startStore(a.address, storeA), startStore(b.address, join(dir, 'store-b'))]);
  children.push(sa.child, sb.child);
  // A clean stop, so the copies below are consistent.
  expect(await stopped(sa.child)).toBe(0);
}, 90_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** refused runs a store on dataDir against placement and expects a clear refusal (exit 2, no stack) that left the dir untouched. */
async function refused(placement: string, dataDir: string, message: RegExp): Promise<string> {
  const before = fingerprint(dataDir);
  const r = await runCli(['store', '--placement', placement, '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--log-level', 'warn'], { timeoutMs: 20_000 });
  expect(r.code, `exit code; stderr: ${r.stderr}`).toBe(2);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(fingerprint(dataDir)).toEqual(before);
  return r.stderr;
}

describe('a store data dir belongs to one cluster', () => {
  it('records the cluster ID in store.json', () => {
    const ident = JSON.parse(readFileSync(join(storeA, 'store.json'), 'utf8')) as { storeId: number; clusterId: number };
    expect(ident.clusterId).toBe(a.clusterId);
    expect(ident.storeId).toBeGreaterThan(0);
  });

  it("refuses to join another cluster's placement with a copy, and changes nothing", async () => {
    const copy = join(dir, 'copy-to-b');
    cpSync(storeA, copy, { recursive: true });
    const stderr = await refused(b.address, copy, new RegExp(`belongs to cluster ${a.clusterId}.*cluster ${b.clusterId}`, 's'));
    expect(stderr).toContain(copy);
  }, 60_000);

  it('refuses to bootstrap a new cluster from a copy, and the new placement stays empty', async () => {
    const fresh = await startPlacement(join(dir, 'placement-c'));
    children.push(fresh.child);
    const copy = join(dir, 'copy-to-c');
    cpSync(storeA, copy, { recursive: true });
    await refused(fresh.address, copy, new RegExp(`belongs to cluster ${a.clusterId}`));
    const pc = new PlacementClient({ addresses: [fresh.address] });
    try {
      expect(await pc.isBootstrapped()).toBe(false);
    } finally {
      pc.close();
    }
  }, 60_000);

  it('refuses a store ID the cluster never issued, and changes nothing', async () => {
    const copy = join(dir, 'unissued');
    cpSync(storeA, copy, { recursive: true });
    writeFileSync(join(copy, 'store.json'), JSON.stringify({ storeId: 4242, clusterId: a.clusterId }));
    await refused(a.address, copy, /store 4242.*never (issued|registered)/s);
  }, 60_000);

  it('refuses databases without a store.json, and changes nothing', async () => {
    const copy = join(dir, 'no-ident');
    cpSync(storeA, copy, { recursive: true });
    rmSync(join(copy, 'store.json'));
    await refused(a.address, copy, /no store\.json/);
  }, 60_000);

  it('still starts on its own data against its own cluster', async () => {
    const s = await startStore(a.address, storeA);
    children.push(s.child);
    expect(await stopped(s.child), s.child.out.stderr).toBe(0);
  }, 60_000);
});
