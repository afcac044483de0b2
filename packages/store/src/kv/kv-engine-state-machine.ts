import { decode, encode, type KvPair, type Region } from '@flotilla/proto';
import { KvEngine, KvWriteBatch, changeValue, planGc, prevValueOf, readChanges, snapshotGet, snapshotScan, type ChangePage, type WriteRow, type GcPlan, type KvPair as EnginePair, type MvccOp, type MvccRead, type SnapshotRead, type TxnRows } from '@flotilla/kv-engine';
import { asStorageFault, storageFaultKind } from '@flotilla/log-engine';
import type { ConfState } from '@flotilla/raft-core';
import type { ApplyState, KvBatch, MergeState, RegionLocalState, StateMachine } from '../engines';

/**
 * StoreBookkeeping is what the store keeps beside a Region's meta in the KV
 * engine's opaque per-Region blob: the exact raft ConfState (joint configs
 * included), a prepared merge, and the ID of a destroyed peer. It is written
 * in the same transaction as the apply that changed it.
 */
interface StoreBookkeeping {
  confState: ConfState;
  merge?: MergeState;
  tombstonePeerId?: number;
}

class Batch implements KvBatch {
  readonly b = new KvWriteBatch();
  /** appliedRegions: the Regions whose apply state this batch sets (for the durable-apply bookkeeping). */
  readonly appliedRegions: number[] = [];
  put(key: Uint8Array, value: Uint8Array): void {
    this.b.put(key, value);
  }
  delete(key: Uint8Array): void {
    this.b.delete(key);
  }
  deleteRange(startKey: Uint8Array, endKey: Uint8Array): void {
    this.b.deleteRange(startKey, endKey);
  }
  deleteRegionData(startKey: Uint8Array, endKey: Uint8Array): void {
    this.b.deleteRegionData(startKey, endKey);
  }
  mvcc(op: MvccOp): void {
    this.b.mvcc(op);
  }
  setApplyState(regionId: number, s: ApplyState): void {
    this.appliedRegions.push(regionId);
    this.b.setApplyState(regionId, { appliedIndex: s.appliedIndex, truncatedIndex: s.truncatedIndex, truncatedTerm: s.truncatedTerm });
  }
  setRegionState(regionId: number, s: RegionLocalState): void {
    this.b.setRegionState(regionId, toEngine(s));
  }
  get isEmpty(): boolean {
    return this.b.isEmpty;
  }
}

function toEngine(s: RegionLocalState): { region: Region; state: RegionLocalState['state']; mergeState: Uint8Array } {
  const extra: StoreBookkeeping = { confState: s.confState };
  if (s.merge) extra.merge = s.merge;
  if (s.tombstonePeerId !== undefined) extra.tombstonePeerId = s.tombstonePeerId;
  return { region: s.region, state: s.state, mergeState: encode(extra) };
}

function fromEngine(file: string, regionId: number, s: { region: Region; state: RegionLocalState['state']; mergeState?: Uint8Array }): RegionLocalState {
  if (!s.mergeState) throw new Error(`${file}: region ${regionId} has no store bookkeeping (written by another program?)`);
  const extra = decode(s.mergeState) as StoreBookkeeping;
  const out: RegionLocalState = { region: s.region, state: s.state, confState: extra.confState };
  if (extra.merge) out.merge = extra.merge;
  if (extra.tombstonePeerId !== undefined) out.tombstonePeerId = extra.tombstonePeerId;
  return out;
}

const pairOut = ([key, value]: EnginePair): KvPair => ({ key, value });

/**
 * reviveTxnRows restores a snapshot's transactional rows after msgpack: a
 * timestamp below 2^53 decodes as a number (proto's codec), the tables take
 * bigint; bytes decode as Buffer already.
 */
function reviveTxnRows(t: TxnRows): TxnRows {
  const ts = (v: unknown): bigint => BigInt(v as number | bigint);
  return {
    locks: t.locks.map((l) => ({ ...l, startTs: ts(l.startTs), minCommitTs: ts(l.minCommitTs), value: l.value ?? null })),
    writes: t.writes.map((w) => ({ ...w, commitTs: ts(w.commitTs), startTs: ts(w.startTs), shortValue: w.shortValue ?? null })),
    data: t.data.map((d) => ({ ...d, startTs: ts(d.startTs) })),
  };
}

