import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { PlacementClient } from '@flotilla/placement';
import { utf8, type ClientRequest } from '@flotilla/proto';
import { startTestCluster, type TestCluster } from '../src/testing';
import type { CommandResult } from '../src/raft/proposal';

// MVCC GC end to end: a real 3-store cluster (real SQLite files, sockets),
// placement's safe point held by a service safe point, many versions
// written through client.txn, then the safe point moved: every replica's
// txn_write / txn_data must lose exactly the versions a read at the safe
// point does not need, a snapshot read at the safe point must still see
// the right values, a read below it gets a typed error, raw keys stay.

let cluster: TestCluster | undefined;
let pd: PlacementClient | undefined;
afterEach(async () => {
  pd?.close();
  await cluster?.close();
  cluster = undefined;
  pd = undefined;
});

const KEYS = Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`);
const VERSIONS = 8;
const long = (v: number): string => `long-${v}-`.padEnd(400, 'x');

interface Row {
  key: string;
  commit_ts: bigint;
  kind: string;
}

function rowsOf(dir: string): { writes: Row[]; data: number } {
  const db = new Database(join(dir, 'kv.db'), { readonly: true, fileMustExist: true });
  try {
    const writes = (db.prepare("SELECT CAST(key AS TEXT) AS key, commit_ts, kind FROM txn_write WHERE key >= CAST('k' AS BLOB) ORDER BY key, commit_ts").safeIntegers(true).all() as Row[]).map((r) => ({ ...r, key: String(r.key) }));
    const data = Number(db.prepare('SELECT count(*) FROM txn_data').pluck().safeIntegers(true).get());
    return { writes, data };
  } finally {
    db.close();
  }
}

/** rollbackOnLeader writes a rollback record for startTs on key through the Region's leader (a transaction that never prewrote). */
async function rollbackOnLeader(c: TestCluster, key: string, startTs: bigint): Promise<CommandResult> {
  for (const s of c.stores) {
    const view = s?.store.inspect().find((p) => p.isLeader);
    if (!s || !view) continue;
    const req: ClientRequest = { id: 1, header: { regionId: view.regionId, regionEpoch: view.region.epoch, peer: view.region.peers.find((p) => p.storeId === s.storeId)! }, op: 'txn', txn: { type: 'rollback', keys: [utf8(key)], startTs } };
    return new Promise((resolve) => s.store.handleClientRequest(req, resolve));
  }
  throw new Error('no leader');
}

describe('MVCC GC below the safe point', () => {
  it('removes old versions on every replica, keeps what a read at the safe point needs, and refuses reads below it', { timeout: 60_000 }, async () => {
    cluster = await startTestCluster({ stores: 3, config: { gcIntervalMs: 100, gcBatchRows: 16 }, placement: { gc: { lifeTimeMs: 300, intervalMs: 50 } } });
    const c = cluster.client;
    pd = new PlacementClient({ addresses: [cluster.placementAddress] });
    // Hold GC back while the history is written.
    const hold = await c.timestamp();
    expect((await pd.updateServiceSafePoint('gc-test', hold, 600_000)).accepted).toBe(true);

    await c.put('raw-1', 'raw value');
    let mid = 0n;
    for (let v = 0; v < VERSIONS; v++) {
      await c.txn(async (tx) => {
        for (const [i, k] of KEYS.entries()) tx.put(k, i % 3 === 0 ? long(v) : `v${v}`);
        if (v < 4) tx.put('kdel', `v${v}`);
        else if (v === 4) tx.delete('kdel');
      });
      if (v === 5) mid = await c.timestamp();
    }
    const rb = await rollbackOnLeader(cluster, 'k00', hold + 1n);
    expect(rb.ok).toBe(true);
    const before = rowsOf(join(cluster.dataDir, 'store-0'));
    expect(before.writes.filter((r) => r.key === 'k00')).toHaveLength(VERSIONS + 1);

    // Let the safe point move to mid: versions 0..4 of every key, the rollback and all of kdel are garbage.
    expect((await pd.updateServiceSafePoint('gc-test', mid, 600_000)).accepted).toBe(true);
    await expect.poll(() => pd!.getGcSafePoint(), { timeout: 10_000, interval: 50 }).toBe(mid);

    const expected = KEYS.length * (VERSIONS - 5); // per key: version 5 (the newest at or below mid), 6 and 7
    for (const i of [0, 1, 2]) {
      await expect.poll(() => rowsOf(join(cluster!.dataDir, `store-${i}`)).writes.length, { timeout: 15_000, interval: 100 }).toBe(expected);
      const after = rowsOf(join(cluster.dataDir, `store-${i}`));
      expect(after.writes.filter((r) => r.key === 'kdel')).toEqual([]);
      expect(after.writes.filter((r) => r.kind === 'rollback')).toEqual([]);
      for (const k of KEYS) expect(after.writes.filter((r) => r.key === k && r.commit_ts <= mid)).toHaveLength(1);
      // Long values (every third key) only for the versions kept.
      expect(after.data).toBe((KEYS.length / 3) * 3);
    }

    // A read at the safe point still sees version 5; the newest read sees 7; kdel is gone at both.
    const atMid = await c.snapshot(mid);
    expect(Buffer.from((await atMid.get('k01'))!).toString()).toBe('v5');
    expect(Buffer.from((await atMid.get('k00'))!).toString()).toBe(long(5));
    expect(await atMid.get('kdel')).toBeNull();
    expect((await atMid.scan('k', 'l')).length).toBe(KEYS.length);
    const now = await c.snapshot();
    expect(Buffer.from((await now.get('k03'))!).toString()).toBe(long(7));
    // Below the safe point: a typed error, not a history with holes.
    const below = await (await c.snapshot(mid - 1n)).get('k01').then(() => undefined, (e: unknown) => e as Error);
    expect(below).toBeInstanceOf(Error);
    expect(below!.message).toMatch(/below the GC safe point/);
    // Raw keys are never touched.
    expect(Buffer.from((await c.get('raw-1'))!).toString()).toBe('raw value');
    // Every store reported its progress to placement.
    await expect.poll(async () => (await pd!.getGcStatus()).stores.filter((s) => s.safePoint === mid).length, { timeout: 10_000, interval: 100 }).toBeGreaterThanOrEqual(1);
  });
});
