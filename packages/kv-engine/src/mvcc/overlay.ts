import { compareKeys } from '@flotilla/proto';
import type { DataRow, LockRow, MvccOp, WriteRow } from './schema';

/** MvccRead is what Percolator reads: a key's lock, its newest write records, a range's locks. */
export interface MvccRead {
  lock(key: Uint8Array): LockRow | undefined;
  /** writesFrom: up to limit records of key with commit_ts >= fromTs, newest first. */
  writesFrom(key: Uint8Array, fromTs: bigint, limit: number): WriteRow[];
  locksInRange(start: Uint8Array, end: Uint8Array): LockRow[];
}

/** MvccView is MvccRead plus the writes Percolator makes. */
export interface MvccView extends MvccRead {
  putLock(lock: LockRow): void;
  delLock(key: Uint8Array): void;
  putWrite(write: WriteRow): void;
  putData(data: DataRow): void;
  delData(key: Uint8Array, startTs: bigint): void;
  /** delWrite removes a write record (GC); later reads in the round no longer see it. */
  delWrite(key: Uint8Array, commitTs: bigint): void;
}

const hex = (k: Uint8Array): string => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');

function inRange(key: Uint8Array, start: Uint8Array, end: Uint8Array): boolean {
  return compareKeys(key, start) >= 0 && (end.length === 0 || compareKeys(key, end) < 0);
}

/**
 * MvccOverlay layers one apply round's transactional writes over the
 * committed tables: every write goes to `sink` (the round's KvWriteBatch,
 * committed in one transaction with the apply state) and into an in-memory
 * overlay, so a later command in the same round reads what an earlier one
 * wrote, exactly as if each had been committed on its own. Every replica
 * applies the same entries over the same tables, so they decide alike.
 */
export class MvccOverlay implements MvccView {
  private readonly locks = new Map<string, LockRow | null>();
  private readonly writes = new Map<string, WriteRow[]>();
  /** gone: write records GC removed this round (key + commit_ts), hidden from writesFrom. */
  private readonly gone = new Set<string>();

  constructor(
    private readonly base: MvccRead,
    private readonly sink: (op: MvccOp) => void,
  ) {}

  lock(key: Uint8Array): LockRow | undefined {
    const o = this.locks.get(hex(key));
    if (o !== undefined) return o ?? undefined;
    return this.base.lock(key);
  }

  writesFrom(key: Uint8Array, fromTs: bigint, limit: number): WriteRow[] {
    const mine = this.writes.get(hex(key));
    let base = this.base.writesFrom(key, fromTs, limit + this.gone.size);
    if (this.gone.size > 0) base = base.filter((w) => !this.gone.has(`${hex(key)}@${w.commitTs}`)).slice(0, limit);
    if (mine === undefined) return base;
    const byTs = new Map<bigint, WriteRow>();
    for (const w of base) byTs.set(w.commitTs, w);
    for (const w of mine) if (w.commitTs >= fromTs) byTs.set(w.commitTs, w);
    return [...byTs.values()].sort((a, b) => (a.commitTs < b.commitTs ? 1 : a.commitTs > b.commitTs ? -1 : 0)).slice(0, limit);
  }

  locksInRange(start: Uint8Array, end: Uint8Array): LockRow[] {
    const out = new Map<string, LockRow>();
    for (const l of this.base.locksInRange(start, end)) out.set(hex(l.key), l);
    for (const [k, l] of this.locks) {
      if (l === null) out.delete(k);
      else if (inRange(l.key, start, end)) out.set(k, l);
    }
    return [...out.values()].sort((a, b) => compareKeys(a.key, b.key));
  }

  putLock(lock: LockRow): void {
    this.locks.set(hex(lock.key), lock);
    this.sink({ t: 'putLock', lock });
  }
  delLock(key: Uint8Array): void {
    this.locks.set(hex(key), null);
    this.sink({ t: 'delLock', key });
  }
  putWrite(write: WriteRow): void {
    const k = hex(write.key);
    const list = this.writes.get(k);
    if (list === undefined) this.writes.set(k, [write]);
    else list.push(write);
    this.sink({ t: 'putWrite', write });
  }
  putData(data: DataRow): void {
    this.sink({ t: 'putData', data });
  }
  delData(key: Uint8Array, startTs: bigint): void {
    this.sink({ t: 'delData', key, startTs });
  }
  delWrite(key: Uint8Array, commitTs: bigint): void {
    const k = hex(key);
    this.gone.add(`${k}@${commitTs}`);
    const list = this.writes.get(k);
    if (list !== undefined) this.writes.set(k, list.filter((w) => w.commitTs !== commitTs));
    this.sink({ t: 'delWrite', key, commitTs });
  }
}
