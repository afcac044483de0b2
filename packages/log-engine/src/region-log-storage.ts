import type { ConfState, Entry, HardState, RaftState, Snapshot, Storage } from '@flotilla/raft-core';
import type { LogBatch } from './log-batch';

/** RegionRaftState is what the host restarts a Region's peer from. */
export interface RegionRaftState {
  hardState: HardState;
  confState: ConfState;
  truncatedIndex: number;
  truncatedTerm: number;
  firstIndex: number;
  lastIndex: number;
}

/**
 * RegionLogReader is the part of LogEngine a RegionLogStorage reads
 * through. It is declared here, below the engine, so that this file does
 * not import engine.ts (which constructs RegionLogStorage): the import
 * graph stays one-way. Each method has LogEngine's contract, including
 * its typed errors (CompactedError, UnavailableError).
 */
export interface RegionLogReader {
  raftState(regionId: number): RegionRaftState;
  entries(regionId: number, lo: number, hi: number, maxSize?: number): Entry[];
  term(regionId: number, index: number): number;
  firstIndex(regionId: number): number;
  lastIndex(regionId: number): number;
}

/**
 * RegionLogStorage is raft-core's Storage for one Region, backed by the
 * shared LogEngine (cache first, SQLite below it). It reads what has been
 * durably written; the host changes the log only through a LogBatch and
 * LogEngine.write, for which the helpers below are shorthands.
 *
 * snapshot() asks the host's snapshot provider (which builds the data from
 * the KV engine). Without one it returns a data-less snapshot at the
 * truncated point, enough for tests and for peers that only need metadata.
 */
export class RegionLogStorage implements Storage {
  constructor(
    private readonly engine: RegionLogReader,
    readonly regionId: number,
    private readonly snapshotProvider?: (requestIndex: number, to: number) => Snapshot,
  ) {}

  initialState(): RaftState {
    const s = this.engine.raftState(this.regionId);
    return { hardState: s.hardState, confState: s.confState };
  }

  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    return this.engine.entries(this.regionId, lo, hi, maxSize);
  }

  term(index: number): number {
    return this.engine.term(this.regionId, index);
  }

  firstIndex(): number {
    return this.engine.firstIndex(this.regionId);
  }

  lastIndex(): number {
    return this.engine.lastIndex(this.regionId);
  }

  snapshot(requestIndex: number, to: number): Snapshot {
    if (this.snapshotProvider !== undefined) return this.snapshotProvider(requestIndex, to);
    const s = this.engine.raftState(this.regionId);
    return { data: new Uint8Array(0), metadata: { index: s.truncatedIndex, term: s.truncatedTerm, confState: s.confState } };
  }

  /** truncatedIndex / truncatedTerm: the dummy entry (what the KV engine's apply_state mirrors). */
  truncatedIndex(): number {
    return this.engine.raftState(this.regionId).truncatedIndex;
  }

  // Write helpers: each records a change in `batch`; it takes effect when
  // the batch is written.

  append(batch: LogBatch, entries: Entry[]): LogBatch {
    return batch.append(this.regionId, entries);
  }

  setHardState(batch: LogBatch, hardState: HardState): LogBatch {
    return batch.setHardState(this.regionId, hardState);
  }

  setConfState(batch: LogBatch, confState: ConfState): LogBatch {
    return batch.setConfState(this.regionId, confState);
  }

  applySnapshotMeta(batch: LogBatch, index: number, term: number, confState: ConfState): LogBatch {
    return batch.applySnapshotMeta(this.regionId, index, term, confState);
  }

  /**
   * compact makes `compactIndex` the new dummy entry, like etcd's
   * MemoryStorage.Compact: entries <= compactIndex become unreachable. The
   * term is read from the log now, so compactIndex must be in [firstIndex-1, lastIndex].
   */
  compact(batch: LogBatch, compactIndex: number): LogBatch {
    return batch.compact(this.regionId, compactIndex, this.term(compactIndex));
  }
}
