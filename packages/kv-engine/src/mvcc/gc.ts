import { compareKeys } from '@flotilla/proto';
import type { MvccTables } from './tables';
import { writeOf } from './tables';

// mvcc/gc: which transactional rows of a range a GC pass at a safe point
// may remove (TiKV's GC of the write and default column families). The
// Region leader plans; the plan travels through Raft as explicit deletes
// that every replica applies alike (store/src/gc/apply.ts).
//
// For each key, in the write records with commit_ts <= safe point:
//   - the newest put record is kept (a read at the safe point needs it),
//     and every older record goes, with the long values (txn_data) of the
//     put records that go;
//   - if the newest put/delete record is a delete, it goes too, with
//     everything older (nothing is left for it to hide) - but only when the
//     plan covers all of the key's older records;
//   - rollback and lock records go wherever they are (reads skip them).
// Records above the safe point are never touched. A key with a lock of
// start_ts <= safe point is left alone (its transaction may still commit
// below the safe point; a reader resolves the lock first, as TiKV's GC
// resolves locks before it runs).

/** GcDelete is one write record to remove, with the start_ts of its txn_data row when it has one (a long put value). */
export interface GcDelete {
  key: Uint8Array;
  commitTs: bigint;
  dataStartTs?: bigint;
}

/** GcPlan is one bounded batch of deletes; next is where the following batch starts (undefined: the range is done). */
export interface GcPlan {
  deletes: GcDelete[];
  next: Uint8Array | undefined;
  scanned: number;
}

interface KeyState {
  key: Uint8Array;
  locked: boolean;
  /** visible: the newest put/delete record <= safe point seen so far. */
  visible: GcDelete | undefined;
  visibleKind: 'put' | 'delete' | undefined;
  deletes: GcDelete[];
}

function gcDelete(key: Uint8Array, commitTs: bigint, kind: string, startTs: bigint, shortValue: Uint8Array | null): GcDelete {
  return kind === 'put' && shortValue === null ? { key, commitTs, dataStartTs: startTs } : { key, commitTs };
}

/**
 * planGc scans the write records of [start, end) (an empty end is
 * unbounded) and returns up to about maxRows scanned rows' worth of
 * deletes. A key whose records do not fit is cut short (its latest delete
 * record kept) and the next plan starts at that key again.
 */
export function planGc(t: MvccTables, start: Uint8Array, end: Uint8Array, safePoint: bigint, maxRows: number): GcPlan {
  const deletes: GcDelete[] = [];
  let scanned = 0;
  let cur: KeyState | undefined;
  const finish = (k: KeyState, complete: boolean): void => {
    if (k.locked) return;
    deletes.push(...k.deletes);
    if (complete && k.visibleKind === 'delete' && k.visible) deletes.push(k.visible);
  };
  const it = t.iterateWrites(start, end);
  for (const row of it) {
    const w = writeOf(row);
    if (cur === undefined || compareKeys(w.key, cur.key) !== 0) {
      if (cur !== undefined) {
        finish(cur, true);
        if (scanned >= maxRows) {
          it.return?.();
          return { deletes, next: w.key, scanned };
        }
      }
      const lock = t.lock(w.key);
      cur = { key: w.key, locked: lock !== undefined && lock.startTs <= safePoint, visible: undefined, visibleKind: undefined, deletes: [] };
    }
    scanned++;
    if (scanned > maxRows * 4 && cur.deletes.length > 0) {
      // One key with a very long history: remove what was found, come back to the rest.
      it.return?.();
      finish(cur, false);
      return { deletes, next: cur.key, scanned };
    }
    if (w.commitTs > safePoint || cur.locked) continue;
    if (w.kind === 'rollback' || w.kind === 'lock') cur.deletes.push({ key: w.key, commitTs: w.commitTs });
    else if (cur.visible === undefined) {
      cur.visible = gcDelete(w.key, w.commitTs, w.kind, w.startTs, w.shortValue);
      cur.visibleKind = w.kind;
    } else cur.deletes.push(gcDelete(w.key, w.commitTs, w.kind, w.startTs, w.shortValue));
  }
  if (cur !== undefined) finish(cur, true);
  return { deletes, next: undefined, scanned };
}
