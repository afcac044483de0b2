import type Database from 'better-sqlite3';

// The leases in the placement database (replicated: every member applies
// the same rows through the placement Raft log, and snapshots carry them).
// A lease row holds its TTL and whether its revocation is committed; its
// expiry time is not replicated at all: only the leader judges expiry, and
// a new leader gives every lease a full TTL from when it starts serving
// (etcd's rule), so failover never makes a lease expire early.

/** LeaseRow: one lease as committed. */
export interface LeaseRow {
  id: number;
  ttlMs: number;
  /** revoked: the revocation is committed; its keys are being (or will be) deleted. */
  revoked: boolean;
  keys: Uint8Array[];
}

/** LeaseImage: the tables' rows in a placement snapshot. */
export interface LeaseImage {
  leases: [number, number, number][];
  keys: [number, Uint8Array][];
}

/** LeaseStore reads and writes the leases and lease_keys tables of one placement database. */
export class LeaseStore {
  constructor(private readonly db: Database.Database) {
    db.exec('CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl_ms INTEGER NOT NULL, revoked INTEGER NOT NULL) STRICT');
    db.exec('CREATE TABLE IF NOT EXISTS lease_keys (lease_id INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY (lease_id, key)) STRICT, WITHOUT ROWID');
  }

  load(): LeaseRow[] {
    const out = new Map<number, LeaseRow>();
    for (const r of this.db.prepare('SELECT id, ttl_ms, revoked FROM leases ORDER BY id').all() as { id: number; ttl_ms: number; revoked: number }[]) {
      out.set(r.id, { id: r.id, ttlMs: r.ttl_ms, revoked: r.revoked === 1, keys: [] });
    }
    for (const r of this.db.prepare('SELECT lease_id, key FROM lease_keys ORDER BY lease_id, key').all() as { lease_id: number; key: Uint8Array }[]) {
      out.get(r.lease_id)?.keys.push(new Uint8Array(r.key));
    }
    return [...out.values()];
  }

  /** grant writes a new lease (granting an existing ID again changes nothing). */
  grant(id: number, ttlMs: number): void {
    this.db.prepare('INSERT OR IGNORE INTO leases (id, ttl_ms, revoked) VALUES (?, ?, 0)').run(id, ttlMs);
  }

  /** attach records a key of a live lease; for a lease revoked or gone it does nothing (the leader refused it already). */
  attach(id: number, key: Uint8Array): void {
    const row = this.db.prepare('SELECT revoked FROM leases WHERE id = ?').get(id) as { revoked: number } | undefined;
    if (row === undefined || row.revoked === 1) return;
    this.db.prepare('INSERT OR IGNORE INTO lease_keys (lease_id, key) VALUES (?, ?)').run(id, key);
  }

  revoke(id: number): void {
    this.db.prepare('UPDATE leases SET revoked = 1 WHERE id = ?').run(id);
  }

  /** drop removes a lease and its keys' rows (after its keys were deleted). */
  drop(id: number): void {
    this.db.prepare('DELETE FROM lease_keys WHERE lease_id = ?').run(id);
    this.db.prepare('DELETE FROM leases WHERE id = ?').run(id);
  }

  dump(): LeaseImage {
    return {
      leases: this.db.prepare('SELECT id, ttl_ms, revoked FROM leases').raw().all() as [number, number, number][],
      keys: this.db.prepare('SELECT lease_id, key FROM lease_keys').raw().all() as [number, Uint8Array][],
    };
  }

  restore(image: LeaseImage | undefined): void {
    this.db.prepare('DELETE FROM lease_keys').run();
    this.db.prepare('DELETE FROM leases').run();
    const putLease = this.db.prepare('INSERT INTO leases (id, ttl_ms, revoked) VALUES (?, ?, ?)');
    for (const r of image?.leases ?? []) putLease.run(...r);
    const putKey = this.db.prepare('INSERT INTO lease_keys (lease_id, key) VALUES (?, ?)');
    for (const r of image?.keys ?? []) putKey.run(...r);
  }
}
