import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { decode, encode, type KvPair } from '@flotilla/proto';
import type { ApplyState, KvBatch, RegionLocalState, StateMachine } from '../engines';

// A minimal SQLite state machine used until @flotilla/kv-engine lands:
// kv(key, value) WITHOUT ROWID plus apply_state and region_state written in
// the same transaction. Approximate sizes are kept in memory per key prefix
// sample; see approximateStats.

type Op =
  | { t: 0; k: Uint8Array; v: Uint8Array }
  | { t: 1; k: Uint8Array }
  | { t: 2; s: Uint8Array; e: Uint8Array }
  | { t: 3; id: number; a: ApplyState }
  | { t: 4; id: number; r: RegionLocalState };

class Batch implements KvBatch {
  ops: Op[] = [];
  put(key: Uint8Array, value: Uint8Array): void {
    this.ops.push({ t: 0, k: key, v: value });
  }
  delete(key: Uint8Array): void {
    this.ops.push({ t: 1, k: key });
  }
  deleteRange(startKey: Uint8Array, endKey: Uint8Array): void {
    this.ops.push({ t: 2, s: startKey, e: endKey });
  }
  setApplyState(regionId: number, state: ApplyState): void {
    this.ops.push({ t: 3, id: regionId, a: state });
  }
  setRegionState(regionId: number, state: RegionLocalState): void {
    this.ops.push({ t: 4, id: regionId, r: state });
  }
  get isEmpty(): boolean {
    return this.ops.length === 0;
  }
}

export class SqliteStateMachine implements StateMachine {
  private readonly db: Database.Database;
  private readonly st;
  private readonly txn: (ops: Op[]) => void;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // Applies need not fsync: the raft log is durable and replays them. sync() checkpoints before log compaction.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS apply_state (region_id INTEGER PRIMARY KEY, applied_index INTEGER, applied_term INTEGER, truncated_index INTEGER, truncated_term INTEGER);
      CREATE TABLE IF NOT EXISTS region_state (region_id INTEGER PRIMARY KEY, state TEXT, meta BLOB);
    `);
    this.st = {
      put: this.db.prepare('INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)'),
      del: this.db.prepare('DELETE FROM kv WHERE key = ?'),
      delRange: this.db.prepare('DELETE FROM kv WHERE key >= ? AND key < ?'),
      delFrom: this.db.prepare('DELETE FROM kv WHERE key >= ?'),
      get: this.db.prepare('SELECT value FROM kv WHERE key = ?').pluck(),
      scan: this.db.prepare('SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?'),
      scanFrom: this.db.prepare('SELECT key, value FROM kv WHERE key >= ? ORDER BY key LIMIT ?'),
      setApply: this.db.prepare('INSERT OR REPLACE INTO apply_state VALUES (?, ?, ?, ?, ?)'),
      getApply: this.db.prepare('SELECT * FROM apply_state WHERE region_id = ?'),
      setRegion: this.db.prepare('INSERT OR REPLACE INTO region_state VALUES (?, ?, ?)'),
      regions: this.db.prepare('SELECT region_id, state, meta FROM region_state'),
      count: this.db.prepare('SELECT count(*) AS n, coalesce(sum(length(key) + length(value)), 0) AS bytes FROM kv WHERE key >= ? AND key < ?'),
      countFrom: this.db.prepare('SELECT count(*) AS n, coalesce(sum(length(key) + length(value)), 0) AS bytes FROM kv WHERE key >= ?'),
      keyAt: this.db.prepare('SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT 1 OFFSET ?').pluck(),
      keyAtFrom: this.db.prepare('SELECT key FROM kv WHERE key >= ? ORDER BY key LIMIT 1 OFFSET ?').pluck(),
    };
    const st = this.st;
    this.txn = this.db.transaction((ops: Op[]) => {
      for (const op of ops) {
        switch (op.t) {
          case 0:
            st.put.run(op.k, op.v);
            break;
          case 1:
            st.del.run(op.k);
            break;
          case 2:
            if (op.e.length === 0) st.delFrom.run(op.s);
            else st.delRange.run(op.s, op.e);
            break;
          case 3:
            st.setApply.run(op.id, op.a.appliedIndex, op.a.appliedTerm, op.a.truncatedIndex, op.a.truncatedTerm);
            break;
          case 4:
            st.setRegion.run(op.id, op.r.state, Buffer.from(encode(op.r)));
            break;
        }
      }
    });
  }

  newBatch(): KvBatch {
    return new Batch();
  }
  write(batch: KvBatch): void {
    this.txn((batch as Batch).ops);
  }
  get(key: Uint8Array): Uint8Array | undefined {
    return this.st.get.get(key) as Uint8Array | undefined;
  }
  scan(startKey: Uint8Array, endKey: Uint8Array, limit: number): KvPair[] {
    const rows = endKey.length === 0 ? this.st.scanFrom.all(startKey, limit) : this.st.scan.all(startKey, endKey, limit);
    return rows as KvPair[];
  }
  snapshotRange(startKey: Uint8Array, endKey: Uint8Array): KvPair[] {
    return this.scan(startKey, endKey, Number.MAX_SAFE_INTEGER);
  }
  ingestSnapshot(regionId: number, startKey: Uint8Array, endKey: Uint8Array, pairs: KvPair[], apply: ApplyState, region: RegionLocalState): void {
    const ops: Op[] = [{ t: 2, s: startKey, e: endKey }];
    for (const p of pairs) ops.push({ t: 0, k: p.key, v: p.value });
    ops.push({ t: 3, id: regionId, a: apply }, { t: 4, id: regionId, r: region });
    this.txn(ops);
  }
  loadRegions(): { regionId: number; apply: ApplyState | undefined; local: RegionLocalState }[] {
    const rows = this.st.regions.all() as { region_id: number; state: string; meta: Uint8Array }[];
    return rows.map((r) => ({ regionId: r.region_id, apply: this.applyState(r.region_id), local: decode(r.meta) as RegionLocalState }));
  }
  applyState(regionId: number): ApplyState | undefined {
    const r = this.st.getApply.get(regionId) as
      | { applied_index: number; applied_term: number; truncated_index: number; truncated_term: number }
      | undefined;
    if (!r) return undefined;
    return { appliedIndex: r.applied_index, appliedTerm: r.applied_term, truncatedIndex: r.truncated_index, truncatedTerm: r.truncated_term };
  }
  approximateStats(_regionId: number, startKey: Uint8Array, endKey: Uint8Array): { sizeBytes: number; keys: number } {
    const r = (endKey.length === 0 ? this.st.countFrom.get(startKey) : this.st.count.get(startKey, endKey)) as { n: number; bytes: number };
    return { sizeBytes: r.bytes, keys: r.n };
  }
  approximateSplitKey(startKey: Uint8Array, endKey: Uint8Array): Uint8Array | undefined {
    const { keys } = this.approximateStats(0, startKey, endKey);
    if (keys < 2) return undefined;
    const half = Math.floor(keys / 2);
    return (endKey.length === 0 ? this.st.keyAtFrom.get(startKey, half) : this.st.keyAt.get(startKey, endKey, half)) as Uint8Array | undefined;
  }
  sync(): void {
    this.db.pragma('wal_checkpoint(FULL)');
  }
  close(): void {
    this.db.close();
  }
}
