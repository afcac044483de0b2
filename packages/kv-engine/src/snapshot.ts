import Database from 'better-sqlite3';
import { decodeRegionState } from './region-codec';
import type { ApplyState, KvPair, RegionLocalState } from './types';
import type { TxnRows } from './mvcc/schema';
import { readTxnRows } from './mvcc/tables';

/**
 * KvSnapshot is a point-in-time read of one Region, for raft snapshots: it
 * opens its own read-only connection and one read transaction, reads the
 * Region's apply and region state first (which pins the transaction's view)
 * and then streams the pairs of the range in key order. WAL mode lets the
 * engine keep writing meanwhile; the view never changes.
 */
export class KvSnapshot {
  private db: Database.Database | undefined;
  readonly applyState: ApplyState | undefined;
  readonly regionState: RegionLocalState | undefined;
  private iter: IterableIterator<[Buffer, Buffer]> | undefined;
  private done = false;

  constructor(
    file: string,
    readonly regionId: number,
    readonly start: Uint8Array,
    readonly end: Uint8Array,
    private readonly onClose: () => void,
  ) {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    this.db = db;
    db.prepare('BEGIN').run();
    const a = db.prepare('SELECT applied_index, truncated_index, truncated_term FROM apply_state WHERE region_id = ?').raw().get(regionId) as
      | [number, number, number]
      | undefined;
    this.applyState = a === undefined ? undefined : { appliedIndex: a[0], truncatedIndex: a[1], truncatedTerm: a[2] };
    const r = db.prepare('SELECT region, state, merge_state FROM region_state WHERE region_id = ?').raw().get(regionId) as
      | [Buffer, string, Buffer | null]
      | undefined;
    this.regionState = r === undefined ? undefined : decodeRegionState(file, regionId, r);
  }

  /** pairs iterates the remaining pairs of the range in key order. */
  *pairs(): IterableIterator<KvPair> {
    for (;;) {
      const chunk = this.readChunk(1024 * 1024);
      if (chunk.length === 0) return;
      yield* chunk;
    }
  }

  /** readChunk returns the next pairs, about maxBytes of them (at least one while any remain). */
  readChunk(maxBytes: number): KvPair[] {
    const db = this.db;
    if (db === undefined) throw new Error(`snapshot of region ${this.regionId} is closed`);
    if (this.done) return [];
    if (this.iter === undefined) {
      this.iter = (
        this.end.length === 0
          ? db.prepare('SELECT key, value FROM kv WHERE key >= ? ORDER BY key').raw().iterate(this.start)
          : db.prepare('SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key').raw().iterate(this.start, this.end)
      ) as IterableIterator<[Buffer, Buffer]>;
    }
    const out: KvPair[] = [];
    let bytes = 0;
    while (out.length === 0 || bytes < maxBytes) {
      const n = this.iter.next();
      if (n.done === true) {
        this.done = true;
        break;
      }
      out.push(n.value);
      bytes += n.value[0].length + n.value[1].length;
    }
    return out;
  }

  /** txnRows reads the range's transactional rows (locks, write records, long values) in the same read transaction. */
  txnRows(): TxnRows {
    const db = this.db;
    if (db === undefined) throw new Error(`snapshot of region ${this.regionId} is closed`);
    return readTxnRows(db, this.start, this.end);
  }

  /** close ends the read transaction and the connection. */
  close(): void {
    const db = this.db;
    if (db === undefined) return;
    this.db = undefined;
    this.iter?.return?.();
    this.iter = undefined;
    db.prepare('COMMIT').run();
    db.close();
    this.onClose();
  }
}
