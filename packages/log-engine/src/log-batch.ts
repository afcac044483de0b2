import type { ConfState, Entry, HardState } from '@flotilla/raft-core';
import { assert } from './errors';

/** LogOp is one change of a LogBatch; ops apply in order. */
export type LogOp =
  | { kind: 'append'; regionId: number; entries: Entry[] }
  | { kind: 'hardState'; regionId: number; hardState: HardState }
  | { kind: 'confState'; regionId: number; confState: ConfState }
  | { kind: 'compact'; regionId: number; truncatedIndex: number; truncatedTerm: number }
  | { kind: 'snapshot'; regionId: number; index: number; term: number; confState: ConfState }
  | { kind: 'remove'; regionId: number };

/** MAX_BATCH_BYTES bounds one LogBatch (its encoded size); a Ready is far smaller. */
export const MAX_BATCH_BYTES = 256 * 1024 * 1024;

/** ENTRY_OVERHEAD_BYTES matches raft-core's entrySize overhead, so maxSize limits agree. */
export const ENTRY_OVERHEAD_BYTES = 16;

/** entrySize is the size an entry counts for against a read's maxSize (same rule as raft-core). */
export function entrySize(e: Entry): number {
  return e.data.length + (e.context === undefined ? 0 : e.context.length) + ENTRY_OVERHEAD_BYTES;
}

/**
 * LogBatch collects the raft-log changes of any number of Regions — a poll
 * round's Readies — so that LogEngine.write commits them in one SQLite
 * transaction with one fsync. Ops apply in the order they were added; a batch
 * may be reused after write() by calling clear().
 */
export class LogBatch {
  /** ops is the ordered change list; read by the engine, not by callers. */
  readonly ops: LogOp[] = [];
  private bytes = 0;
  private entryCountValue = 0;

  /**
   * append adds entries (contiguous indexes) to a Region's log. Like etcd's
   * MemoryStorage.Append, appending at index i first drops every entry >= i
   * (the conflicting suffix). An empty list is ignored.
   */
  append(regionId: number, entries: Entry[]): this {
    if (entries.length === 0) return this;
    checkRegionId(regionId);
    let prev = -1;
    for (const e of entries) {
      assert(Number.isSafeInteger(e.index) && e.index > 0, `region ${regionId}: entry index ${e.index} must be a positive integer`);
      assert(prev < 0 || e.index === prev + 1, `region ${regionId}: appended entries not contiguous (${prev} then ${e.index})`);
      assert(Number.isSafeInteger(e.term) && e.term >= 0, `region ${regionId}: bad entry term ${e.term}`);
      prev = e.index;
      this.bytes += entrySize(e) + 8;
    }
    this.entryCountValue += entries.length;
    // A copy of the list (not of the entries): the caller's array may change
    // before an asynchronous write completes and fills the cache.
    this.ops.push({ kind: 'append', regionId, entries: entries.slice() });
    return this.checkSize();
  }

  /** setHardState records a Region's term, vote and commit. */
  setHardState(regionId: number, hardState: HardState): this {
    checkRegionId(regionId);
    this.ops.push({ kind: 'hardState', regionId, hardState: { term: hardState.term, vote: hardState.vote, commit: hardState.commit } });
    this.bytes += 40;
    return this.checkSize();
  }

  /** setConfState records a Region's membership (after applying a conf change). */
  setConfState(regionId: number, confState: ConfState): this {
    checkRegionId(regionId);
    this.ops.push({ kind: 'confState', regionId, confState: copyConfState(confState) });
    this.bytes += confStateBytes(confState);
    return this.checkSize();
  }

  /**
   * compact cuts a Region's log: entries <= truncatedIndex become unreachable
   * (firstIndex becomes truncatedIndex+1, term(truncatedIndex) stays readable
   * as the dummy entry) and are physically deleted later by LogEngine.purge.
   * In the brief's words: entries < truncatedIndex+1 are cut. A compact at or
   * below the current truncated index is a no-op.
   */
  compact(regionId: number, truncatedIndex: number, truncatedTerm: number): this {
    checkRegionId(regionId);
    assert(Number.isSafeInteger(truncatedIndex) && truncatedIndex >= 0, `region ${regionId}: bad truncated index ${truncatedIndex}`);
    this.ops.push({ kind: 'compact', regionId, truncatedIndex, truncatedTerm });
    this.bytes += 32;
    return this.checkSize();
  }

  /**
   * applySnapshotMeta replaces a Region's log by a snapshot at (index, term):
   * every entry is dropped, term(index) = term, firstIndex = index+1 and the
   * membership becomes confState. The snapshot's data goes to the KV engine.
   */
  applySnapshotMeta(regionId: number, index: number, term: number, confState: ConfState): this {
    checkRegionId(regionId);
    assert(Number.isSafeInteger(index) && index >= 0, `region ${regionId}: bad snapshot index ${index}`);
    this.ops.push({ kind: 'snapshot', regionId, index, term, confState: copyConfState(confState) });
    this.bytes += 32 + confStateBytes(confState);
    return this.checkSize();
  }

  /** removeRegion drops a Region's raft state and log (entries are purged in the background). */
  removeRegion(regionId: number): this {
    checkRegionId(regionId);
    this.ops.push({ kind: 'remove', regionId });
    this.bytes += 16;
    return this.checkSize();
  }

  get isEmpty(): boolean {
    return this.ops.length === 0;
  }

  /** entryCount is the number of entries appended by this batch. */
  get entryCount(): number {
    return this.entryCountValue;
  }

  /** approximateBytes is an upper estimate of the encoded size. */
  get approximateBytes(): number {
    return this.bytes + 8;
  }

  clear(): void {
    this.ops.length = 0;
    this.bytes = 0;
    this.entryCountValue = 0;
  }

  private checkSize(): this {
    assert(this.bytes <= MAX_BATCH_BYTES, `LogBatch exceeds ${MAX_BATCH_BYTES} bytes; split the write`);
    return this;
  }
}

function checkRegionId(regionId: number): void {
  assert(Number.isSafeInteger(regionId) && regionId > 0, `bad region id ${regionId}`);
}

export function copyConfState(cs: ConfState): ConfState {
  return {
    voters: [...cs.voters],
    learners: [...cs.learners],
    votersOutgoing: [...cs.votersOutgoing],
    learnersNext: [...cs.learnersNext],
    autoLeave: cs.autoLeave,
  };
}

function confStateBytes(cs: ConfState): number {
  return 24 + 8 * (cs.voters.length + cs.learners.length + cs.votersOutgoing.length + cs.learnersNext.length);
}
