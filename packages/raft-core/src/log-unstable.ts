import { assert } from './errors';
import type { Entry, Snapshot } from './types';

/**
 * Unstable holds what raft has decided to write but the host has not yet
 * made durable: entries from `offset` on and possibly an incoming snapshot.
 * Entries below `offsetInProgress` (and the snapshot, if
 * snapshotInProgress) were already handed out in a Ready and are being
 * written; they are not handed out again.
 * Invariant: offset <= offsetInProgress <= offset + entries.length.
 */
export class Unstable {
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  offset: number;
  offsetInProgress: number;
  snapshotInProgress = false;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** maybeFirstIndex is the first index if a snapshot is pending. */
  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  /** maybeLastIndex is the last index of the unstable entries or snapshot. */
  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== undefined) return this.snapshot.metadata.index;
    return undefined;
  }

  /** maybeTerm returns the term of index i if unstable knows it. */
  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const k = i - this.offset;
    if (k >= this.entries.length) return undefined;
    return this.entries[k]!.term;
  }

  /** nextEntries returns the entries not yet handed out for writing (a copy). */
  nextEntries(): Entry[] {
    const inProgress = this.offsetInProgress - this.offset;
    if (inProgress >= this.entries.length) return [];
    return this.entries.slice(inProgress);
  }

  hasNextEntries(): boolean {
    return this.offsetInProgress - this.offset < this.entries.length;
  }

  /** nextSnapshot returns the snapshot if it was not yet handed out. */
  nextSnapshot(): Snapshot | undefined {
    return this.snapshot === undefined || this.snapshotInProgress ? undefined : this.snapshot;
  }

  /** acceptInProgress marks everything currently unstable as handed out for writing. */
  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot !== undefined) this.snapshotInProgress = true;
  }

  /**
   * stableTo drops entries up to index i once they are durable. It ignores
   * the call if the entry at i has since been replaced (different term).
   */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined || gt !== t || i < this.offset) return;
    const num = i + 1 - this.offset;
    if (num >= this.entries.length) this.entries = [];
    else this.entries = this.entries.slice(num);
    this.offset = i + 1;
    if (this.offsetInProgress < this.offset) this.offsetInProgress = this.offset;
  }

  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === i) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  /** restore replaces everything with an incoming snapshot. */
  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  /** truncateAndAppend appends ents, replacing any conflicting suffix. */
  truncateAndAppend(ents: Entry[]): void {
    const fromIndex = ents[0]!.index;
    const end = this.offset + this.entries.length;
    if (fromIndex === end) {
      // Common case: the new entries directly follow ours.
      for (let k = 0; k < ents.length; k++) this.entries.push(ents[k]!);
    } else if (fromIndex <= this.offset) {
      // The log is being truncated to before our current offset: replace everything.
      this.offset = fromIndex;
      this.offsetInProgress = this.offset;
      this.entries = ents.slice();
    } else {
      // Truncate to fromIndex (exclusive), then append.
      assert(fromIndex < end, `unstable append leaves a gap: ${end} .. ${fromIndex}`);
      const kept = this.entries.slice(0, fromIndex - this.offset);
      for (let k = 0; k < ents.length; k++) kept.push(ents[k]!);
      this.entries = kept;
      if (this.offsetInProgress > fromIndex) this.offsetInProgress = fromIndex;
    }
  }

  /** slice returns entries [lo, hi) which must lie within the unstable entries. */
  slice(lo: number, hi: number): Entry[] {
    assert(lo <= hi && lo >= this.offset && hi <= this.offset + this.entries.length, `unstable.slice[${lo},${hi}) out of bound [${this.offset},${this.offset + this.entries.length}]`);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}
