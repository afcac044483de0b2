import type Database from 'better-sqlite3';
import { assert } from '../errors';
import { SHORT_VALUE_MAX, type DataRow, type LockKind, type LockRow, type MvccOp, type TxnRows, type WriteKind, type WriteRow } from './schema';

type Stmt = Database.Statement;
type LockTuple = [Buffer, Buffer, bigint, bigint, string, bigint, bigint, Buffer | null];
type WriteTuple = [Buffer, bigint, bigint, string, Buffer | null];

const LOCK_COLS = 'key, primary_key, start_ts, ttl_ms, kind, min_commit_ts, txn_size, value';
const WRITE_COLS = 'key, commit_ts, start_ts, kind, short_value';

export const lockOf = (r: LockTuple): LockRow => ({
  key: r[0],
  primary: r[1],
  startTs: r[2],
  ttlMs: Number(r[3]),
  kind: r[4] as LockKind,
  minCommitTs: r[5],
  txnSize: Number(r[6]),
  value: r[7],
});
export const writeOf = (r: WriteTuple): WriteRow => ({ key: r[0], commitTs: r[1], startTs: r[2], kind: r[3] as WriteKind, shortValue: r[4] });

/** ranged prepares a statement in two shapes: [start, end) and [start, unbounded) (an empty end). */
function ranged(db: Database.Database, sql: (cond: string) => string): { bounded: Stmt; open: Stmt } {
  const mk = (c: string): Stmt => {
    const st = db.prepare(sql(c)).safeIntegers(true);
    return st.reader ? st.raw() : st;
  };
  return { bounded: mk('key >= ? AND key < ?'), open: mk('key >= ?') };
}

function rangeArgs(start: Uint8Array, end: Uint8Array, s: { bounded: Stmt; open: Stmt }): [Stmt, unknown[]] {
  return end.length === 0 ? [s.open, [start]] : [s.bounded, [start, end]];
}

/**
 * MvccTables holds the prepared statements of the three transactional
 * tables on one connection (64-bit timestamps as bigint in and out) and
 * answers the reads Percolator and snapshot reads need. All reads see the
 * committed tables only; an apply round's own writes are layered on top by
 * MvccOverlay (overlay.ts).
 */
export class MvccTables {
  private readonly s: Record<string, Stmt>;
  private readonly r: Record<'locks' | 'writes' | 'delLocks' | 'delWrites' | 'delData', { bounded: Stmt; open: Stmt }>;

