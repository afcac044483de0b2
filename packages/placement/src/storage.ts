import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { decode, encode } from '@flotilla/proto';
import type { Operator, RegionInfo, StoreInfo } from './types';
import { PlacementStorageError, assert } from './errors';

/**
 * SCHEMA_VERSION is the on-disk format this build reads and writes. 2: the
 * replicated placement (members table, raft_* and tso_upper_ms meta keys);
 * a version-1 database is upgraded in place when opened, and a build that
 * reads only version 1 refuses it afterwards (it would ignore the raft log).
 */
export const SCHEMA_VERSION = 2;
export const DB_FILE_NAME = 'placement.db';

/** ClusterMeta is the small, rarely changing part of the state. */
export interface ClusterMeta {
  clusterId: number;
  maxReplicas: number;
  bootstrapped: boolean;
  /** idHighWater: every ID handed out so far is below it (persisted BEFORE handing out). */
  idHighWater: number;
  /** tsoUpperMs: every timestamp handed out has a physical part below it (0: none yet; persisted BEFORE handing out). */
  tsoUpperMs: number;
}

/** PersistedStore is what survives a restart of a store's record (liveness is re-derived). */
export type PersistedStore = Omit<StoreInfo, 'state' | 'lastHeartbeatMs' | 'regionCount' | 'leaderCount'> & { tombstone: boolean; offline?: boolean };

/** LoadedState is everything read back at startup. */
export interface LoadedState {
  meta: ClusterMeta;
  stores: PersistedStore[];
  regions: RegionInfo[];
  operators: Operator[];
}

/**
 * PlacementStorage is the SQLite database behind the placement service
 * (WAL, synchronous=FULL, exclusive lock so two servers cannot share a data
 * directory). Small, rare changes (bootstrap, stores, ID high-water mark)
 * are written synchronously; Region and operator changes are written by the
 * caller in batches through writeBatch (one transaction, one fsync).
 */
