// @flotilla/kv-engine — the store's state machine in SQLite (see README.md).
//   engine.ts        KvEngine: write (one transaction), get/scan, region/apply states, ingest, split check
//   write-batch.ts   KvWriteBatch: put, delete, deleteRange, setApplyState, setRegionState
//   snapshot.ts      KvSnapshot: point-in-time read of one Region (own connection, one read txn)
//   region-stats.ts  RegionStatsTracker: approximate size / keys per Region, kept on write
//   types.ts         ApplyState, RegionLocalState, PeerState, StoredRegion, KvPair, RegionStats
//   schema.ts        tables and format version (2: the transactional tables; a version-1 file is upgraded on open)
//   range-size.ts    RangeSizer: per-key sizes over all four tables (split check, recount)
//   mvcc/            the transactional keyspace: schema (three tables), tables (statements),
//                    overlay (an apply round's view), percolator (commands at apply), reader (snapshot reads)
//   sqlite-open.ts   open/create with format checks and the integrity check (the log engine's helper)
//   errors.ts        StorageFormatError, StorageCorruptError, StorageOpenError, StorageFaultError, EngineClosedError
export { KvEngine, MAX_SCAN_LIMIT } from './engine';
export type { KvEngineOptions } from './engine';
export { KvWriteBatch, MAX_KV_BATCH_OPS } from './write-batch';
export type { KvOp } from './write-batch';
export { KvSnapshot } from './snapshot';
export type { ApplyState, KvPair, PeerState, RegionLocalState, RegionStats, StoredRegion } from './types';
export { StorageFormatError, StorageCorruptError, StorageOpenError, StorageFaultError, EngineClosedError } from './errors';
export type { Durability, IntegrityReport } from './sqlite-open';
export { KV_FORMAT_VERSION } from './schema';
export { MvccTables } from './mvcc/tables';
export { MvccOverlay } from './mvcc/overlay';
export type { MvccRead, MvccView } from './mvcc/overlay';
export { applyTxnCommand, physicalMs, MAX_VERSIONS_SCANNED } from './mvcc/percolator';
export { snapshotGet, snapshotScan } from './mvcc/reader';
export type { SnapshotRead } from './mvcc/reader';
export { SHORT_VALUE_MAX } from './mvcc/schema';
export { planGc } from './mvcc/gc';
export { readChanges, changeValue, prevValueOf, type ChangePage } from './mvcc/changes';
export type { GcDelete, GcPlan } from './mvcc/gc';
export type { DataRow, LockRow, LockKind, MvccOp, TxnRows, WriteKind, WriteRow } from './mvcc/schema';
