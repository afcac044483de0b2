import type Database from 'better-sqlite3';
import { compareKeys } from '@flotilla/proto';
import type { RegionStats } from './types';

type SizeIter = IterableIterator<[Buffer, number]>;

/** Per-table size of one key's rows: the raw pair, and each transactional row (a timestamp counts 8 bytes). */
const SIZE_SQL: string[] = [
  'SELECT key, length(key) + length(value) FROM kv WHERE {} ORDER BY key',
  'SELECT key, sum(length(key) + 16 + ifnull(length(short_value), 0)) FROM txn_write WHERE {} GROUP BY key ORDER BY key',
  'SELECT key, sum(length(key) + 8 + length(value)) FROM txn_data WHERE {} GROUP BY key ORDER BY key',
  'SELECT key, length(key) + length(primary_key) + 40 + ifnull(length(value), 0) FROM txn_lock WHERE {} ORDER BY key',
];

/**
 * RangeSizer measures a key range over all four data tables (raw kv and
 * the transactional data, write and lock tables) by merging their per-key
 * sizes in key order: one entry per user key, so a split key is always a
 * user-key boundary and a key's versions never straddle two Regions.
 */
export class RangeSizer {
  private readonly bounded: Database.Statement[];
  private readonly open: Database.Statement[];

  constructor(db: Database.Database) {
    this.bounded = SIZE_SQL.map((s) => db.prepare(s.replace('{}', 'key >= ? AND key < ?')).raw());
    this.open = SIZE_SQL.map((s) => db.prepare(s.replace('{}', 'key >= ?')).raw());
  }

  /** sizes iterates (key, bytes) per distinct key of [start, end) in key order (an empty end is unbounded). */
  *sizes(start: Uint8Array, end: Uint8Array): IterableIterator<[Buffer, number]> {
    const its: SizeIter[] = (end.length === 0 ? this.open.map((s) => s.iterate(start)) : this.bounded.map((s) => s.iterate(start, end))) as SizeIter[];
    const heads: ([Buffer, number] | undefined)[] = its.map((it) => next(it));
    try {
      for (;;) {
        let min: Buffer | undefined;
        for (const h of heads) if (h !== undefined && (min === undefined || compareKeys(h[0], min) < 0)) min = h[0];
        if (min === undefined) return;
        let size = 0;
        for (let i = 0; i < heads.length; i++) {
          const h = heads[i];
          if (h === undefined || compareKeys(h[0], min) !== 0) continue;
          size += h[1];
          heads[i] = next(its[i]!);
        }
        yield [min, size];
      }
    } finally {
      for (const it of its) it.return?.();
    }
  }

  count(start: Uint8Array, end: Uint8Array): RegionStats {
    let bytes = 0;
    let keys = 0;
    for (const [, size] of this.sizes(start, end)) {
      bytes += size;
      keys++;
    }
    return { bytes, keys };
  }

  /** middleKey returns the first key (after the first) at which the running size passes half of stats.bytes. */
  middleKey(start: Uint8Array, end: Uint8Array, stats: RegionStats): Buffer | undefined {
    const half = stats.bytes / 2;
    let acc = 0;
    let first = true;
    for (const [key, size] of this.sizes(start, end)) {
      if (!first && acc + size > half) return key;
      first = false;
      acc += size;
    }
    return undefined;
  }
}

function next(it: SizeIter): [Buffer, number] | undefined {
  const n = it.next();
  return n.done === true ? undefined : n.value;
}
