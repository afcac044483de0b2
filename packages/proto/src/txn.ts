// The transactional keyspace's wire contract (issue #17): Percolator over
// MVCC, as TiKV's kvrpcpb has it, reduced to what Flotilla serves.
//
// The transactional keyspace never aliases the raw one: the store keeps it
// in three tables of its own (data, write, lock; docs/transactions.md), so a
// raw key "a" and a transactional key "a" are different keys that happen to
// live in the same Region (a Region's range covers both keyspaces).
//
// Timestamps are hybrid (physical ms << 18 | logical, from placement's
// oracle): bigint in code, a msgpack uint64 on the wire. The codec decodes
// an int64 beyond 2^53 as bigint and a smaller one as number; tsSchema
// (schema.ts) accepts both and gives bigint.

/** Ts is a hybrid timestamp. 0n means "none" where a field says so. */
export type Ts = bigint;

/** TXN_LIMITS bound one transaction (the client checks them before it sends; the store again at apply). */
export const TXN_LIMITS = {
  /** maxKeys: mutations of one transaction, over all its Regions. */
  maxKeys: 10_000,
  /** maxBytes: key + value bytes of one transaction's mutations. */
  maxBytes: 16 * 1024 * 1024,
  /** maxLockTtlMs: the longest TTL a prewrite or heartbeat may ask for. */
  maxLockTtlMs: 120_000,
  /** maxFutureMs: a start_ts whose physical part is this far ahead of the store's clock is refused (not from the oracle). */
  maxFutureMs: 60_000,
} as const;

/** Mutation is one key of a prewrite. 'lock' writes nothing: it only conflicts (a read the transaction depends on). */
export type Mutation = { op: 'put'; key: Uint8Array; value: Uint8Array } | { op: 'delete'; key: Uint8Array } | { op: 'lock'; key: Uint8Array };

/** LockInfo describes a lock found on a key (in KeyIsLocked). */
export interface LockInfo {
  key: Uint8Array;
  primary: Uint8Array;
  startTs: Ts;
  ttlMs: number;
  kind: 'put' | 'delete' | 'lock';
  /** minCommitTs: the transaction will not commit below this (0n: no bound beyond startTs + 1). */
  minCommitTs: Ts;
  /** txnSize: how many keys the transaction locks in this Region (a hint for resolving). */
  txnSize: number;
}

/**
 * KeyError is a per-key outcome of a transactional command; it rides in a
 * successful response (the Region served the command; the transaction hit
 * something), as kvrpcpb's KeyError does. Region errors (NotLeader,
 * EpochNotMatch, ...) stay RegionErrors and mean "retry elsewhere".
 */
export type KeyError =
  /** WriteConflict: a write committed at or after startTs (commitTs is its commit, conflictStartTs its start). */
  | { type: 'WriteConflict'; key: Uint8Array; primary: Uint8Array; startTs: Ts; conflictStartTs: Ts; conflictCommitTs: Ts }
  /** KeyIsLocked: another transaction's lock is on the key; resolve it via its primary (checkTxnStatus). */
  | { type: 'KeyIsLocked'; lock: LockInfo }
  /** TxnLockNotFound: commit found neither our lock nor our commit record (the lock was rolled back or never written). */
  | { type: 'TxnLockNotFound'; key: Uint8Array; startTs: Ts }
  /** Rolledback: the transaction was rolled back on this key (a rollback record exists): it can never commit. */
  | { type: 'Rolledback'; key: Uint8Array; startTs: Ts }
  /** Committed: rollback/cleanup of a transaction that committed on this key at commitTs. */
  | { type: 'Committed'; key: Uint8Array; startTs: Ts; commitTs: Ts }
  /** CommitTsExpired: commit with a commitTs below the lock's minCommitTs. */
  | { type: 'CommitTsExpired'; key: Uint8Array; startTs: Ts; commitTs: Ts; minCommitTs: Ts };