  constructor(db: Database.Database) {
    const q = (sql: string): Stmt => db.prepare(sql).safeIntegers(true);
    this.s = {
      getLock: q(`SELECT ${LOCK_COLS} FROM txn_lock WHERE key = ?`).raw(),
      putLock: q(`INSERT OR REPLACE INTO txn_lock (${LOCK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
      delLock: q('DELETE FROM txn_lock WHERE key = ?'),
      writesFrom: q(`SELECT ${WRITE_COLS} FROM txn_write WHERE key = ? AND commit_ts >= ? ORDER BY commit_ts DESC LIMIT ?`).raw(),
      newestCommitTs: q('SELECT commit_ts FROM txn_write WHERE key = ? ORDER BY commit_ts DESC LIMIT 1').pluck(),
      // One statement for a snapshot get: a lock that blocks a read at ts (tag 0), else the visible put/delete (tag 1).
      point: q(
        `SELECT 0, start_ts, kind, ttl_ms, min_commit_ts, txn_size, primary_key FROM txn_lock WHERE key = @key AND start_ts <= @ts AND kind <> 'lock'
         UNION ALL SELECT * FROM (SELECT 1, commit_ts, kind, start_ts, NULL, NULL, short_value FROM txn_write
           WHERE key = @key AND commit_ts <= @ts AND kind IN ('put', 'delete') ORDER BY commit_ts DESC LIMIT 1)`,
      ).raw(),
      visible: q(`SELECT ${WRITE_COLS} FROM txn_write WHERE key = ? AND commit_ts <= ? AND kind IN ('put', 'delete') ORDER BY commit_ts DESC LIMIT 1`).raw(),
      putWrite: q(`INSERT OR REPLACE INTO txn_write (${WRITE_COLS}) VALUES (?, ?, ?, ?, ?)`),
      getData: q('SELECT value FROM txn_data WHERE key = ? AND start_ts = ?').pluck(),
      putData: q('INSERT OR REPLACE INTO txn_data (key, start_ts, value) VALUES (?, ?, ?)'),
      delData: q('DELETE FROM txn_data WHERE key = ? AND start_ts = ?'),
      delWrite: q('DELETE FROM txn_write WHERE key = ? AND commit_ts = ?'),
    };
    this.r = {
      locks: ranged(db, (c) => `SELECT ${LOCK_COLS} FROM txn_lock WHERE ${c} ORDER BY key`),
      writes: ranged(db, (c) => `SELECT ${WRITE_COLS} FROM txn_write WHERE ${c} ORDER BY key, commit_ts DESC`),
      delLocks: ranged(db, (c) => `DELETE FROM txn_lock WHERE ${c}`),
      delWrites: ranged(db, (c) => `DELETE FROM txn_write WHERE ${c}`),
      delData: ranged(db, (c) => `DELETE FROM txn_data WHERE ${c}`),
    };
  }

  lock(key: Uint8Array): LockRow | undefined {
    const r = this.s.getLock!.get(key) as LockTuple | undefined;
    return r === undefined ? undefined : lockOf(r);
  }

  /**
   * writesFrom returns up to limit write records of key with commit_ts >=
   * fromTs, newest first. Prewrite, commit and rollback ask this of every
   * key, and the answer is nearly always "none": a one-row look at the
   * key's newest record settles that for a third of the range query's cost.
   */
  writesFrom(key: Uint8Array, fromTs: bigint, limit: number): WriteRow[] {
    const newest = this.s.newestCommitTs!.get(key) as bigint | undefined;
    if (newest === undefined || newest < fromTs) return [];
    return (this.s.writesFrom!.all(key, fromTs, limit) as WriteTuple[]).map(writeOf);
  }

  /** visibleWrite is the newest put/delete record of key with commit_ts <= ts (what a snapshot read at ts sees). */
  visibleWrite(key: Uint8Array, ts: bigint): WriteRow | undefined {
    const r = this.s.visible!.get(key, ts) as WriteTuple | undefined;
    return r === undefined ? undefined : writeOf(r);
  }

  /**
   * pointRead is what a snapshot read at ts finds on key, in one statement:
   * a lock of start_ts <= ts that blocks it (not 'lock' kind), else the
   * newest put/delete record at or below ts, else nothing.
   */
  pointRead(key: Uint8Array, ts: bigint): { lock: LockRow } | { write: WriteRow } | undefined {
    const rows = this.s.point!.all({ key, ts }) as [bigint, bigint, string, bigint | null, bigint | null, bigint | null, Buffer | null][];
    const r = rows[0];
    if (r === undefined) return undefined;
    if (r[0] === 0n) {
      return { lock: { key, primary: r[6]!, startTs: r[1], ttlMs: Number(r[3]), kind: r[2] as LockKind, minCommitTs: r[4]!, txnSize: Number(r[5]), value: null } };
    }
    return { write: { key, commitTs: r[1], startTs: r[3]!, kind: r[2] as WriteKind, shortValue: r[6] } };
  }

  data(key: Uint8Array, startTs: bigint): Buffer | undefined {
    return this.s.getData!.get(key, startTs) as Buffer | undefined;
  }

  /** iterateLocks / iterateWrites stream a range's rows in key order (writes newest first per key). */
  iterateLocks(start: Uint8Array, end: Uint8Array): IterableIterator<LockTuple> {
    const [st, args] = rangeArgs(start, end, this.r.locks);
    return st.iterate(...args) as IterableIterator<LockTuple>;
  }
  iterateWrites(start: Uint8Array, end: Uint8Array): IterableIterator<WriteTuple> {
    const [st, args] = rangeArgs(start, end, this.r.writes);
    return st.iterate(...args) as IterableIterator<WriteTuple>;
  }

  locksInRange(start: Uint8Array, end: Uint8Array): LockRow[] {
    return [...this.iterateLocks(start, end)].map(lockOf);
  }

  /** deleteRange removes every transactional row of [start, end) (Region removal, snapshot ingest). */
  deleteRange(start: Uint8Array, end: Uint8Array): void {
    for (const s of [this.r.delLocks, this.r.delWrites, this.r.delData]) {
      const [st, args] = rangeArgs(start, end, s);
      st.run(...args);
    }
  }

  apply(op: MvccOp): void {
    const s = this.s;
    switch (op.t) {
      case 'putLock': {
        const l = op.lock;
        s.putLock!.run(l.key, l.primary, l.startTs, BigInt(l.ttlMs), l.kind, l.minCommitTs, BigInt(l.txnSize), l.value);
        return;
      }
      case 'delLock':
        s.delLock!.run(op.key);
        return;
      case 'putWrite': {
        const w = op.write;
        s.putWrite!.run(w.key, w.commitTs, w.startTs, w.kind, w.shortValue);
        return;
      }
      case 'putData':
        s.putData!.run(op.data.key, op.data.startTs, op.data.value);
        return;
      case 'delData':
        s.delData!.run(op.key, op.startTs);
        return;
      case 'delWrite':
        s.delWrite!.run(op.key, op.commitTs);
        return;
    }
  }
}

/**
 * readTxnRows reads every transactional row of [start, end) on db (a
 * snapshot's read-only connection, inside its read transaction).
 */
export function readTxnRows(db: Database.Database, start: Uint8Array, end: Uint8Array): TxnRows {
  const cond = end.length === 0 ? 'key >= ?' : 'key >= ? AND key < ?';
  const args = end.length === 0 ? [start] : [start, end];
  const q = (sql: string): unknown[] => db.prepare(sql).raw().safeIntegers(true).all(...args);
  const locks = (q(`SELECT ${LOCK_COLS} FROM txn_lock WHERE ${cond} ORDER BY key`) as LockTuple[]).map(lockOf);
  const writes = (q(`SELECT ${WRITE_COLS} FROM txn_write WHERE ${cond} ORDER BY key, commit_ts`) as WriteTuple[]).map(writeOf);
  const data = (q(`SELECT key, start_ts, value FROM txn_data WHERE ${cond} ORDER BY key, start_ts`) as [Buffer, bigint, Buffer][]).map(([key, startTs, value]): DataRow => ({ key, startTs, value }));
  return { locks, writes, data };
}

/** ingestTxnRows inserts a snapshot's transactional rows (inside the ingest's transaction); returns their approximate size and distinct keys. */
export function ingestTxnRows(mvcc: MvccTables, regionId: number, txn: TxnRows, inRange: (k: Uint8Array) => boolean): { bytes: number; keys: number } {
  let bytes = 0;
  const keys = new Set<string>();
  for (const lock of txn.locks) {
    assert(inRange(lock.key), `snapshot lock outside region ${regionId}'s range`);
    mvcc.apply({ t: 'putLock', lock });
  }
  for (const write of txn.writes) {
    assert(inRange(write.key) && (write.shortValue === null || write.shortValue.length <= SHORT_VALUE_MAX), `snapshot write record outside region ${regionId}'s range or with a long inline value`);
    mvcc.apply({ t: 'putWrite', write });
    bytes += write.key.length + 16 + (write.shortValue?.length ?? 0);
    keys.add(Buffer.from(write.key).toString('latin1'));
  }
  for (const data of txn.data) {
    assert(inRange(data.key), `snapshot txn value outside region ${regionId}'s range`);
    mvcc.apply({ t: 'putData', data });
    bytes += data.key.length + 8 + data.value.length;
  }
  return { bytes, keys: keys.size };
}
