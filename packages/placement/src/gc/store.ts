import type Database from 'better-sqlite3';
import { assert } from '../errors';

// The GC safe points in the placement database (replicated: every member
// applies the same rows through the placement Raft log, and snapshots carry
// them). One table; the cluster safe point is the row with the empty id,
// every other row is a service safe point. Timestamps are 64-bit hybrid
// timestamps, beyond what a JavaScript number holds exactly, so they are
// kept as decimal text (read and written only here).

/** CLUSTER_ROW: the id of the cluster safe point's row (a service id is never empty). */
const CLUSTER_ROW = '';

/** ServiceSafePoint: a service's promise not to read below ts until expireAtMs (leader wall clock). */
export interface ServiceSafePoint {
  serviceId: string;
  ts: bigint;
  expireAtMs: number;
}

/** GcRows is the whole replicated GC state (what a leader loads and a snapshot carries). */
export interface GcRows {
  clusterSafePoint: bigint;
  services: ServiceSafePoint[];
}

/** GcStore reads and writes the gc_safe_points table of one placement database. */
export class GcStore {
  constructor(private readonly db: Database.Database) {
    db.exec('CREATE TABLE IF NOT EXISTS gc_safe_points (id TEXT PRIMARY KEY, ts TEXT NOT NULL, expire_at_ms INTEGER NOT NULL) STRICT');
  }

  load(): GcRows {
    const rows = this.db.prepare('SELECT id, ts, expire_at_ms FROM gc_safe_points ORDER BY id').all() as { id: string; ts: string; expire_at_ms: number }[];
    const out: GcRows = { clusterSafePoint: 0n, services: [] };
    for (const r of rows) {
      assert(/^[0-9]{1,20}$/.test(r.ts), `gc_safe_points row ${JSON.stringify(r.id)} holds ${JSON.stringify(r.ts)}, not a timestamp (corrupt?)`);
      if (r.id === CLUSTER_ROW) out.clusterSafePoint = BigInt(r.ts);
      else out.services.push({ serviceId: r.id, ts: BigInt(r.ts), expireAtMs: r.expire_at_ms });
    }
    return out;
  }

  /** raiseClusterSafePoint: the cluster safe point only moves forward (applying an older command again changes nothing). */
  raiseClusterSafePoint(ts: bigint): void {
    if (ts <= this.load().clusterSafePoint) return;
    this.db.prepare('INSERT OR REPLACE INTO gc_safe_points (id, ts, expire_at_ms) VALUES (?, ?, 0)').run(CLUSTER_ROW, ts.toString());
  }

  /** putService writes a service safe point; expireAtMs 0 removes it. */
  putService(serviceId: string, ts: bigint, expireAtMs: number): void {
    assert(serviceId !== CLUSTER_ROW, 'a service safe point needs a service id');
    if (expireAtMs === 0) this.db.prepare('DELETE FROM gc_safe_points WHERE id = ?').run(serviceId);
    else this.db.prepare('INSERT OR REPLACE INTO gc_safe_points (id, ts, expire_at_ms) VALUES (?, ?, ?)').run(serviceId, ts.toString(), expireAtMs);
  }

  /** dumpRows / restoreRows: the table's rows in a placement snapshot (fsm-store.ts). */
  dumpRows(): [string, string, number][] {
    return this.db.prepare('SELECT id, ts, expire_at_ms FROM gc_safe_points').raw().all() as [string, string, number][];
  }

  restoreRows(rows: readonly [string, string, number][] | undefined): void {
    this.db.prepare('DELETE FROM gc_safe_points').run();
    const put = this.db.prepare('INSERT INTO gc_safe_points (id, ts, expire_at_ms) VALUES (?, ?, ?)');
    for (const r of rows ?? []) put.run(...r);
  }
}
