import type { ConfState, Entry, HardState } from '@flotilla/raft-core';
import { emptyConfState } from '@flotilla/raft-core';
import { assert } from './errors';
import { entrySize } from './log-batch';

/**
 * RegionView is the engine's in-memory picture of one Region's durable raft
 * log: its raft state and a cache of its most recent entries.
 *
 * Invariants:
 * - the log is [truncatedIndex+1, lastIndex]; term(truncatedIndex) is known.
 * - cache holds exactly the entries [cacheFirst, lastIndex] (empty when
 *   cacheFirst > lastIndex); entries below cacheFirst are read from SQLite.
 * - every entry of a write not yet folded into the `entries` table is in the
 *   cache (a pin per such write keeps eviction away from it).
 */
export class RegionView {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  confState: ConfState = emptyConfState();
  truncatedIndex = 0;
  truncatedTerm = 0;
  lastIndex = 0;
  cache: Entry[] = [];
  cacheFirst = 1;
  cacheBytes = 0;
  /** pins: (seq, index) of each unfolded write that appended from `index`. */
  pins: { seq: number; index: number }[] = [];

  constructor(readonly regionId: number) {}

  get firstIndex(): number {
    return this.truncatedIndex + 1;
  }

  /** pinnedFrom is the lowest cached index eviction must keep. */
  pinnedFrom(): number {
    let m = Infinity;
    for (const p of this.pins) if (p.index < m) m = p.index;
    return m;
  }

  /** append puts durable entries into the view; it returns the change in cached bytes. */
  append(entries: readonly Entry[], seq: number): number {
    const first = entries[0]!.index;
    assert(first > this.truncatedIndex && first <= this.lastIndex + 1, `region ${this.regionId}: append at ${first} outside (${this.truncatedIndex}, ${this.lastIndex + 1}]`);
    let delta = 0;
    if (this.cache.length === 0 || first < this.cacheFirst) {
      delta -= this.cacheBytes;
      this.cache = [];
      this.cacheBytes = 0;
      this.cacheFirst = first;
    } else if (first <= this.lastIndex) {
      const cut = first - this.cacheFirst;
      let removed = 0;
      for (let i = cut; i < this.cache.length; i++) removed += entrySize(this.cache[i]!);
      this.cache.length = cut;
      this.cacheBytes -= removed;
      delta -= removed;
    }
    let added = 0;
    for (const e of entries) {
      this.cache.push(e);
      added += entrySize(e);
    }
    this.cacheBytes += added;
    delta += added;
    this.lastIndex = entries[entries.length - 1]!.index;
    this.pins.push({ seq, index: first });
    return delta;
  }

  /** compact moves the truncated point up; it returns the change in cached bytes. */
  compact(truncatedIndex: number, truncatedTerm: number): number {
    if (truncatedIndex <= this.truncatedIndex) return 0;
    assert(truncatedIndex <= this.lastIndex, `region ${this.regionId}: compact to ${truncatedIndex} beyond last index ${this.lastIndex}`);
    this.truncatedIndex = truncatedIndex;
    this.truncatedTerm = truncatedTerm;
    return this.dropCacheBelow(truncatedIndex + 1, true);
  }

  /** applySnapshot replaces the log by a snapshot position; returns the change in cached bytes. */
  applySnapshot(index: number, term: number, confState: ConfState): number {
    const delta = -this.cacheBytes;
    this.truncatedIndex = index;
    this.truncatedTerm = term;
    this.lastIndex = index;
    this.confState = confState;
    this.cache = [];
    this.cacheBytes = 0;
    this.cacheFirst = index + 1;
    this.pins = [];
    return delta;
  }

  /** unpin forgets the pins of writes folded into the tables. */
  unpin(foldedThrough: number): void {
    if (this.pins.length === 0) return;
    this.pins = this.pins.filter((p) => p.seq > foldedThrough);
  }

  /**
   * dropCacheBelow removes cached entries with index < `index` (never pinned
   * ones unless `force`, used when they became unreachable); it returns the
   * (negative) change in cached bytes.
   */
  dropCacheBelow(index: number, force = false): number {
    const limit = force ? index : Math.min(index, this.pinnedFrom());
    const n = Math.min(limit - this.cacheFirst, this.cache.length);
    if (n <= 0) return 0;
    let removed = 0;
    for (let i = 0; i < n; i++) removed += entrySize(this.cache[i]!);
    this.cache.splice(0, n);
    this.cacheFirst += n;
    this.cacheBytes -= removed;
    return -removed;
  }

  /** term returns the term of a cached entry, or undefined. */
  cachedTerm(index: number): number | undefined {
    const i = index - this.cacheFirst;
    if (i < 0 || i >= this.cache.length) return undefined;
    return this.cache[i]!.term;
  }
}

/**
 * evictFront drops unpinned cached entries from the front of a view until at
 * least `bytes` are freed or nothing evictable is left; it returns the bytes freed.
 */
export function evictFront(v: RegionView, bytes: number): number {
  const limit = Math.min(v.pinnedFrom(), v.lastIndex + 1) - v.cacheFirst;
  let n = 0;
  let freed = 0;
  while (n < limit && n < v.cache.length && freed < bytes) {
    freed += entrySize(v.cache[n]!);
    n++;
  }
  if (n === 0) return 0;
  v.cache.splice(0, n);
  v.cacheFirst += n;
  v.cacheBytes -= freed;
  return freed;
}