/**
 * KvEngineStateMachine adapts @flotilla/kv-engine (format checks, typed open
 * errors, incremental Region statistics, point-in-time snapshot reads) to
 * the store's StateMachine. Applies run with relaxed durability: the raft
 * log replays them after a crash, and sync() makes them durable before the
 * log is compacted past them. It keeps, for each Region written since the
 * last sync, its applied index as of that sync (durableAppliedIndex), and
 * syncs once on open: what the file holds then (perhaps only in the page
 * cache, after a process crash) is durable before anything relies on it.
 *
 * The engine's apply state has no applied term; it is the term of the
 * applied entry, which the raft log keeps (the log is never purged past the
 * applied index), or the truncated term when the two indexes meet.
 *
 * A read or write the disk or the file fails (SQLITE_FULL, SQLITE_CORRUPT,
 * an I/O error) throws a StorageFaultError naming kv.db, so the store can
 * stop cleanly on it (storage-fault.ts); other errors pass as they are.
 */
export class KvEngineStateMachine implements StateMachine {
  readonly engine: KvEngine;
  constructor(
    path: string,
    private readonly termOf: (regionId: number, index: number) => number,
    options: { integrityFullMaxBytes?: number } = {},
  ) {
    this.engine = KvEngine.open({ path, durability: 'relaxed', ...options });
    this.sync();
  }

  /** syncedApplied: Region -> applied index at the last sync, for each Region whose apply state changed since. */
  private readonly syncedApplied = new Map<number, number>();
  private unsyncedWrites = false;

  get unsynced(): boolean {
    return this.unsyncedWrites;
  }
  /**
   * durableAppliedIndex reads the engine's apply state as it stands, with no
   * term lookup in the raft log: a merge's source Region being destroyed, or
   * a log being caught up, may have applied past what its log has written yet.
   */
  durableAppliedIndex(regionId: number): number {
    return this.syncedApplied.get(regionId) ?? this.guard('kv apply state read', () => this.engine.applyState(regionId))?.appliedIndex ?? 0;
  }
  /** willChange records a Region's applied index as of the last sync before its first write since. */
  private willChange(regionId: number): void {
    if (!this.syncedApplied.has(regionId)) this.syncedApplied.set(regionId, this.guard('kv apply state read', () => this.engine.applyState(regionId))?.appliedIndex ?? 0);
  }

