// mvcc/schema: the transactional keyspace's three tables (TiKV's data, write
// and lock column families), added in format version 2. A Region's range
// [startKey, endKey) covers these tables' keys exactly as it covers kv's, so
// split and merge stay metadata-only.
//
// txn_data   (key, start_ts) -> value: values longer than SHORT_VALUE_MAX,
//            written at prewrite, read through a put write record.
// txn_write  (key, commit_ts) -> (start_ts, kind, short_value): one record per
//            committed (put/delete/lock) or rolled-back (rollback, commit_ts =
//            start_ts) transaction on the key; short values inline.
// txn_lock   key -> the prewrite lock of the one transaction writing the key
//            (value inline when short, else in txn_data at start_ts).
//
// Timestamps are 64-bit hybrid timestamps, bound and read as bigint.

/** SHORT_VALUE_MAX: values up to this many bytes live inline in the lock and the write record (TiKV's short value). */
export const SHORT_VALUE_MAX = 255;

export const TXN_SCHEMA = `
CREATE TABLE txn_data (
  key BLOB NOT NULL,
  start_ts INTEGER NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (key, start_ts)
) WITHOUT ROWID;
CREATE TABLE txn_write (
  key BLOB NOT NULL,
  commit_ts INTEGER NOT NULL,
  start_ts INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('put', 'delete', 'rollback', 'lock')),
  short_value BLOB,
  PRIMARY KEY (key, commit_ts)
) WITHOUT ROWID;
CREATE TABLE txn_lock (
  key BLOB PRIMARY KEY,
  primary_key BLOB NOT NULL,
  start_ts INTEGER NOT NULL,
  ttl_ms INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('put', 'delete', 'lock')),
  min_commit_ts INTEGER NOT NULL,
  txn_size INTEGER NOT NULL,
  value BLOB
) WITHOUT ROWID;
`;

/** WriteKind is a write record's kind: put / delete / lock (committed) or rollback. */
export type WriteKind = 'put' | 'delete' | 'rollback' | 'lock';
/** LockKind is what a prewrite lock will commit as. */
export type LockKind = 'put' | 'delete' | 'lock';

/** LockRow is one txn_lock row. value: the short value of a put (null for long values, deletes and locks). */
export interface LockRow {
  key: Uint8Array;
  primary: Uint8Array;
  startTs: bigint;
  ttlMs: number;
  kind: LockKind;
  minCommitTs: bigint;
  txnSize: number;
  value: Uint8Array | null;
}

/** WriteRow is one txn_write row. shortValue: a put's value when short (null: read txn_data at startTs). */
export interface WriteRow {
  key: Uint8Array;
  commitTs: bigint;
  startTs: bigint;
  kind: WriteKind;
  shortValue: Uint8Array | null;
}

/** DataRow is one txn_data row. */
export interface DataRow {
  key: Uint8Array;
  startTs: bigint;
  value: Uint8Array;
}

/** TxnRows is a Region's transactional rows (a snapshot's second half). */
export interface TxnRows {
  locks: LockRow[];
  writes: WriteRow[];
  data: DataRow[];
}

/** MvccOp is one change to the transactional tables, carried in a KvWriteBatch. */
export type MvccOp =
  | { t: 'putLock'; lock: LockRow }
  | { t: 'delLock'; key: Uint8Array }
  | { t: 'putWrite'; write: WriteRow }
  | { t: 'putData'; data: DataRow }
  | { t: 'delData'; key: Uint8Array; startTs: bigint }
  /** delWrite removes one write record (GC below the safe point, mvcc/gc.ts). */
  | { t: 'delWrite'; key: Uint8Array; commitTs: bigint };
