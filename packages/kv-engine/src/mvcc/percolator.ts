import type { KeyError, LockInfo, Mutation, TxnCommand, TxnResult } from '@flotilla/proto';
import type { MvccView } from './overlay';
import { SHORT_VALUE_MAX, type LockRow, type WriteRow } from './schema';

// Percolator at apply time (TiKV's txn actions), over one Region's MVCC
// tables. Every function here decides from the command and the tables'
// contents only (no clock, no randomness): every replica that applies the
// same entry over the same tables writes the same rows and answers the same.
// A command that meets any KeyError writes nothing (all-or-nothing).

/**
 * unsafeSkipWriteConflict: FLOTILLA_UNSAFE_SKIP_WRITE_CONFLICT=1 turns off
 * prewrite's write-conflict check. It exists ONLY for the txn checkers'
 * planted-bug tests (packages/sim/test/txn-simulation.test.ts): with it,
 * concurrent read-modify-writes all commit (lost updates), which the bank
 * and list-append checkers must catch. It breaks snapshot isolation (and
 * this file's determinism, unless every replica has the same environment):
 * never set it anywhere else.
 */
function unsafeSkipWriteConflict(): boolean {
  return process.env['FLOTILLA_UNSAFE_SKIP_WRITE_CONFLICT'] === '1';
}

/** MAX_VERSIONS_SCANNED is the first page of write records one key's check reads (those at or after start_ts: normally none or one). */
export const MAX_VERSIONS_SCANNED = 256;
/** ALL_VERSIONS: the limit of the second page, which reads every remaining record (a decision never rests on a truncated list). */
const ALL_VERSIONS = Number.MAX_SAFE_INTEGER;

/**
 * writesSince returns every write record of key with commit_ts >= startTs,
 * newest first. A first page of MAX_VERSIONS_SCANNED serves the usual case;
 * a full page means there may be more, and then all are read: finding our
 * own commit record below 256 newer ones (a hot key, rollback records of
 * many retries) decides commit versus rollback, and missing it would let
 * checkTxnStatus roll back a committed transaction.
 */
function writesSince(v: MvccView, key: Uint8Array, startTs: bigint): WriteRow[] {
  const first = v.writesFrom(key, startTs, MAX_VERSIONS_SCANNED);
  return first.length < MAX_VERSIONS_SCANNED ? first : v.writesFrom(key, startTs, ALL_VERSIONS);
}

/** physicalMs is a hybrid timestamp's millisecond part. */
export function physicalMs(ts: bigint): number {
  return Number(ts >> 18n);
}

export function lockInfo(l: LockRow): LockInfo {
  return { key: l.key, primary: l.primary, startTs: l.startTs, ttlMs: l.ttlMs, kind: l.kind, minCommitTs: l.minCommitTs, txnSize: l.txnSize };
}

/** records: key's write record of startTs (commit or rollback), and the newest other non-rollback record at or after startTs. */
function records(v: MvccView, key: Uint8Array, startTs: bigint): { own: WriteRow | undefined; newer: WriteRow | undefined } {
  let own: WriteRow | undefined;
  let newer: WriteRow | undefined;
  for (const w of writesSince(v, key, startTs)) {
    if (w.startTs === startTs) own ??= w;
    // Another transaction's rollback record changes no data: no conflict.
    else if (w.kind !== 'rollback') newer ??= w;
  }
  return { own, newer };
}

/** applyTxnCommand applies one Percolator command to the view; region bounds scope resolveLock without keys. */
export function applyTxnCommand(v: MvccView, cmd: TxnCommand, region: { startKey: Uint8Array; endKey: Uint8Array }, onePcCommitTs?: bigint): TxnResult {
  switch (cmd.type) {
    case 'prewrite':
      return prewrite(v, cmd, onePcCommitTs);
    case 'commit':
      return commit(v, cmd.keys, cmd.startTs, cmd.commitTs);
    case 'rollback':
      return rollback(v, cmd.keys, cmd.startTs);
    case 'checkTxnStatus':
      return checkTxnStatus(v, cmd);
    case 'resolveLock':
      return resolveLock(v, cmd, region);
    case 'txnHeartBeat':
      return heartBeat(v, cmd);
  }
}

type Prewrite = Extract<TxnCommand, { type: 'prewrite' }>;

/**
 * prewrite checks every mutation, then locks them all (2PC) or, with a 1PC
 * commit ts, writes their commit records at once. Per key: another
 * transaction's lock → KeyIsLocked; our own lock → already prewritten (a
 * retry: nothing to do); our rollback record → Rolledback; our commit
 * record → already committed (a retry); a newer committed write (commit_ts
 * >= start_ts) of another transaction → WriteConflict.
 */