  newBatch(): KvBatch {
    return new Batch();
  }
  write(batch: KvBatch): void {
    const b = batch as Batch;
    for (const id of b.appliedRegions) this.willChange(id);
    if (!b.isEmpty) this.unsyncedWrites = true;
    this.guard('kv write', () => this.engine.write(b.b));
  }
  get(key: Uint8Array): Uint8Array | undefined {
    return this.guard('kv read', () => this.engine.get(key));
  }
  scan(startKey: Uint8Array, endKey: Uint8Array, limit: number): KvPair[] {
    return this.guard('kv scan', () => this.engine.scan(startKey, endKey, limit).map(pairOut));
  }
  snapshotRange(startKey: Uint8Array, endKey: Uint8Array): KvPair[] {
    return this.guard('kv snapshot read', () => this.engine.snapshotRange(startKey, endKey).map(pairOut));
  }
  snapshotRangeData(startKey: Uint8Array, endKey: Uint8Array): { pairs: KvPair[]; txn: TxnRows } {
    const d = this.guard('kv snapshot read', () => this.engine.snapshotRangeData(startKey, endKey));
    return { pairs: d.pairs.map(pairOut), txn: d.txn };
  }
  /** mvccRead: the committed transactional tables, storage faults typed like every other read. */
  readonly mvccRead: MvccRead = {
    lock: (key) => this.guard('kv txn read', () => this.engine.mvcc.lock(key)),
    writesFrom: (key, fromTs, limit) => this.guard('kv txn read', () => this.engine.mvcc.writesFrom(key, fromTs, limit)),
    locksInRange: (start, end) => this.guard('kv txn read', () => this.engine.mvcc.locksInRange(start, end)),
  };
  snapshotGet(keys: Uint8Array[], ts: bigint): SnapshotRead {
    return this.guard('kv txn read', () => snapshotGet(this.engine.mvcc, keys, ts));
  }
  snapshotScan(startKey: Uint8Array, endKey: Uint8Array, limit: number, ts: bigint, keyOnly: boolean): SnapshotRead {
    return this.guard('kv txn scan', () => snapshotScan(this.engine.mvcc, startKey, endKey, limit, ts, keyOnly));
  }
  txnChanges(startKey: Uint8Array, endKey: Uint8Array, fromTs: bigint, limit: number): ChangePage {
    return this.guard('kv watch scan', () => readChanges(this.engine.mvcc, startKey, endKey, fromTs, limit));
  }
  txnValue(write: Pick<WriteRow, 'key' | 'startTs' | 'shortValue'>): Uint8Array {
    return this.guard('kv txn read', () => changeValue(this.engine.mvcc, write));
  }
  txnPrevValue(key: Uint8Array, revision: bigint): Uint8Array | undefined {
    return this.guard('kv txn read', () => prevValueOf(this.engine.mvcc, key, revision));
  }
  gcPlan(startKey: Uint8Array, endKey: Uint8Array, safePoint: bigint, maxRows: number): GcPlan {
    return this.guard('kv gc scan', () => planGc(this.engine.mvcc, startKey, endKey, safePoint, maxRows));
  }
  ingestSnapshot(regionId: number, startKey: Uint8Array, endKey: Uint8Array, pairs: KvPair[], apply: ApplyState, region: RegionLocalState, txn?: TxnRows): void {
    const enginePairs = pairs.map((p): EnginePair => [p.key, p.value]);
    const engineApply = { appliedIndex: apply.appliedIndex, truncatedIndex: apply.truncatedIndex, truncatedTerm: apply.truncatedTerm };
    this.willChange(regionId);
    this.unsyncedWrites = true;
    const rows = txn === undefined ? undefined : reviveTxnRows(txn);
    this.guard('kv snapshot ingest', () => this.engine.ingestSnapshot(regionId, startKey, endKey, enginePairs, engineApply, toEngine(region), rows));
  }
  loadRegions(): { regionId: number; apply: ApplyState | undefined; local: RegionLocalState }[] {
    return this.guard('kv region states read', () => this.engine.loadRegionStates()).map((r) => {
      const local = fromEngine(this.engine.file, r.regionId, r.regionState);
      return { regionId: r.regionId, apply: r.applyState && local.state !== 'tombstone' ? this.withTerm(r.regionId, r.applyState) : undefined, local };
    });
  }
  applyState(regionId: number): ApplyState | undefined {
    const a = this.guard('kv apply state read', () => this.engine.applyState(regionId));
    return a ? this.withTerm(regionId, a) : undefined;
  }
  /** guard runs one engine call and types the storage faults it throws (StorageFaultError naming kv.db). */
  private guard<T>(operation: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw asStorageFault(e, this.engine.file, operation);
    }
  }
  private withTerm(regionId: number, a: { appliedIndex: number; truncatedIndex: number; truncatedTerm: number }): ApplyState {
    let appliedTerm = a.truncatedTerm;
    if (a.appliedIndex !== a.truncatedIndex) {
      try {
        appliedTerm = this.termOf(regionId, a.appliedIndex);
      } catch (e) {
        if (storageFaultKind(e) !== undefined) throw e;
        throw new Error(`${this.engine.file}: region ${regionId} applied index ${a.appliedIndex} has no entry in the raft log: ${(e as Error).message}`);
      }
    }
    return { ...a, appliedTerm };
  }
  approximateStats(regionId: number, startKey: Uint8Array, endKey: Uint8Array): { sizeBytes: number; keys: number } {
    const s = this.engine.approximateRegionStats(regionId);
    if (s) return { sizeBytes: s.bytes, keys: s.keys };
    const n = this.engine.scan(startKey, endKey, 0);
    return { sizeBytes: 0, keys: n.length };
  }
  approximateSplitKey(startKey: Uint8Array, endKey: Uint8Array): { splitKey: Uint8Array | undefined; sizeBytes: number; keys: number } {
    const { key, stats } = this.engine.approximateSplitKey(startKey, endKey);
    return { splitKey: key, sizeBytes: stats.bytes, keys: stats.keys };
  }
  sync(): void {
    this.guard('kv sync', () => this.engine.flush());
    this.syncedApplied.clear();
    this.unsyncedWrites = false;
  }
  close(): void {
    this.guard('kv close', () => this.engine.close());
  }
}
