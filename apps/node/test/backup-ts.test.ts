import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import type { ClusterFile } from '../src/cluster-file';
import { killAll, runCli, startUp, type CliChild } from './helpers';

// flotilla backup --ts / restore of the transactional keyspace against a real
// `flotilla up` cluster (placement + 3 store processes), with transactions
// writing all through the backup: the file must hold exactly what a
// snapshot read at the backup's ts sees, the backup holds a GC service
// safe point only while it runs, and restore puts that snapshot back.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-backup-ts-'));
const dataDir = join(dir, 'data');
let up: CliChild;
let cluster: ClusterFile;
let client: FlotillaClient;

beforeAll(async () => {
  ({ up, cluster } = await startUp(dataDir));
  client = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
}, 150_000);

afterAll(() => {
  client?.close();
  killAll(up, cluster, []);
  rmSync(dir, { recursive: true, force: true });
});

const ctl = (args: string[]) => runCli([...args, '--data-dir', dataDir, '--log-level', 'warn'], { timeoutMs: 90_000 });
const KEYS = Array.from({ length: 300 }, (_, i) => `acct/${String(i).padStart(4, '0')}`);
const text = (b: Uint8Array): string => Buffer.from(b).toString();

async function snapshotAt(ts?: bigint): Promise<[string, string][]> {
  const snap = await client.snapshot(ts);
  return (await snap.scan('', '', 100_000)).map((p) => [text(p.key), text(p.value)]);
}

describe('flotilla backup --ts', () => {
  it('exports a consistent snapshot at one ts while transactions write, and restore puts it back', async () => {
    // Initial state, in transactions of 50 keys.
    for (let i = 0; i < KEYS.length; i += 50) await client.txn((tx) => KEYS.slice(i, i + 50).forEach((k) => tx.put(k, `${k}=0`)));
    const ts = await client.timestamp();

    // Writers keep moving values between pairs of accounts (and one big value) during the backup.
    let stop = false;
    let commits = 0;
    const writer = (async () => {
      for (let round = 1; !stop; round++) {
        const a = KEYS[(round * 7) % KEYS.length]!;
        const b = KEYS[(round * 13 + 1) % KEYS.length]!;
        await client.txn((tx) => {
          tx.put(a, `${a}=${round}`);
          tx.put(b, `${b}=${round}`.padEnd(round % 5 === 0 ? 600 : 0, '.'));
        }).then(() => commits++, () => {});
      }
    })();
    await expect.poll(() => commits, { timeout: 30_000, interval: 20 }).toBeGreaterThan(3);

    const file = join(dir, 'txn.backup');
    const r = await ctl(['backup', '--ts', String(ts), '--batch', '40', '--progress-ms', '0', file]);
    stop = true;
    await writer;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/holding GC at ts \d+ \(service safe point backup-/);
    expect(r.stderr).toMatch(/backup: wrote 300 pairs of the transactional keyspace/);
    expect(commits).toBeGreaterThan(3);

    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(JSON.parse(lines[0]!)).toMatchObject({ format: 'flotilla-backup', version: 2, keyspace: 'txn', ts: String(ts) });
    const inFile = lines.slice(1, -1).map((l) => JSON.parse(l) as { k: string; v: string }).map((p) => [Buffer.from(p.k, 'base64').toString(), Buffer.from(p.v, 'base64').toString()]);
    const expected = await snapshotAt(ts);
    expect(expected).toEqual(KEYS.map((k) => [k, `${k}=0`]));
    expect(inFile).toEqual(expected);
    // Writers did move the newest state away from the snapshot.
    expect(await snapshotAt()).not.toEqual(expected);

    // The backup's service safe point is gone once it finished.
    const status = await ctl(['gc', 'status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as { services: unknown[] }).services).toEqual([]);
    const human = await ctl(['gc', 'status']);
    expect(human.stdout).toMatch(/^safe point {10}\d+ \(\d{4}-/m);

    // Restore puts the snapshot back transactionally: the newest state equals the snapshot at ts again.
    const restored = await ctl(['restore', '--batch', '64', file]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stderr).toMatch(/restore: wrote 300 pairs/);
    expect(await snapshotAt()).toEqual(expected);

    // A ts below the GC safe point is refused before anything is written.
    const refused = await ctl(['backup', '--ts', '1000', join(dir, 'old.backup')]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/below the GC safe point/);
  }, 180_000);
});