function prewrite(v: MvccView, cmd: Prewrite, onePcCommitTs: bigint | undefined): TxnResult {
  const errors: KeyError[] = [];
  const todo: Mutation[] = [];
  const { startTs } = cmd;
  let committedAt: bigint | undefined;
  for (const m of cmd.mutations) {
    const lock = v.lock(m.key);
    if (lock !== undefined) {
      if (lock.startTs !== startTs) errors.push({ type: 'KeyIsLocked', lock: lockInfo(lock) });
      continue;
    }
    const { own, newer } = records(v, m.key, startTs);
    if (own !== undefined) {
      if (own.kind === 'rollback') errors.push({ type: 'Rolledback', key: m.key, startTs });
      else committedAt = own.commitTs;
      continue;
    }
    if (newer !== undefined && !unsafeSkipWriteConflict()) {
      errors.push({ type: 'WriteConflict', key: m.key, primary: cmd.primary, startTs, conflictStartTs: newer.startTs, conflictCommitTs: newer.commitTs });
      continue;
    }
    todo.push(m);
  }
  const minCommitTs = cmd.minCommitTs !== undefined && cmd.minCommitTs > startTs ? cmd.minCommitTs : startTs + 1n;
  if (onePcCommitTs !== undefined && errors.length === 0 && onePcCommitTs < minCommitTs && todo.length > 0) {
    errors.push({ type: 'CommitTsExpired', key: todo[0]!.key, startTs, commitTs: onePcCommitTs, minCommitTs });
  }
  if (errors.length > 0) return { type: 'prewrite', errors };
  // A retried 1PC whose first attempt applied: answer the commit ts it got.
  if (onePcCommitTs !== undefined && committedAt !== undefined && todo.length === 0) return { type: 'prewrite', errors: [], onePcCommitTs: committedAt };
  for (const m of todo) {
    const long = m.op === 'put' && m.value.length > SHORT_VALUE_MAX;
    if (long) v.putData({ key: m.key, startTs, value: m.value });
    const inline = m.op === 'put' && !long ? m.value : null;
    if (onePcCommitTs !== undefined) v.putWrite({ key: m.key, commitTs: onePcCommitTs, startTs, kind: m.op, shortValue: inline });
    else v.putLock({ key: m.key, primary: cmd.primary, startTs, ttlMs: cmd.lockTtlMs, kind: m.op, minCommitTs, txnSize: cmd.txnSize, value: inline });
  }
  return onePcCommitTs !== undefined ? { type: 'prewrite', errors: [], onePcCommitTs } : { type: 'prewrite', errors: [] };
}

/** commitLock turns our lock into a commit record at commitTs and removes it. */
function commitLock(v: MvccView, lock: LockRow, commitTs: bigint): void {
  v.putWrite({ key: lock.key, commitTs, startTs: lock.startTs, kind: lock.kind, shortValue: lock.kind === 'put' ? lock.value : null });
  v.delLock(lock.key);
}

/**
 * rollbackKey removes our lock (and its long value) if there is one and
 * writes a rollback record at start_ts, which stops a late prewrite of the
 * transaction. When another transaction's record already sits at commit_ts
 * = start_ts (impossible with a monotonic oracle) it is kept: a late
 * prewrite still fails on it as a newer write.
 */
function rollbackKey(v: MvccView, key: Uint8Array, startTs: bigint, lock: LockRow | undefined): void {
  if (lock !== undefined) {
    if (lock.kind === 'put' && lock.value === null) v.delData(key, startTs);
    v.delLock(key);
  }
  if (writesSince(v, key, startTs).some((w) => w.commitTs === startTs)) return;
  v.putWrite({ key, commitTs: startTs, startTs, kind: 'rollback', shortValue: null });
}

function commit(v: MvccView, keys: Uint8Array[], startTs: bigint, commitTs: bigint): TxnResult {
  const errors: KeyError[] = [];
  const todo: LockRow[] = [];
  for (const key of keys) {
    const lock = v.lock(key);
    if (lock !== undefined && lock.startTs === startTs) {
      if (commitTs < lock.minCommitTs) errors.push({ type: 'CommitTsExpired', key, startTs, commitTs, minCommitTs: lock.minCommitTs });
      else todo.push(lock);
      continue;
    }
    const { own } = records(v, key, startTs);
    if (own === undefined) errors.push({ type: 'TxnLockNotFound', key, startTs });
    else if (own.kind === 'rollback') errors.push({ type: 'Rolledback', key, startTs });
    // else: committed already (a retry), nothing to do.
  }
  if (errors.length > 0) return { type: 'commit', errors, commitTs };
  for (const lock of todo) commitLock(v, lock, commitTs);
  return { type: 'commit', errors: [], commitTs };
}

