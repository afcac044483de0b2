// @flotilla/log-engine — the store's shared SQLite raft log (see README.md).
//   engine.ts             LogEngine: open, write/writeAsync (group commit), reads, cache, purge
//   log-batch.ts          LogBatch: append / hard state / conf state / compact / snapshot / remove
//   region-log-storage.ts RegionLogStorage: raft-core Storage for one Region; RegionLogReader, the engine reads it uses
//   region-view.ts        RegionView: in-memory raft state + recent-entry cache of one Region
//   log-writer.ts         LogWriter: staging rows, folding into tables, purge (the only writer)
//   write-worker.ts       writer thread for writer:'worker'
//   batch-codec.ts        binary form of a LogBatch
//   schema.ts             tables and format version
//   sqlite-open.ts        open/create with format checks (StorageFormatError), auto-vacuum on (vacuum.ts)
//   vacuum.ts             incremental auto-vacuum: conversion on open, bounded vacuumStep after purges
//   integrity.ts          the integrity check on open: quick_check, whole or bounded by size (StorageCorruptError)
//   errors.ts             StorageFormatError, StorageCorruptError, StorageOpenError, StorageFaultError (disk full,
//                         corrupt, I/O at run time; storageFaultKind classifies), EngineClosedError, assert
export { LogEngine, MAX_PENDING_WRITES } from './engine';
export type { LogEngineOptions, EngineStats, DiskUsage } from './engine';
export { LogBatch, entrySize, MAX_BATCH_BYTES } from './log-batch';
export type { LogOp } from './log-batch';
export { RegionLogStorage, type RegionRaftState, type RegionLogReader } from './region-log-storage';
export { StorageFormatError, StorageOpenError, EngineClosedError, InvalidBatchError, WriteBackpressureError } from './errors';
export { StorageCorruptError, StorageFaultError, storageFaultKind, asStorageFault, type StorageFaultKind } from './errors';
export { DEFAULT_INTEGRITY_FULL_MAX_BYTES, type IntegrityCheck, type IntegrityReport } from './integrity';
export type { Durability, OpenSpec } from './sqlite-open';
export { openDatabase } from './sqlite-open';
export { vacuumStep, VACUUM_STEP_PAGES, VACUUM_SLACK_MIN_BYTES, CONVERT_MAX_LIVE_BYTES, type AutoVacuumReport } from './vacuum';
export { LOG_FORMAT_VERSION } from './schema';
