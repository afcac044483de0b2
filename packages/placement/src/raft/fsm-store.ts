import type Database from 'better-sqlite3';
import { decode, encode } from '@flotilla/proto';
import type { ConfState } from '@flotilla/raft-core';
import { assert } from '../errors';
import { GcStore } from '../gc/store';
import { LeaseStore, type LeaseImage } from '../lease/store';
import type { PlacementStorage } from '../storage';
import type { MemberRecord } from './members';

/**
 * REPLICATED_META: the meta keys that are part of the replicated state
 * (in snapshots). schema_version and the raft_* keys describe this copy.
 */
const REPLICATED_META = ['cluster_id', 'max_replicas', 'bootstrapped', 'id_high_water', 'tso_upper_ms', 'next_member_id'] as const;

/** SnapshotImage is a snapshot's data: every replicated row of the placement database. */
interface SnapshotImage {
  v: 1;
  meta: Record<string, number>;
  stores: [number, Uint8Array][];
  regions: [number, Uint8Array, number | null, number, number][];
  operators: [number, Uint8Array][];
  members: [number, Uint8Array][];
  /** gc: the GC safe points (absent in a snapshot from a build before GC: none). */
  gc?: [string, string, number][];
  /** leases: the leases and their keys (absent in a snapshot from a build before leases: none). */
  leases?: LeaseImage;
}

/**
 * FsmStore is the Raft state machine's own part of the placement database:
 * how far the log is applied (index and term, written in the same
 * transaction as what they describe, so a restart resumes exactly there),
 * the membership (ConfState and the members table), and whole-state
 * snapshots for members that fall behind the compacted log.
 */
export class FsmStore {
  private readonly db: Database.Database;
  /** gc: the GC safe point rows (replicated: applied from the log, carried in snapshots). */
  readonly gc: GcStore;
  /** leases: the lease rows (replicated like gc). */
  readonly leases: LeaseStore;
  // Caches of what only this class writes: read on every request (roles, addresses), written rarely.
  private applied: { index: number; term: number };
  private conf: ConfState | undefined;
  private memberList: MemberRecord[] | undefined;

  constructor(private readonly storage: PlacementStorage) {
    this.db = storage.db;
    this.gc = new GcStore(storage.db);
    this.leases = new LeaseStore(storage.db);
    this.applied = { index: storage.readMetaNumber('raft_applied_index'), term: storage.readMetaNumber('raft_applied_term') };
  }

  get appliedIndex(): number {
    return this.applied.index;
  }
  get appliedTerm(): number {
    return this.applied.term;
  }
  get nextMemberId(): number {
    return Math.max(1, this.storage.readMetaNumber('next_member_id'));
  }

  /** setApplied records the applied point (inside the transaction of what was applied; the cache follows once it commits). */
  setApplied(index: number, term: number): void {
    this.storage.putMeta('raft_applied_index', index);
    this.storage.putMeta('raft_applied_term', term);
    this.applied = { index, term };
  }

  /** confState is the membership as of the applied index (empty for a member that has not learned it yet). */
  confState(): ConfState {
    if (this.conf === undefined) {
      const row = this.db.prepare("SELECT value FROM meta WHERE key = 'raft_conf_state'").get() as { value: Uint8Array } | undefined;
      this.conf = row ? (decode(row.value) as ConfState) : { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    }
    return this.conf;
  }

  setConfState(cs: ConfState): void {
    this.storage.putMeta('raft_conf_state', encode(cs));
    this.conf = cs;
  }

  members(): readonly MemberRecord[] {
    this.memberList ??= (this.db.prepare('SELECT data FROM members ORDER BY id').all() as { data: Uint8Array }[]).map((r) => decode(r.data) as MemberRecord);
    return this.memberList;
  }

  putMember(m: MemberRecord): void {
    this.db.prepare('INSERT OR REPLACE INTO members (id, data) VALUES (?, ?)').run(m.id, encode(m));
    if (m.id >= this.nextMemberId) this.storage.putMeta('next_member_id', m.id + 1);
    this.memberList = undefined;
  }

  /** transaction runs fn in one SQLite transaction (one fsync): a round of applied entries with their applied index. */
  transaction<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      // Rolled back: forget what the caches took from it.
      this.forgetCaches();
      throw err;
    }
  }

  private forgetCaches(): void {
    this.conf = undefined;
    this.memberList = undefined;
    this.applied = { index: this.storage.readMetaNumber('raft_applied_index'), term: this.storage.readMetaNumber('raft_applied_term') };
  }

  /** dump encodes every replicated row: the data of a Raft snapshot at the applied index. */
  dump(): Uint8Array {
    const meta: Record<string, number> = {};
    for (const k of REPLICATED_META) meta[k] = this.storage.readMetaNumber(k);
    const rows = (sql: string): unknown[][] => this.db.prepare(sql).raw().all() as unknown[][];
    const image: SnapshotImage = {
      v: 1,
      meta,
      stores: rows('SELECT id, data FROM stores') as SnapshotImage['stores'],
      regions: rows('SELECT id, meta, leader_peer_id, size_bytes, keys FROM regions') as SnapshotImage['regions'],
      operators: rows('SELECT region_id, data FROM operators') as SnapshotImage['operators'],
      members: rows('SELECT id, data FROM members') as SnapshotImage['members'],
      gc: this.gc.dumpRows(),
      leases: this.leases.dump(),
    };
    return encode(image);
  }

  /** restore replaces the whole replicated state with a snapshot's, with its index, term and membership, in one transaction. */
  restore(data: Uint8Array, index: number, term: number, confState: ConfState): void {
    const image = decode(data, 1024 * 1024 * 1024) as SnapshotImage;
    assert(typeof image === 'object' && image !== null && image.v === 1, 'placement snapshot of an unknown format');
    this.transaction(() => {
      for (const t of ['stores', 'regions', 'operators', 'members']) this.db.prepare(`DELETE FROM ${t}`).run();
      for (const k of REPLICATED_META) this.storage.putMeta(k, image.meta[k] ?? 0);
      const putStore = this.db.prepare('INSERT INTO stores (id, data) VALUES (?, ?)');
      for (const r of image.stores) putStore.run(...r);
      const putRegion = this.db.prepare('INSERT INTO regions (id, meta, leader_peer_id, size_bytes, keys) VALUES (?, ?, ?, ?, ?)');
      for (const r of image.regions) putRegion.run(...r);
      const putOp = this.db.prepare('INSERT INTO operators (region_id, data) VALUES (?, ?)');
      for (const r of image.operators) putOp.run(...r);
      const putMember = this.db.prepare('INSERT INTO members (id, data) VALUES (?, ?)');
      for (const r of image.members) putMember.run(...r);
      this.gc.restoreRows(image.gc);
      this.leases.restore(image.leases);
      this.setConfState(confState);
      this.setApplied(index, term);
      this.memberList = undefined;
    });
  }
}
