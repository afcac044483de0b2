import type { ConfState, Entry, HardState, Snapshot } from './types';

/** RaftState is what a peer restarts from: its hard state and membership. */
export interface RaftState {
  hardState: HardState;
  confState: ConfState;
}

/** StorageErrorCode names the expected failures of a Storage read. */
export type StorageErrorCode = 'Compacted' | 'Unavailable' | 'SnapshotOutOfDate' | 'SnapshotTemporarilyUnavailable';

/**
 * StorageError is the base of the typed, expected errors a Storage throws.
 * Raft catches exactly these; anything else thrown by a Storage is a bug
 * in the host and propagates.
 */
export class StorageError extends Error {
  constructor(
    readonly code: StorageErrorCode,
    message: string,
  ) {
    super(message);
    this.name = `${code}Error`;
  }
}

/** CompactedError: the requested index is below firstIndex (log was compacted). */
export class CompactedError extends StorageError {
  constructor(message = 'requested index is unavailable due to compaction') {
    super('Compacted', message);
  }
}

/** UnavailableError: the requested index is above lastIndex. */
export class UnavailableError extends StorageError {
  constructor(message = 'requested entry at index is unavailable') {
    super('Unavailable', message);
  }
}

/** SnapshotOutOfDateError: applying a snapshot older than the current one. */
export class SnapshotOutOfDateError extends StorageError {
  constructor(message = 'requested index is older than the existing snapshot') {
    super('SnapshotOutOfDate', message);
  }
}

/**
 * SnapshotTemporarilyUnavailableError: the snapshot is being generated; raft
 * will retry later (the follower's progress stays in Probe).
 */
export class SnapshotTemporarilyUnavailableError extends StorageError {
  constructor(message = 'snapshot is temporarily unavailable') {
    super('SnapshotTemporarilyUnavailable', message);
  }
}

/**
 * Storage is the read side of a peer's durable raft log, as raft sees it.
 *
 * Contract (etcd raft's Storage):
 * - The log holds entries [firstIndex(), lastIndex()]. The entry at
 *   firstIndex()-1 is the "dummy" entry: only its term is kept, so
 *   `term(firstIndex()-1)` succeeds and `entries()` never returns it.
 *   After a snapshot at (i, t), firstIndex() = i+1 and term(i) = t.
 * - `entries(lo, hi, maxSize)` returns [lo, hi). It returns at least one
 *   entry when lo < hi, even if that entry alone exceeds maxSize. It throws
 *   CompactedError if lo < firstIndex(), UnavailableError if hi > lastIndex()+1.
 * - `term(i)` throws CompactedError if i < firstIndex()-1 and
 *   UnavailableError if i > lastIndex().
 * - `snapshot(requestIndex, to)` throws SnapshotTemporarilyUnavailableError
 *   while a snapshot is being prepared. A non-zero requestIndex is a
 *   follower's requestSnapshot: the snapshot must be at or above it
 *   (raft-rs), so a host that snapshots its applied state answers
 *   "temporarily unavailable" until it has applied that far (the leader
 *   counts the request toward commit, so it gets there). MemoryStorage
 *   ignores requestIndex and returns its stored snapshot.
 * - Everything raft reads here must be durable (or, with asynchronous
 *   persistence, at least accepted for writing in order).
 */
export interface Storage {
  initialState(): RaftState;
  /** entries returns [lo, hi) limited by maxSize bytes (undefined = no limit). */
  entries(lo: number, hi: number, maxSize?: number): Entry[];
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  /** snapshot returns the most recent snapshot; requestIndex/to are hints for the host. */
  snapshot(requestIndex: number, to: number): Snapshot;
}