/** TxnStatus is what checkTxnStatus finds on the primary. */
export type TxnStatus =
  | { status: 'locked'; lock: LockInfo }
  | { status: 'committed'; commitTs: Ts }
  /**
   * rolledBack: the primary's lock is gone (rolled back, expired and rolled back now, or never written and a rollback record now written).
   * Asked with rollbackIfNotExist = false, action 'none' also answers "no lock and no record at all" (nothing written; TiKV's
   * TxnNotFound): the prewrite may still arrive, so only an answer to rollbackIfNotExist = true is final.
   */
  | { status: 'rolledBack'; action: 'none' | 'ttlExpireRollback' | 'lockNotExistRollback' };

/**
 * TxnCommand is one transactional write command. It goes through the
 * Region's Raft log and is applied atomically, deterministically (every
 * replica decides the same from the same table contents; checkTxnStatus's
 * TTL test uses currentTs from the request, never a local clock).
 */
export type TxnCommand =
  /**
   * prewrite locks every mutation's key (all in this Region) or none: on any
   * KeyError nothing is written. onePc (all of the transaction's keys are in
   * this Region): the store writes the commit records at once, with a commit
   * ts it takes from the oracle after the keys are locked in memory, and
   * answers it (onePcCommitTs).
   */
  | { type: 'prewrite'; mutations: Mutation[]; primary: Uint8Array; startTs: Ts; lockTtlMs: number; txnSize: number; minCommitTs?: Ts; onePc?: boolean }
  /** commit turns the locks of startTs on keys into commit records at commitTs; idempotent (a key already committed by startTs is fine). */
  | { type: 'commit'; keys: Uint8Array[]; startTs: Ts; commitTs: Ts }
  /** rollback (cleanup) removes startTs's locks on keys and writes rollback records, so a late prewrite of startTs fails; Committed if it committed. */
  | { type: 'rollback'; keys: Uint8Array[]; startTs: Ts }
  /**
   * checkTxnStatus looks at the primary of startTs: its lock expired by
   * currentTs (lock's physical start + TTL < currentTs's physical) → rolled
   * back now; no lock and no record → a rollback record is written when
   * rollbackIfNotExist (the prewrite may still be in flight: this stops it).
   */
  | { type: 'checkTxnStatus'; primary: Uint8Array; startTs: Ts; currentTs: Ts; callerStartTs: Ts; rollbackIfNotExist: boolean }
  /** resolveLock commits (commitTs > 0n) or rolls back (commitTs = 0n) startTs's locks on keys, or on every key of the Region when keys is absent. */
  | { type: 'resolveLock'; startTs: Ts; commitTs: Ts; keys?: Uint8Array[] }
  /** txnHeartBeat extends the primary lock's TTL to max(current, adviseTtlMs); answers the TTL now in force. */
  | { type: 'txnHeartBeat'; primary: Uint8Array; startTs: Ts; adviseTtlMs: number };

/** TxnRead is a snapshot read at ts, served after the usual ReadIndex / lease check. */
export type TxnRead =
  | { type: 'get'; key: Uint8Array; ts: Ts }
  | { type: 'batchGet'; keys: Uint8Array[]; ts: Ts }
  | { type: 'scan'; startKey: Uint8Array; endKey: Uint8Array; limit: number; ts: Ts; keyOnly?: boolean };

/** VersionedPair: a key, its value at the read ts and the commit ts of the write that set it (its version). */
export interface VersionedPair {
  key: Uint8Array;
  value: Uint8Array;
  version: Ts;
}

/**
 * TxnResult answers a TxnCommand or a TxnRead (in ClientResponse.txn).
 * Reads that meet a lock of startTs <= ts on a key they would return answer
 * { type: 'read', errors: [KeyIsLocked...] } and no pairs: the reader
 * resolves and retries, it never gets a torn result.
 */
export type TxnResult =
  | { type: 'prewrite'; errors: KeyError[]; onePcCommitTs?: Ts }
  | { type: 'commit'; errors: KeyError[]; commitTs: Ts }
  | { type: 'rollback'; errors: KeyError[] }
  | ({ type: 'checkTxnStatus' } & TxnStatus)
  | { type: 'resolveLock'; resolved: number }
  | { type: 'txnHeartBeat'; ttlMs: number; errors: KeyError[] }
  /** read: pairs holds only keys that exist at ts (batchGet and get omit absent keys). */
  | { type: 'read'; pairs: VersionedPair[]; errors: KeyError[] };
