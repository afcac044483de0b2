import { compareKeys, type WatchEvent } from '@flotilla/proto';
import { assert } from '../errors';
import type { MvccTables } from './tables';
import { writeOf } from './tables';
import type { WriteRow } from './schema';

/** ChangePage is one page of a range's committed changes: events in key order (oldest first per key) and where the next page starts. */
export interface ChangePage {
  events: WatchEvent[];
  /** next: the first key of the next page; undefined when the range is done. */
  next: Uint8Array | undefined;
}

/** changeValue is a put record's value: inline when short, else the txn_data row at its start_ts. */
export function changeValue(t: Pick<MvccTables, 'data'>, w: Pick<WriteRow, 'key' | 'startTs' | 'shortValue'>): Uint8Array {
  if (w.shortValue !== null) return w.shortValue;
  const v = t.data(w.key, w.startTs);
  assert(v !== undefined, `txn_write put record of start_ts ${w.startTs} has no txn_data row`);
  return v;
}

/**
 * prevValueOf is the key's value just before revision: the newest put
 * before it (undefined after a delete or with none). On one key commits
 * apply in commit-ts order (a later writer's start_ts is above the earlier
 * commit, or it conflicts), so this is settled once revision applied, and
 * GC keeps it while revision is above the safe point.
 */
export function prevValueOf(t: Pick<MvccTables, 'data' | 'visibleWrite'>, key: Uint8Array, revision: bigint): Uint8Array | undefined {
  const w = t.visibleWrite(key, revision - 1n);
  return w === undefined || w.kind !== 'put' ? undefined : changeValue(t, w);
}

/**
 * readChanges is a watch's catch-up scan (TiKV CDC's incremental scan): the
 * put and delete write records of [start, end) with commit_ts > fromTs
 * (lock and rollback records are not changes), whole keys at a time until
 * about limit events, in key order. Every record above the GC safe point
 * is still there (GC keeps all versions above it), so for fromTs at or
 * above it the pages hold every change. Pages are cut between keys, so a
 * caller resuming at `next` neither skips nor repeats a record.
 */
export function readChanges(t: MvccTables, start: Uint8Array, end: Uint8Array, fromTs: bigint, limit: number): ChangePage {
  const events: WatchEvent[] = [];
  let keyEvents: WatchEvent[] = [];
  let lastKey: Uint8Array | undefined;
  for (const row of t.iterateWrites(start, end)) {
    if (lastKey === undefined || compareKeys(row[0], lastKey) !== 0) {
      // Rows come newest first per key: a key's events are reversed into commit order.
      for (let i = keyEvents.length - 1; i >= 0; i--) events.push(keyEvents[i]!);
      keyEvents = [];
      if (events.length >= limit) return { events, next: row[0] };
      lastKey = row[0];
    }
    const w = writeOf(row);
    if (w.commitTs <= fromTs || (w.kind !== 'put' && w.kind !== 'delete')) continue;
    keyEvents.push(w.kind === 'put' ? { type: 'put', key: w.key, value: changeValue(t, w), revision: w.commitTs } : { type: 'delete', key: w.key, revision: w.commitTs });
  }
  for (let i = keyEvents.length - 1; i >= 0; i--) events.push(keyEvents[i]!);
  return { events, next: undefined };
}
