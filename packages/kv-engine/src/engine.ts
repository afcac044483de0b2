import path from 'node:path';
import Database from 'better-sqlite3';
import { compareKeys, encode } from '@flotilla/proto';
import { assert, EngineClosedError } from './errors';
import { decodeRegionState } from './region-codec';
import { RegionStatsTracker } from './region-stats';
import { KV_ENGINE_NAME, KV_FORMAT_VERSION, KV_SCHEMA, migrateKv } from './schema';
import type { TxnRows } from './mvcc/schema';
import { ingestTxnRows, MvccTables } from './mvcc/tables';
import { RangeSizer } from './range-size';
import { KvSnapshot } from './snapshot';
import { DEFAULT_INTEGRITY_FULL_MAX_BYTES, openDatabase, vacuumStep, VACUUM_STEP_PAGES, type IntegrityReport } from './sqlite-open';
import type { Durability } from './sqlite-open';
import type { ApplyState, KvPair, RegionLocalState, RegionStats, StoredRegion } from './types';
import type { KvWriteBatch } from './write-batch';

export interface KvEngineOptions {
  /** path of the database file; its directory is created when missing. */
  path: string;
  /** durability: 'full' (default) fsyncs every write; 'relaxed' is synchronous=NORMAL. */
  durability?: Durability;
  /** statsPersistIntervalMs: how often approximate Region stats ride along with a write (default 10 s). */
  statsPersistIntervalMs?: number;
  /** now: clock for the stats persistence interval (tests inject one). */
  now?: () => number;
  /** integrityFullMaxBytes: up to this size an existing database gets a whole quick_check on open, past it a bounded one (log-engine's integrity.ts). */
  integrityFullMaxBytes?: number;
}

/** MAX_SCAN_LIMIT bounds one scan() call. */
export const MAX_SCAN_LIMIT = 100_000;

/**
 * KvEngine is a store's state machine: one SQLite database (WAL) holding all
 * Regions' keys in one byte-ordered table, plus each Region's apply state and
 * region state, always written in the same transaction as the data they
 * describe. See README.md for the module map and docs/storage.md.
 */
export class KvEngine {
  private readonly tracker = new RegionStatsTracker();
  private readonly now: () => number;
  private readonly statsInterval: number;
  private lastStatsPersist: number;
  private closed = false;
  private readonly openSnapshots = new Set<KvSnapshot>();
  private readonly s: {
    put: Database.Statement;
    valueSize: Database.Statement;
    del: Database.Statement;
    delRangeBounded: Database.Statement;
    delRangeOpen: Database.Statement;
    get: Database.Statement;
    scanBounded: Database.Statement;
    scanOpen: Database.Statement;
    putApply: Database.Statement;
    getApply: Database.Statement;
    putRegion: Database.Statement;
    getRegion: Database.Statement;
    putStats: Database.Statement;
    delStats: Database.Statement;
  };
  private readonly writeTxn: (batch: KvWriteBatch) => void;
  /**
   * oldValueBytes[i] is, for the put or delete at ops[i] of the batch being
   * written, the size of the value it replaced or removed, or -1 when the
   * key was absent: the Region stats then count an overwrite by its bytes
   * delta and a delete of a missing key as nothing. Reused across writes.
   */
  private readonly oldValueBytes: number[] = [];
  /** mvcc: the transactional tables' statements (mvcc/tables.ts); reads see committed rows. */
  readonly mvcc: MvccTables;
  private readonly sizer: RangeSizer;
  /** integrity: what the check on opening did (undefined only while constructing). */
  integrity: IntegrityReport | undefined;

