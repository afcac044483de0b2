import { compareKeys, type KeyError, type VersionedPair } from '@flotilla/proto';
import { assert } from '../errors';
import { lockInfo } from './percolator';
import type { MvccTables } from './tables';
import { lockOf, writeOf } from './tables';
import type { LockRow, WriteRow } from './schema';

/** SnapshotRead is a snapshot read's answer: the pairs visible at ts, or the locks that keep it from being sound. */
export interface SnapshotRead {
  pairs: VersionedPair[];
  errors: KeyError[];
}

/** blocks: a lock of start_ts <= ts blocks a read at ts (a 'lock'-kind lock writes nothing, so it never does). */
function blocks(l: LockRow, ts: bigint): boolean {
  return l.kind !== 'lock' && l.startTs <= ts;
}

function valueOf(t: MvccTables, w: WriteRow): Uint8Array {
  if (w.shortValue !== null) return w.shortValue;
  const v = t.data(w.key, w.startTs);
  assert(v !== undefined, `txn_write put record of start_ts ${w.startTs} has no txn_data row`);
  return v;
}

/**
 * snapshotGet reads keys at ts: for each, the newest put/delete record with
 * commit_ts <= ts (rollback and lock records skipped); a put gives its value
 * and version = commit_ts, a delete or no record gives nothing. A lock of
 * start_ts <= ts on any key makes the whole answer its KeyIsLocked errors
 * and no pairs: that transaction may commit below ts, so the reader resolves
 * it and retries rather than get a torn result.
 */
export function snapshotGet(t: MvccTables, keys: Uint8Array[], ts: bigint): SnapshotRead {
  const errors: KeyError[] = [];
  const pairs: VersionedPair[] = [];
  for (const key of keys) {
    const r = t.pointRead(key, ts);
    if (r === undefined) continue;
    if ('lock' in r) errors.push({ type: 'KeyIsLocked', lock: lockInfo(r.lock) });
    else if (errors.length === 0 && r.write.kind === 'put') pairs.push({ key, value: valueOf(t, r.write), version: r.write.commitTs });
  }
  return errors.length > 0 ? { pairs: [], errors } : { pairs, errors };
}

/**
 * snapshotScan returns up to limit keys of [start, end) visible at ts, in
 * key order, with the same lock rule over the part of the range the answer
 * covers (up to its last key when the limit cut it short).
 */
export function snapshotScan(t: MvccTables, start: Uint8Array, end: Uint8Array, limit: number, ts: bigint, keyOnly: boolean): SnapshotRead {
  const pairs: VersionedPair[] = [];
  let lastKey: Uint8Array | undefined;
  let full = false;
  const it = t.iterateWrites(start, end);
  for (const row of it) {
    if (lastKey !== undefined && compareKeys(row[0], lastKey) === 0) continue;
    const w = writeOf(row);
    if (w.commitTs > ts || (w.kind !== 'put' && w.kind !== 'delete')) continue;
    lastKey = w.key;
    if (w.kind === 'put') pairs.push({ key: w.key, value: keyOnly ? Buffer.alloc(0) : valueOf(t, w), version: w.commitTs });
    if (pairs.length >= limit) {
      full = true;
      it.return?.();
      break;
    }
  }
  const errors: KeyError[] = [];
  for (const row of t.iterateLocks(start, end)) {
    if (full && lastKey !== undefined && compareKeys(row[0], lastKey) > 0) break;
    const l = lockOf(row);
    if (blocks(l, ts)) errors.push({ type: 'KeyIsLocked', lock: lockInfo(l) });
  }
  return errors.length > 0 ? { pairs: [], errors } : { pairs, errors };
}