function rollback(v: MvccView, keys: Uint8Array[], startTs: bigint): TxnResult {
  const errors: KeyError[] = [];
  const todo: { key: Uint8Array; lock: LockRow | undefined }[] = [];
  for (const key of keys) {
    const lock = v.lock(key);
    if (lock !== undefined && lock.startTs === startTs) {
      todo.push({ key, lock });
      continue;
    }
    const { own } = records(v, key, startTs);
    if (own === undefined) todo.push({ key, lock: undefined });
    else if (own.kind !== 'rollback') errors.push({ type: 'Committed', key, startTs, commitTs: own.commitTs });
    // else: rolled back already (a retry).
  }
  if (errors.length > 0) return { type: 'rollback', errors };
  for (const t of todo) rollbackKey(v, t.key, startTs, t.lock);
  return { type: 'rollback', errors: [] };
}

type CheckTxnStatus = Extract<TxnCommand, { type: 'checkTxnStatus' }>;

/**
 * checkTxnStatus looks at the primary. Our lock: expired when its physical
 * start + TTL is below currentTs's physical part (the caller's timestamp,
 * never a local clock, so replicas agree) → rolled back now; else locked.
 * No lock: our commit record → committed; our rollback record → rolled
 * back; nothing → a rollback record with rollbackIfNotExist (the prewrite
 * may still be in flight: this stops it), else rolledBack 'none' and
 * nothing written (not final: txn.ts says so). callerStartTs is
 * not used to push min_commit_ts: readers wait for or resolve a lock.
 */
function checkTxnStatus(v: MvccView, cmd: CheckTxnStatus): TxnResult {
  const { primary, startTs } = cmd;
  const lock = v.lock(primary);
  if (lock !== undefined && lock.startTs === startTs) {
    if (physicalMs(lock.startTs) + lock.ttlMs < physicalMs(cmd.currentTs)) {
      rollbackKey(v, primary, startTs, lock);
      return { type: 'checkTxnStatus', status: 'rolledBack', action: 'ttlExpireRollback' };
    }
    return { type: 'checkTxnStatus', status: 'locked', lock: lockInfo(lock) };
  }
  const { own } = records(v, primary, startTs);
  if (own !== undefined) {
    if (own.kind === 'rollback') return { type: 'checkTxnStatus', status: 'rolledBack', action: 'none' };
    return { type: 'checkTxnStatus', status: 'committed', commitTs: own.commitTs };
  }
  // Nothing found and no rollback asked for: 'none', not final (txn.ts, TxnStatus).
  if (!cmd.rollbackIfNotExist) return { type: 'checkTxnStatus', status: 'rolledBack', action: 'none' };
  rollbackKey(v, primary, startTs, undefined);
  return { type: 'checkTxnStatus', status: 'rolledBack', action: 'lockNotExistRollback' };
}

type ResolveLock = Extract<TxnCommand, { type: 'resolveLock' }>;

/**
 * resolveLock commits (commitTs > 0) or rolls back startTs's locks, on the
 * given keys or on every key of the Region. A given key without our lock is
 * left alone when committing (committed already, or never locked) and gets a
 * rollback record when rolling back unless it committed.
 */
function resolveLock(v: MvccView, cmd: ResolveLock, region: { startKey: Uint8Array; endKey: Uint8Array }): TxnResult {
  const { startTs, commitTs } = cmd;
  let resolved = 0;
  const targets =
    cmd.keys !== undefined
      ? cmd.keys.map((key) => ({ key, lock: v.lock(key) }))
      : v.locksInRange(region.startKey, region.endKey).filter((l) => l.startTs === startTs).map((lock) => ({ key: lock.key, lock }));
  for (const { key, lock } of targets) {
    if (lock !== undefined && lock.startTs === startTs) {
      if (commitTs > 0n) commitLock(v, lock, commitTs);
      else rollbackKey(v, key, startTs, lock);
      resolved++;
    } else if (commitTs === 0n && records(v, key, startTs).own === undefined) {
      rollbackKey(v, key, startTs, undefined);
    }
  }
  return { type: 'resolveLock', resolved };
}

type HeartBeat = Extract<TxnCommand, { type: 'txnHeartBeat' }>;

function heartBeat(v: MvccView, cmd: HeartBeat): TxnResult {
  const lock = v.lock(cmd.primary);
  if (lock === undefined || lock.startTs !== cmd.startTs) {
    return { type: 'txnHeartBeat', ttlMs: 0, errors: [{ type: 'TxnLockNotFound', key: cmd.primary, startTs: cmd.startTs }] };
  }
  if (cmd.adviseTtlMs > lock.ttlMs) v.putLock({ ...lock, ttlMs: cmd.adviseTtlMs });
  return { type: 'txnHeartBeat', ttlMs: Math.max(lock.ttlMs, cmd.adviseTtlMs), errors: [] };
}