export class PlacementStorage {
  readonly path: string;
  /** db is the open database; the Raft state machine (raft/fsm-store.ts) keeps its own tables and meta keys in it. */
  readonly db: Database.Database;
  private readonly putMetaStmt: Database.Statement;
  private readonly putStoreStmt: Database.Statement;
  private readonly updateRegionStmt: Database.Statement;
  private readonly insertRegionStmt: Database.Statement;
  private readonly updateRegionStatsStmt: Database.Statement;
  private readonly deleteRegionStmt: Database.Statement;
  private readonly putOperatorStmt: Database.Statement;
  private readonly deleteOperatorStmt: Database.Statement;
  private getMetaStmt: Database.Statement | undefined;
  private regionsAfterStmt: Database.Statement | undefined;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.db = db;
    this.putMetaStmt = db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    this.putStoreStmt = db.prepare('INSERT OR REPLACE INTO stores (id, data) VALUES (?, ?)');
    // UPDATE then INSERT rather than INSERT OR REPLACE: REPLACE deletes and re-inserts the row, ~5x slower.
    this.updateRegionStmt = db.prepare('UPDATE regions SET meta = ?, leader_peer_id = ?, size_bytes = ?, keys = ? WHERE id = ?');
    this.insertRegionStmt = db.prepare('INSERT INTO regions (id, meta, leader_peer_id, size_bytes, keys) VALUES (?, ?, ?, ?, ?)');
    this.updateRegionStatsStmt = db.prepare('UPDATE regions SET leader_peer_id = ?, size_bytes = ?, keys = ? WHERE id = ?');
    this.deleteRegionStmt = db.prepare('DELETE FROM regions WHERE id = ?');
    this.putOperatorStmt = db.prepare('INSERT OR REPLACE INTO operators (region_id, data) VALUES (?, ?)');
    this.deleteOperatorStmt = db.prepare('DELETE FROM operators WHERE region_id = ?');
  }

  /**
   * open opens (or creates) `<dataDir>/placement.db`. A file that is not a
   * SQLite database, a newer schema, a database locked by another server or
   * undecodable rows give a PlacementStorageError naming the path.
   */
  static open(dataDir: string, defaults: { clusterId: number; maxReplicas: number }, opts: { regions?: boolean } = {}): { storage: PlacementStorage; state: LoadedState } {
    mkdirSync(dataDir, { recursive: true });
    const path = join(dataDir, DB_FILE_NAME);
    let db: Database.Database;
    try {
      // A short busy timeout: with an exclusive lock the only contender is a second server, which should fail fast.
      db = new Database(path, { timeout: 200 });
    } catch (err) {
      throw new PlacementStorageError(path, `cannot open: ${(err as Error).message}`, err);
    }
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // The Region table is rewritten at random by heartbeat batches; keep it in SQLite's cache (64 MiB).
      db.pragma('cache_size = -65536');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value ANY) STRICT;
        CREATE TABLE IF NOT EXISTS stores (id INTEGER PRIMARY KEY, data BLOB NOT NULL) STRICT;
        CREATE TABLE IF NOT EXISTS regions (
          id INTEGER PRIMARY KEY,
          meta BLOB NOT NULL,           -- msgpack Region (range, epoch, peers)
          leader_peer_id INTEGER,       -- statistics, updated in place by heartbeat batches
          size_bytes INTEGER NOT NULL,
          keys INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE IF NOT EXISTS operators (region_id INTEGER PRIMARY KEY, data BLOB NOT NULL) STRICT;
        CREATE TABLE IF NOT EXISTS members (id INTEGER PRIMARY KEY, data BLOB NOT NULL) STRICT;
      `);
    } catch (err) {
      db.close();
      const msg = (err as Error).message;
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') throw new PlacementStorageError(path, `not a valid placement database (corrupt?): ${msg}`, err);
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new PlacementStorageError(path, `in use by another placement server: ${msg}`, err);
      throw new PlacementStorageError(path, `cannot initialize: ${msg}`, err);
    }
    const storage = new PlacementStorage(path, db);
    try {
      return { storage, state: storage.load(defaults, opts.regions ?? true) };
    } catch (err) {
      db.close();
      if (err instanceof PlacementStorageError) throw err;
      throw new PlacementStorageError(path, `cannot read state (corrupt?): ${(err as Error).message}`, err);
    }
  }

  private load(defaults: { clusterId: number; maxReplicas: number }, withRegions: boolean): LoadedState {
    const rows = this.db.prepare('SELECT key, value FROM meta').all() as { key: string; value: unknown }[];
    const kv = new Map(rows.map((r) => [r.key, r.value]));
    if (!kv.has('schema_version')) {
      // A fresh database: write the meta in one durable transaction.
      const meta: ClusterMeta = { clusterId: defaults.clusterId, maxReplicas: defaults.maxReplicas, bootstrapped: false, idHighWater: 1, tsoUpperMs: 0 };
      this.db.transaction(() => {
        this.putMetaStmt.run('schema_version', SCHEMA_VERSION);
        this.writeMeta(meta);
      })();
      return { meta, stores: [], regions: [], operators: [] };
    }
    const version = kv.get('schema_version');
    if (typeof version !== 'number' || !Number.isInteger(version)) throw new PlacementStorageError(this.path, `schema_version is ${String(version)}, not an integer (corrupt?)`);
    if (version > SCHEMA_VERSION) {
      throw new PlacementStorageError(this.path, `written by a newer format (schema ${version}; this build reads up to ${SCHEMA_VERSION}); upgrade Flotilla`);
    }
    // Version 1 lacks only what CREATE TABLE IF NOT EXISTS added and absent meta keys read as 0.
    if (version < SCHEMA_VERSION) this.putMetaStmt.run('schema_version', SCHEMA_VERSION);
    const num = (k: string): number => {
      const v = kv.get(k);
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new PlacementStorageError(this.path, `meta ${k} is ${String(v)}, not a non-negative integer (corrupt?)`);
      return v;
    };
    const meta: ClusterMeta = {
      clusterId: num('cluster_id'),
      maxReplicas: num('max_replicas'),
      bootstrapped: num('bootstrapped') === 1,
      idHighWater: num('id_high_water'),
      // Written since the timestamp oracle exists; a database from before it has handed out none.
      tsoUpperMs: kv.has('tso_upper_ms') ? num('tso_upper_ms') : 0,
    };
    const decodeRows = <T>(sql: string, what: string, check: (v: T) => boolean): T[] =>
      (this.db.prepare(sql).all() as { data: Uint8Array }[]).map((r) => {
        const v = decode(r.data) as T;
        if (!check(v)) throw new PlacementStorageError(this.path, `undecodable ${what} row (corrupt?)`);
        return v;
      });
    const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
    const stores = decodeRows<PersistedStore>('SELECT data FROM stores ORDER BY id', 'store', (v) => isObj(v) && typeof v.id === 'number');
    const regions = withRegions ? this.regionsAfter(0, Number.MAX_SAFE_INTEGER) : [];
    const operators = decodeRows<Operator>('SELECT data FROM operators', 'operator', (v) => isObj(v) && typeof v.regionId === 'number' && Array.isArray(v.steps));
    return { meta, stores, regions, operators };
  }

  /**
   * regionsAfter reads up to `limit` Region rows with IDs above `afterId`, in
   * ID order: a new placement leader reads its routing table a page at a
   * time between event-loop turns (cluster-load.ts), so that reading 100,000
   * Regions never blocks its raft ticks. An undecodable row is a
   * PlacementStorageError naming it.
   */
  regionsAfter(afterId: number, limit: number): RegionInfo[] {
    this.regionsAfterStmt ??= this.db.prepare('SELECT id, meta, leader_peer_id, size_bytes, keys FROM regions WHERE id > ? ORDER BY id LIMIT ?').raw();
    const rows = this.regionsAfterStmt.all(afterId, limit) as [number, Uint8Array, number | null, number, number][];
    return rows.map(([id, meta, leaderPeerId, size, keys]): RegionInfo => {
      const region = decode(meta) as RegionInfo['region'];
      if (typeof region !== 'object' || region === null || region.id !== id || !Array.isArray(region.peers) || !(region.startKey instanceof Uint8Array) || !(region.endKey instanceof Uint8Array)) {
        throw new PlacementStorageError(this.path, `undecodable region row ${id} (corrupt?)`);
      }
      const leader = leaderPeerId === null ? undefined : region.peers.find((p) => p.id === leaderPeerId);
      return { region, ...(leader ? { leader } : {}), approximateSizeBytes: size, approximateKeys: keys, downPeers: [], pendingPeers: [] };
    });
  }

  private writeMeta(meta: ClusterMeta): void {
    this.putMetaStmt.run('cluster_id', meta.clusterId);
    this.putMetaStmt.run('max_replicas', meta.maxReplicas);
    this.putMetaStmt.run('bootstrapped', meta.bootstrapped ? 1 : 0);
    this.putMetaStmt.run('id_high_water', meta.idHighWater);
    this.putMetaStmt.run('tso_upper_ms', meta.tsoUpperMs);
  }

  /** readMetaNumber reads one numeric meta value (0 when absent): what the Raft state machine compares bounds against. */
  readMetaNumber(key: string): number {
    this.getMetaStmt ??= this.db.prepare('SELECT value FROM meta WHERE key = ?');
    const row = this.getMetaStmt.get(key) as { value: unknown } | undefined;
    return typeof row?.value === 'number' ? row.value : 0;
  }

  /** putMeta writes one meta value (the Raft state machine's own keys: applied index, conf state, cluster ID). */
  putMeta(key: string, value: number | Uint8Array): void {
    this.putMetaStmt.run(key, value);
  }

  /**
   * loadState reads everything back; with `regions: false` all but the
   * Regions (a new leader reads those in slices with regionsAfter).
   */
  loadState(opts: { regions?: boolean } = {}): LoadedState {
    return this.load({ clusterId: 0, maxReplicas: 3 }, opts.regions ?? true);
  }

  /** saveIdHighWater durably records the ID high-water mark; called before any ID below it is handed out. */
  saveIdHighWater(highWater: number): void {
    this.putMetaStmt.run('id_high_water', highWater);
  }

  /** saveTsoUpper durably records the timestamp oracle's bound; called before any timestamp below it is handed out. */
  saveTsoUpper(upperMs: number): void {
    this.putMetaStmt.run('tso_upper_ms', upperMs);
  }

  saveMaxReplicas(maxReplicas: number): void {
    this.putMetaStmt.run('max_replicas', maxReplicas);
  }

  /** saveBootstrap records the first store, the first Region and the bootstrapped flag in one transaction. */
  saveBootstrap(store: PersistedStore, region: RegionInfo): void {
    this.db.transaction(() => {
      this.putStoreStmt.run(store.id, encode(store));
      this.putRegion(region);
      this.putMetaStmt.run('bootstrapped', 1);
    })();
  }

  saveStore(store: PersistedStore): void {
    this.putStoreStmt.run(store.id, encode(store));
  }

  private putRegion(info: RegionInfo): void {
    const meta = encode(info.region);
    const leader = info.leader?.id ?? null;
    const r = this.updateRegionStmt.run(meta, leader, info.approximateSizeBytes, info.approximateKeys, info.region.id);
    if (r.changes === 0) this.insertRegionStmt.run(info.region.id, meta, leader, info.approximateSizeBytes, info.approximateKeys);
  }

  /**
   * writeBatch applies a batch of Region and operator changes in ONE
   * transaction (one fsync). In `regions`, `null` deletes; in `stats`
   * (Regions whose meta did not change) only the leader and size columns
   * are rewritten, without re-encoding the Region; `statRows` carries the
   * same as flat numbers, four a row (Region ID, leader peer ID or 0, size,
   * keys: what the placement log holds, raft/command.ts). Down and pending
   * peers are not persisted: they are re-reported by the next heartbeat.
   */
  writeBatch(regions: Map<number, RegionInfo | null>, stats: Map<number, RegionInfo>, operators: Map<number, Operator | null>, statRows: readonly number[] = []): void {
    if (regions.size === 0 && stats.size === 0 && operators.size === 0 && statRows.length === 0) return;
    assert(statRows.length % 4 === 0, `statRows holds ${statRows.length} numbers, not rows of 4`);
    this.db.transaction(() => {
      for (const [id, info] of regions) {
        if (info === null) this.deleteRegionStmt.run(id);
        else {
          assert(info.region.id === id, `region row ${id} holds region ${info.region.id}`);
          this.putRegion(info);
        }
      }
      for (const [id, info] of stats) {
        if (regions.has(id)) continue;
        const r = this.updateRegionStatsStmt.run(info.leader?.id ?? null, info.approximateSizeBytes, info.approximateKeys, id);
        if (r.changes === 0) this.putRegion(info);
      }
      // Rows of (Region ID, leader peer ID or 0, size, keys) for Regions whose row exists (raft/command.ts); a Region
      // without a row (removed by an earlier entry) has no statistics to keep.
      for (let i = 0; i < statRows.length; i += 4) {
        const leader = statRows[i + 1]!;
        this.updateRegionStatsStmt.run(leader === 0 ? null : leader, statRows[i + 2]!, statRows[i + 3]!, statRows[i]!);
      }
      for (const [regionId, op] of operators) {
        if (op === null) this.deleteOperatorStmt.run(regionId);
        else this.putOperatorStmt.run(regionId, encode(op));
      }
    })();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
