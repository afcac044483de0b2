import { assert } from './errors';
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from './storage';
import type { RaftState, Storage } from './storage';
import { emptyConfState } from './types';
import type { ConfState, Entry, HardState, Snapshot } from './types';
import { limitSize } from './util';

function dummyEntry(index: number, term: number): Entry {
  return { entryType: 0, term, index, data: new Uint8Array(0) };
}

/**
 * MemoryStorage is an in-memory Storage for tests and simulations.
 * ents[0] is the dummy entry: its index/term are those of the last
 * compaction or snapshot, and it is never returned by entries().
 */
export class MemoryStorage implements Storage {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot;
  private ents: Entry[];

  /** constructor optionally seeds the membership (like etcd's newTestMemoryStorage(withPeers(...))). */
  constructor(confState?: Partial<ConfState>) {
    this.snap = {
      data: new Uint8Array(0),
      metadata: { confState: { ...emptyConfState(), ...(confState ?? {}) }, index: 0, term: 0 },
    };
    this.ents = [dummyEntry(0, 0)];
  }

  initialState(): RaftState {
    return { hardState: { ...this.hardState }, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  /** setConfState replaces the membership reported by initialState (bootstrap helper). */
  setConfState(cs: ConfState): void {
    this.snap = { ...this.snap, metadata: { ...this.snap.metadata, confState: cs } };
  }

  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new CompactedError();
    if (hi > this.lastIndex() + 1) throw new UnavailableError(`entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    if (this.ents.length === 1) throw new UnavailableError();
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.ents[0]!.index;
    if (i < offset) throw new CompactedError();
    if (i - offset >= this.ents.length) throw new UnavailableError();
    return this.ents[i - offset]!.term;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  snapshot(_requestIndex = 0, _to = 0): Snapshot {
    return this.snap;
  }

  /** applySnapshot replaces the contents with the snapshot; older snapshots throw SnapshotOutOfDateError. */
  applySnapshot(snap: Snapshot): void {
    const index = snap.metadata.index;
    if (this.snap.metadata.index >= index) throw new SnapshotOutOfDateError();
    this.snap = snap;
    this.ents = [dummyEntry(index, snap.metadata.term)];
  }

  /**
   * createSnapshot records a snapshot of the state machine at index i (which
   * must be <= lastIndex). Throws SnapshotOutOfDateError if i is not newer
   * than the current snapshot.
   */
  createSnapshot(i: number, cs?: ConfState, data: Uint8Array = new Uint8Array(0)): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    assert(i <= this.lastIndex(), `snapshot ${i} is out of bound lastindex(${this.lastIndex()})`);
    const offset = this.ents[0]!.index;
    this.snap = {
      data,
      metadata: { index: i, term: this.ents[i - offset]!.term, confState: cs ?? this.snap.metadata.confState },
    };
    return this.snap;
  }

  /**
   * compact discards entries before compactIndex; the entry at compactIndex
   * becomes the dummy. Throws CompactedError if already compacted past it.
   */
  compact(compactIndex: number): void {
    const offset = this.ents[0]!.index;
    if (compactIndex <= offset) throw new CompactedError();
    assert(compactIndex <= this.lastIndex(), `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const i = compactIndex - offset;
    const ents = [dummyEntry(this.ents[i]!.index, this.ents[i]!.term)];
    for (let k = i + 1; k < this.ents.length; k++) ents.push(this.ents[k]!);
    this.ents = ents;
  }

  /**
   * append adds entries, truncating any existing suffix they conflict with.
   * Entries must be contiguous with the log (no gap after lastIndex).
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // all already compacted
    let start = 0;
    if (first > entries[0]!.index) start = first - entries[0]!.index;
    const offset = entries[start]!.index - this.ents[0]!.index;
    assert(offset <= this.ents.length, `missing log entry [last: ${this.lastIndex()}, append at: ${entries[start]!.index}]`);
    if (offset < this.ents.length) this.ents.length = offset;
    for (let k = start; k < entries.length; k++) this.ents.push(entries[k]!);
  }
}