  private constructor(
    private readonly db: Database.Database,
    readonly file: string,
    options: KvEngineOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.statsInterval = options.statsPersistIntervalMs ?? 10_000;
    this.lastStatsPersist = this.now();
    this.s = {
      put: db.prepare('INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)'),
      valueSize: db.prepare('SELECT length(value) FROM kv WHERE key = ?').pluck(),
      del: db.prepare('DELETE FROM kv WHERE key = ? RETURNING length(value)').pluck(),
      delRangeBounded: db.prepare('DELETE FROM kv WHERE key >= ? AND key < ?'),
      delRangeOpen: db.prepare('DELETE FROM kv WHERE key >= ?'),
      get: db.prepare('SELECT value FROM kv WHERE key = ?').pluck(),
      scanBounded: db.prepare('SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?').raw(),
      scanOpen: db.prepare('SELECT key, value FROM kv WHERE key >= ? ORDER BY key LIMIT ?').raw(),
      putApply: db.prepare('INSERT OR REPLACE INTO apply_state (region_id, applied_index, truncated_index, truncated_term) VALUES (?, ?, ?, ?)'),
      getApply: db.prepare('SELECT applied_index, truncated_index, truncated_term FROM apply_state WHERE region_id = ?').raw(),
      putRegion: db.prepare('INSERT OR REPLACE INTO region_state (region_id, region, state, merge_state) VALUES (?, ?, ?, ?)'),
      getRegion: db.prepare('SELECT region, state, merge_state FROM region_state WHERE region_id = ?').raw(),
      putStats: db.prepare('INSERT OR REPLACE INTO region_stats (region_id, bytes, keys) VALUES (?, ?, ?)'),
      delStats: db.prepare('DELETE FROM region_stats WHERE region_id = ?'),
    };
    this.mvcc = new MvccTables(db);
    this.sizer = new RangeSizer(db);
    this.writeTxn = db.transaction((batch: KvWriteBatch) => this.applyOps(batch));

    // Restart: live Regions' ranges and their persisted stats.
    for (const r of this.loadRegionStates()) {
      if (r.regionState.state === 'tombstone') continue;
      this.tracker.setRegion(r.regionId, r.regionState.region.startKey, r.regionState.region.endKey);
    }
    const stats = db.prepare('SELECT region_id, bytes, keys FROM region_stats').raw().all() as [number, number, number][];
    for (const [id, bytes, keys] of stats) if (this.tracker.has(id)) this.tracker.load(id, { bytes, keys });
    this.tracker.dirty.clear();
  }

  /**
   * open opens or creates the database; bad files give StorageFormatError
   * (StorageCorruptError when the integrity check finds damage) /
   * StorageOpenError.
   */
  static open(options: KvEngineOptions): KvEngine {
    const file = path.resolve(options.path);
    let integrity: IntegrityReport | undefined;
    const check = { fullMaxBytes: options.integrityFullMaxBytes ?? DEFAULT_INTEGRITY_FULL_MAX_BYTES, bulkTables: ['kv', 'txn_write', 'txn_data'] };
    const durability = options.durability ?? 'full';
    const db = openDatabase({ file, engine: KV_ENGINE_NAME, formatVersion: KV_FORMAT_VERSION, schema: KV_SCHEMA, migrate: migrateKv, durability, check, onChecked: (r) => (integrity = r) });
    try {
      const engine = new KvEngine(db, file, options);
      engine.integrity = integrity;
      return engine;
    } catch (err) {
      db.close();
      throw err;
    }
  }

  // ---------------------------------------------------------------- writes

