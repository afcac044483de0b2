import { assert } from './errors';
import { Unstable } from './log-unstable';
import { CompactedError, StorageError, UnavailableError } from './storage';
import type { Storage } from './storage';
import type { Entry, Snapshot } from './types';
import { entrySize, limitSize } from './util';

/**
 * RaftLog is raft's view of the log: durable entries in Storage followed by
 * Unstable ones.
 * Invariants: applied <= applying <= committed; committed <= lastIndex();
 * persisted <= lastIndex().
 */
export class RaftLog {
  readonly storage: Storage;
  unstable: Unstable;
  /** committed is the highest index known to be committed by a quorum. */
  committed: number;
  /** applying is the highest index handed to the host for applying. */
  applying: number;
  /** applied is the highest index the host reported applied. */
  applied: number;
  /** persisted is the highest index known durable in local storage. */
  persisted: number;
  /** maxApplyingEntsSize limits the bytes of committed entries per Ready. */
  maxApplyingEntsSize: number;

  constructor(storage: Storage, maxApplyingEntsSize = Infinity) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applying = first - 1;
    this.applied = first - 1;
    this.persisted = last;
    this.maxApplyingEntsSize = maxApplyingEntsSize === 0 ? 1 : maxApplyingEntsSize;
  }

  toString(): string {
    return `committed=${this.committed}, applied=${this.applied}, applying=${this.applying}, persisted=${this.persisted}, unstable.offset=${this.unstable.offset}, unstable.offsetInProgress=${this.unstable.offsetInProgress}, len(unstable.entries)=${this.unstable.entries.length}`;
  }

  /**
   * maybeAppend appends ents after (index, logTerm) if that entry matches our
   * log, and advances the commit to min(committed, last new index). It
   * returns the last new index, or -1 when the log does not match.
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNewIndex = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, `entry ${ci} conflict with committed entry [committed(${this.committed})]`);
      const start = ci - (index + 1);
      this.append(start === 0 ? ents : ents.slice(start));
    }
    this.commitTo(Math.min(committed, lastNewIndex));
    return lastNewIndex;
  }

  /** append adds entries at the end (truncating a conflicting unstable suffix) and returns lastIndex. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    assert(after >= this.committed, `after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    // Entries after `after` were replaced: whatever was durable there is no
    // longer our log, so it no longer counts as persisted.
    if (this.persisted > after) this.persisted = after;
    return this.lastIndex();
  }

  /**
   * findConflict returns the index of the first entry of ents that is new or
   * conflicts with our log (different term), or 0 if all are present.
   */
  findConflict(ents: Entry[]): number {
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * findConflictByTerm returns the largest index <= index whose term is <=
   * term, with that term (etcd's fast backtracking). If a term is unknown
   * (compacted), it returns that index with term 0.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      const t = this.maybeTerm(index);
      if (t === undefined) return { index, term: 0 };
      if (t <= term) return { index, term: t };
    }
    return { index: 0, term: 0 };
  }

  /** nextUnstableEnts returns the unstable entries not yet handed out. */
  nextUnstableEnts(): Entry[] {
    return this.unstable.nextEntries();
  }

  hasNextUnstableEnts(): boolean {
    return this.unstable.hasNextEntries();
  }

  /** hasNextOrInProgressSnapshot: a snapshot waits to be written or is being written. */
  hasNextOrInProgressSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** hasPendingSnapshot is true while an incoming snapshot is not yet durable. */
  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** applyHi is one past the last index that may be applied: committed and locally durable. */
  private applyHi(): number {
    return (this.committed < this.persisted ? this.committed : this.persisted) + 1;
  }

  /**
   * nextCommittedEnts returns committed, locally durable entries not yet
   * handed out for applying, limited to maxApplyingEntsSize bytes. Nothing is
   * returned while a snapshot is pending: it must be applied first.
   */
  nextCommittedEnts(): Entry[] {
    if (this.hasNextOrInProgressSnapshot()) return [];
    const hi = this.applyHi();
    if (this.applying + 1 >= hi) return [];
    const lo = Math.max(this.applying + 1, this.firstIndex());
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyingEntsSize);
  }

  hasNextCommittedEnts(): boolean {
    if (this.hasNextOrInProgressSnapshot()) return false;
    const hi = this.applyHi();
    if (this.applying + 1 >= hi) return false;
    return Math.max(this.applying + 1, this.firstIndex()) < hi;
  }

  /** snapshot returns the pending unstable snapshot or the storage's snapshot. */
  snapshot(to = 0, requestIndex = 0): Snapshot {
    if (this.unstable.snapshot !== undefined) return this.unstable.snapshot;
    return this.storage.snapshot(requestIndex, to);
  }

  firstIndex(): number {
    const i = this.unstable.maybeFirstIndex();
    return i !== undefined ? i : this.storage.firstIndex();
  }

  lastIndex(): number {
    const i = this.unstable.maybeLastIndex();
    return i !== undefined ? i : this.storage.lastIndex();
  }

  commitTo(tocommit: number): void {
    if (this.committed < tocommit) {
      assert(this.lastIndex() >= tocommit, `tocommit(${tocommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`);
      this.committed = tocommit;
    }
  }

  /** appliedTo records that the host applied up to i. */
  appliedTo(i: number): void {
    if (i === 0) return;
    assert(this.committed >= i && i >= this.applied, `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    this.applied = i;
    if (this.applying < i) this.applying = i;
  }

  /** acceptApplying records that entries up to i were handed out for applying. */
  acceptApplying(i: number): void {
    if (i > this.applying) this.applying = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /**
   * maybePersist advances `persisted` to index if the entry at index still
   * has term t and is no longer unstable (it was not replaced meanwhile).
   */
  maybePersist(index: number, t: number): boolean {
    const firstUpdate = this.unstable.snapshot !== undefined ? this.unstable.snapshot.metadata.index : this.unstable.offset;
    if (index > this.persisted && index < firstUpdate && this.maybeTerm(index) === t) {
      this.persisted = index;
      return true;
    }
    return false;
  }

  maybePersistSnap(index: number): boolean {
    if (index > this.persisted) {
      this.persisted = index;
      return true;
    }
    return false;
  }

  lastTerm(): number {
    const t = this.maybeTerm(this.lastIndex());
    assert(t !== undefined, 'unexpected error when getting the last term');
    return t;
  }

  /**
   * maybeTerm returns the term of entry i, or undefined if i is outside
   * [firstIndex()-1, lastIndex()] (compacted or not yet written).
   */
  maybeTerm(i: number): number | undefined {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    if (i + 1 < this.firstIndex() || i > this.lastIndex()) return undefined;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof StorageError) return undefined;
      throw e;
    }
  }

  /** term returns the term of entry i; throws CompactedError / UnavailableError when out of range. */
  term(i: number): number {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    if (i + 1 < this.firstIndex()) throw new CompactedError();
    if (i > this.lastIndex()) throw new UnavailableError();
    return this.storage.term(i);
  }

  /** zeroTermOnOutOfBounds returns the term of i, or 0 if it is compacted or unavailable. */
  zeroTermOnOutOfBounds(i: number): number {
    const t = this.maybeTerm(i);
    return t === undefined ? 0 : t;
  }

  matchTerm(i: number, term: number): boolean {
    const t = this.maybeTerm(i);
    return t !== undefined && t === term;
  }

  /** isUpToDate: a log ending at (lasti, term) is at least as up-to-date as ours (§5.4.1). */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  /** maybeCommit commits maxIndex if it is from `term` (only current-term entries commit by counting, §5.4.2). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && maxIndex !== Infinity && this.zeroTermOnOutOfBounds(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  /** restore resets the log to a snapshot (which must be past committed). */
  restore(s: Snapshot): void {
    const index = s.metadata.index;
    assert(index >= this.committed, `snapshot ${index} is older than committed ${this.committed}`);
    if (this.persisted > index) this.persisted = index;
    this.committed = index;
    this.unstable.restore(s);
  }

  /** entries returns entries from i on, limited by maxSize bytes. */
  entries(i: number, maxSize?: number): Entry[] {
    const last = this.lastIndex();
    if (i > last) return [];
    return this.slice(i, last + 1, maxSize);
  }

  /** allEntries returns every entry in the log (tests). */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex());
  }

  /**
   * slice returns entries [lo, hi), limited by maxSize bytes (at least one).
   * Throws CompactedError if lo < firstIndex().
   */
  slice(lo: number, hi: number, maxSize?: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    const off = this.unstable.offset;
    if (lo >= off) return limitSize(this.unstable.slice(lo, hi), maxSize);
    const cut = Math.min(hi, off);
    const ents = this.storage.entries(lo, cut, maxSize);
    if (ents.length === 0) return ents;
    if (ents.length < cut - lo) return ents; // hit the size limit (or storage had less)
    if (hi <= off) return ents;
    // Add unstable entries while under the size limit.
    let size = 0;
    for (let k = 0; k < ents.length; k++) size += entrySize(ents[k]!);
    const out = ents.slice(); // never mutate an array the storage may own
    const u = this.unstable.entries;
    for (let idx = off; idx < hi; idx++) {
      const e = u[idx - off]!;
      size += entrySize(e);
      if (maxSize !== undefined && size > maxSize) break;
      out.push(e);
    }
    return out;
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    assert(lo <= hi, `invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new CompactedError();
    const length = this.lastIndex() + 1 - fi;
    assert(hi <= fi + length, `slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }
}
