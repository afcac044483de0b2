import { TXN_SCHEMA } from './mvcc/schema';

// schema: the tables of the KV engine's database (format version 2).
//
// kv            the state machine: every Region's keys in one byte-ordered
//               table (split and merge only change metadata).
// apply_state   per Region: applied index and the raft log's truncated
//               index/term, written in the same transaction as the data.
// region_state  per Region: its descriptor (msgpack Region), peer state and
//               merge state.
// region_stats  per Region: approximate size and key count, persisted now
//               and then so a restart need not scan (approximate by design).
// txn_data, txn_write, txn_lock  the transactional keyspace (mvcc/schema.ts),
//               since version 2; a version-1 file gets them when opened.

export const KV_ENGINE_NAME = 'flotilla-kv-engine';
export const KV_FORMAT_VERSION = 2;

/** migrateKv upgrades an older file in place (openDatabase runs it in one transaction with the version bump). */
export function migrateKv(db: { exec(sql: string): unknown }, fromVersion: number): void {
  if (fromVersion < 2) db.exec(TXN_SCHEMA);
}

export const KV_SCHEMA =
  `
CREATE TABLE kv (
  key BLOB PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE apply_state (
  region_id INTEGER PRIMARY KEY,
  applied_index INTEGER NOT NULL,
  truncated_index INTEGER NOT NULL,
  truncated_term INTEGER NOT NULL
);
CREATE TABLE region_state (
  region_id INTEGER PRIMARY KEY,
  region BLOB NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('normal', 'applying', 'merging', 'tombstone')),
  merge_state BLOB
);
CREATE TABLE region_stats (
  region_id INTEGER PRIMARY KEY,
  bytes INTEGER NOT NULL,
  keys INTEGER NOT NULL
);
` + TXN_SCHEMA;