  /** write commits a batch in one transaction (one fsync with durability 'full'). */
  write(batch: KvWriteBatch): void {
    this.checkOpen('write');
    if (batch.isEmpty) return;
    this.writeTxn(batch);
    // Stats follow the committed data only.
    const ops = batch.ops;
    const olds = this.oldValueBytes;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      switch (op.kind) {
        case 'put':
          this.tracker.onPut(op.key, op.value.length, olds[i]!);
          break;
        case 'delete':
          this.tracker.onDelete(op.key, olds[i]!);
          break;
        case 'deleteRange':
        case 'deleteRegionData':
          this.tracker.onDeleteRange(op.start, op.end);
          break;
        case 'mvcc':
          // Versions only grow until GC; locks come and go within a transaction and are not counted.
          if (op.op.t === 'putWrite') this.tracker.onGrow(op.op.write.key, op.op.write.key.length + 16 + (op.op.write.shortValue?.length ?? 0), op.op.write.kind === 'put');
          else if (op.op.t === 'putData') this.tracker.onGrow(op.op.data.key, op.op.data.key.length + 8 + op.op.data.value.length, false);
          break;
        case 'regionState':
          this.trackRegion(op.regionId, op.state);
          break;
        case 'applyState':
          break;
      }
    }
    // Approximate stats ride in their own small transaction now and then.
    if (this.now() - this.lastStatsPersist >= this.statsInterval) {
      this.db.transaction(() => this.persistStats())();
      // With them, free pages (large deletes, Regions moved away) go back to
      // the file system, in a bounded step: the write above is committed
      // whatever this meets, and a real fault shows at the next write.
      try {
        this.reclaimSpace();
      } catch {
        // nothing lost: the free pages stay free
      }
    }
  }

  /**
   * ingestSnapshot replaces a Region's data by a snapshot's pairs and
   * transactional rows atomically: clears [start, end) in all four tables,
   * inserts the rows (which must lie in the range) and writes both states,
   * in one transaction.
   */
  ingestSnapshot(
    regionId: number,
    start: Uint8Array,
    end: Uint8Array,
    pairs: Iterable<KvPair>,
    applyState: ApplyState,
    regionState: RegionLocalState,
    txn?: TxnRows,
  ): void {
    this.checkOpen('ingestSnapshot');
    let bytes = 0;
    let keys = 0;
    const inRange = (k: Uint8Array): boolean => compareKeys(k, start) >= 0 && (end.length === 0 || compareKeys(k, end) < 0);
    this.db.transaction(() => {
      this.deleteRegionData(start, end);
      for (const [k, v] of pairs) {
        assert(inRange(k), `snapshot pair outside region ${regionId}'s range`);
        this.s.put.run(k, v);
        bytes += k.length + v.length;
        keys++;
      }
      if (txn !== undefined) {
        const t = ingestTxnRows(this.mvcc, regionId, txn, inRange);
        bytes += t.bytes;
        keys += t.keys;
      }
      this.putApplyState(regionId, applyState);
      this.putRegionState(regionId, regionState);
    })();
    this.tracker.onDeleteRange(start, end);
    this.trackRegion(regionId, regionState);
    if (regionState.state !== 'tombstone') {
      this.tracker.load(regionId, { bytes, keys });
      this.tracker.dirty.add(regionId);
    }
  }

  // ----------------------------------------------------------------- reads

  get(key: Uint8Array): Buffer | undefined {
    this.checkOpen('get');
    return this.s.get.get(key) as Buffer | undefined;
  }

  /** scan returns up to `limit` pairs of [start, end) in byte order; an empty end is unbounded. */
  scan(start: Uint8Array, end: Uint8Array, limit: number): KvPair[] {
    this.checkOpen('scan');
    assert(Number.isInteger(limit) && limit >= 0 && limit <= MAX_SCAN_LIMIT, `scan limit must be in [0, ${MAX_SCAN_LIMIT}], got ${limit}`);
    if (limit === 0) return [];
    const rows = (end.length === 0 ? this.s.scanOpen.all(start, limit) : this.s.scanBounded.all(start, end, limit)) as [Buffer, Buffer][];
    return rows;
  }

  applyState(regionId: number): ApplyState | undefined {
    this.checkOpen('applyState');
    const row = this.s.getApply.get(regionId) as [number, number, number] | undefined;
    return row === undefined ? undefined : { appliedIndex: row[0], truncatedIndex: row[1], truncatedTerm: row[2] };
  }

  regionState(regionId: number): RegionLocalState | undefined {
    this.checkOpen('regionState');
    const row = this.s.getRegion.get(regionId) as [Buffer, string, Buffer | null] | undefined;
    return row === undefined ? undefined : decodeRegionState(this.file, regionId, row);
  }

  /** loadRegionStates returns every Region's region and apply state (the restart path). */
  loadRegionStates(): StoredRegion[] {
    this.checkOpen('loadRegionStates');
    const rows = this.db
      .prepare(
        'SELECT r.region_id, r.region, r.state, r.merge_state, a.applied_index, a.truncated_index, a.truncated_term FROM region_state r LEFT JOIN apply_state a ON a.region_id = r.region_id ORDER BY r.region_id',
      )
      .raw()
      .all() as [number, Buffer, string, Buffer | null, number | null, number | null, number | null][];
    return rows.map(([id, region, state, merge, applied, ti, tt]) => ({
      regionId: id,
      regionState: decodeRegionState(this.file, id, [region, state, merge]),
      applyState: applied === null ? undefined : { appliedIndex: applied, truncatedIndex: ti ?? 0, truncatedTerm: tt ?? 0 },
    }));
  }

  /**
   * snapshotRegion opens a consistent point-in-time view of a Region: its
   * apply state, region state and the pairs of [start, end), all read in one
   * read transaction on a separate connection, so writes go on meanwhile.
   * Close it when done (a long-open snapshot keeps the WAL from being reset).
   */
  snapshotRegion(regionId: number, start: Uint8Array, end: Uint8Array): KvSnapshot {
    this.checkOpen('snapshotRegion');
    const snap = new KvSnapshot(this.file, regionId, start, end, () => this.openSnapshots.delete(snap));
    this.openSnapshots.add(snap);
    return snap;
  }

  /** snapshotRange reads all pairs of [start, end) inside one read transaction. */
  snapshotRange(start: Uint8Array, end: Uint8Array): KvPair[] {
    return this.snapshotRangeData(start, end).pairs;
  }

  /** snapshotRangeData reads all raw pairs and transactional rows of [start, end) inside one read transaction. */
  snapshotRangeData(start: Uint8Array, end: Uint8Array): { pairs: KvPair[]; txn: TxnRows } {
    const snap = this.snapshotRegion(0, start, end);
    try {
      const txn = snap.txnRows();
      return { pairs: [...snap.pairs()], txn };
    } finally {
      snap.close();
    }
  }

  // ------------------------------------------------------------ split check

  /**
   * approximateRegionStats returns a Region's approximate size and key count
   * from memory. Unknown stats (first check after a restart without saved
   * stats, or after a split/merge changed the range) are recounted once with
   * one scan of the Region; later checks cost nothing.
   */
  approximateRegionStats(regionId: number): RegionStats | undefined {
    this.checkOpen('approximateRegionStats');
    const range = this.tracker.range(regionId);
    if (range === undefined) return undefined;
    let s = this.tracker.get(regionId);
    if (s === undefined) {
      s = this.sizer.count(range.start, range.end);
      this.tracker.load(regionId, s);
      this.tracker.dirty.add(regionId);
    }
    return s;
  }

  /**
   * approximateSplitKey returns a key near the middle (by bytes) of
   * [start, end) — never the first key, so both halves are non-empty, and
   * undefined when the range holds fewer than two keys — together with the
   * exact size and key count of the range. It scans the range (as TiKV's
   * split checker does), so call it only when the approximate size says a
   * split is due, and trust its stats over the approximation: it refreshes
   * the stats of a matching Region.
   */
  approximateSplitKey(start: Uint8Array, end: Uint8Array): { key: Buffer | undefined; stats: RegionStats } {
    this.checkOpen('approximateSplitKey');
    const stats = this.sizer.count(start, end);
    const exact = this.tracker.regionWithRange(start, end);
    if (exact !== undefined) {
      this.tracker.load(exact, stats);
      this.tracker.dirty.add(exact);
    }
    return { key: stats.keys < 2 ? undefined : this.sizer.middleKey(start, end, stats), stats };
  }

  // -------------------------------------------------------------- lifecycle

  /**
   * flush makes every committed write durable now. With durability 'full'
   * that is already true when write() returns; with 'relaxed' it syncs the
   * WAL (a checkpoint syncs the WAL before copying pages back). The store
   * calls it before compacting the raft log past the applied index written
   * since the last flush.
   *
   * SQLite syncs the WAL only when the checkpoint can copy frames back: a
   * reader pinning an older snapshot (an open snapshotRegion) can stop it
   * before that, and the pragma still succeeds. A flush that did not reach
   * the WAL's end is therefore a broken invariant (the caller must not hold
   * a snapshot across a flush), not a durable write.
   */
  flush(): void {
    this.checkOpen('flush');
    const [r] = this.db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    assert(r !== undefined && r.busy === 0 && r.checkpointed === r.log, `${this.file}: flush's checkpoint stopped at WAL frame ${r?.checkpointed} of ${r?.log} (a snapshot reader is open), so earlier writes may not be durable`);
  }

  /**
   * reclaimSpace gives at most maxPages free pages back to the file system,
   * only past the slack kept for the next writes (log-engine's vacuum.ts:
   * max(4 MiB, a quarter of the used pages)); returns the pages given back.
   * write() runs it with the stats, every statsPersistIntervalMs (one short
   * transaction, no fsync at the store's relaxed durability).
   */
  reclaimSpace(maxPages = VACUUM_STEP_PAGES): number {
    this.checkOpen('reclaimSpace');
    return vacuumStep(this.db, maxPages);
  }

  /**
   * close persists the approximate stats and closes the database (open
   * snapshots are closed too). The database is closed even when saving the
   * stats fails (a full disk); that error is thrown after, and the next
   * open recounts what it lacks (the stats are approximate by design).
   */
  close(): void {
    if (this.closed) return;
    for (const s of [...this.openSnapshots]) s.close();
    this.closed = true;
    try {
      this.db.transaction(() => this.persistStats())();
    } finally {
      this.db.close();
    }
  }

  // -------------------------------------------------------------- internals

  private applyOps(batch: KvWriteBatch): void {
    const s = this.s;
    const ops = batch.ops;
    const olds = this.oldValueBytes;
    olds.length = ops.length;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      switch (op.kind) {
        case 'put': {
          // One more point lookup on a page the INSERT reads anyway (hot in
          // SQLite's cache); SQLite cannot return the replaced row itself.
          const old = s.valueSize.get(op.key) as number | undefined;
          olds[i] = old ?? -1;
          s.put.run(op.key, op.value);
          break;
        }
        case 'delete': {
          const old = s.del.get(op.key) as number | undefined;
          olds[i] = old ?? -1;
          break;
        }
        case 'deleteRange':
          if (op.end.length === 0) s.delRangeOpen.run(op.start);
          else s.delRangeBounded.run(op.start, op.end);
          break;
        case 'deleteRegionData':
          this.deleteRegionData(op.start, op.end);
          break;
        case 'mvcc':
          this.mvcc.apply(op.op);
          break;
        case 'applyState':
          this.putApplyState(op.regionId, op.state);
          break;
        case 'regionState':
          this.putRegionState(op.regionId, op.state);
          break;
      }
    }
  }

  /** deleteRegionData clears [start, end) in the raw and the transactional tables. */
  private deleteRegionData(start: Uint8Array, end: Uint8Array): void {
    if (end.length === 0) this.s.delRangeOpen.run(start);
    else this.s.delRangeBounded.run(start, end);
    this.mvcc.deleteRange(start, end);
  }

  private putApplyState(regionId: number, a: ApplyState): void {
    this.s.putApply.run(regionId, a.appliedIndex, a.truncatedIndex, a.truncatedTerm);
  }

  private putRegionState(regionId: number, st: RegionLocalState): void {
    this.s.putRegion.run(regionId, encode(st.region), st.state, st.mergeState ?? null);
  }

  private trackRegion(regionId: number, st: RegionLocalState): void {
    if (st.state === 'tombstone') this.tracker.dropRegion(regionId);
    else this.tracker.setRegion(regionId, st.region.startKey, st.region.endKey);
  }

  private persistStats(): void {
    for (const id of this.tracker.dirty) {
      const st = this.tracker.get(id);
      if (st === undefined) this.s.delStats.run(id);
      else this.s.putStats.run(id, st.bytes, st.keys);
    }
    this.tracker.dirty.clear();
    this.lastStatsPersist = this.now();
  }

  private checkOpen(what: string): void {
    if (this.closed) throw new EngineClosedError(`kv engine ${what}`);
  }
}
