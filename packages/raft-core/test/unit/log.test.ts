import { describe, expect, it } from 'vitest';
import { RaftLog } from '../../src/log';
import { Unstable } from '../../src/log-unstable';
import { MemoryStorage } from '../../src/memory-storage';
import { CompactedError } from '../../src/storage';
import type { Entry, Snapshot } from '../../src/types';
import { entry } from './network';

function ents(pairs: [number, number][]): Entry[] {
  return pairs.map(([i, t]) => entry(i, t));
}
const pairs = (es: Entry[]): [number, number][] => es.map((e) => [e.index, e.term]);

function snap(index: number, term: number): Snapshot {
  return { data: new Uint8Array(0), metadata: { index, term, confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } } };
}

function newLog(stored: [number, number][] = [], unstable: [number, number][] = []): RaftLog {
  const s = new MemoryStorage({ voters: [1] });
  s.append(ents(stored));
  const l = new RaftLog(s);
  if (unstable.length > 0) l.append(ents(unstable));
  return l;
}

describe('RaftLog', () => {
  it('findConflict returns the first new or conflicting index', () => {
    const previous: [number, number][] = [[1, 1], [2, 2], [3, 3]];
    const cases: { ents: [number, number][]; want: number }[] = [
      { ents: [], want: 0 },
      { ents: [[1, 1], [2, 2], [3, 3]], want: 0 },
      { ents: [[2, 2], [3, 3]], want: 0 },
      { ents: [[3, 3]], want: 0 },
      { ents: [[1, 1], [2, 2], [3, 3], [4, 4], [5, 4]], want: 4 },
      { ents: [[4, 4], [5, 4]], want: 4 },
      { ents: [[1, 4], [2, 4]], want: 1 },
      { ents: [[2, 1], [3, 4], [4, 4]], want: 2 },
      { ents: [[3, 1], [4, 2], [5, 4], [6, 4]], want: 3 },
    ];
    for (const tt of cases) expect(newLog([], previous).findConflict(ents(tt.ents)), JSON.stringify(tt)).toBe(tt.want);
  });

  it('findConflictByTerm finds the last index with term <= the given term', () => {
    const cases: { stored: [number, number][]; index: number; term: number; want: number; wantTerm: number }[] = [
      // Log starts from index 1.
      { stored: [[1, 2], [2, 2], [3, 5], [4, 5], [5, 5], [6, 5]], index: 6, term: 5, want: 6, wantTerm: 5 },
      { stored: [[1, 2], [2, 2], [3, 5], [4, 5], [5, 5], [6, 5]], index: 6, term: 4, want: 2, wantTerm: 2 },
      { stored: [[1, 2], [2, 2], [3, 5], [4, 5], [5, 5], [6, 5]], index: 6, term: 1, want: 0, wantTerm: 0 },
      { stored: [[1, 2], [2, 2], [3, 5], [4, 5], [5, 5], [6, 5]], index: 3, term: 2, want: 2, wantTerm: 2 },
    ];
    for (const tt of cases) {
      const l = newLog(tt.stored);
      expect(l.findConflictByTerm(tt.index, tt.term)).toEqual({ index: tt.want, term: tt.wantTerm });
    }
    // A compacted log: below the first index the term is unknown (0).
    const s = new MemoryStorage({ voters: [1] });
    s.applySnapshot(snap(10, 3));
    s.append(ents([[11, 3], [12, 3], [13, 4]]));
    const l = new RaftLog(s);
    expect(l.findConflictByTerm(13, 3)).toEqual({ index: 12, term: 3 });
    // The dummy entry's term (3) is known; below it nothing is.
    expect(l.findConflictByTerm(13, 2)).toEqual({ index: 9, term: 0 });
  });

  it('maybeAppend: matches, conflicts, commit, and refuses to truncate committed entries', () => {
    const previous: [number, number][] = [[1, 1], [2, 2], [3, 3]];
    const cases: { logTerm: number; index: number; committed: number; ents: [number, number][]; wlasti: number; wcommit: number; wlog?: [number, number][] }[] = [
      // not match: term differs / index out of bound
      { logTerm: 2, index: 3, committed: 3, ents: [[4, 4]], wlasti: -1, wcommit: 1 },
      { logTerm: 3, index: 4, committed: 3, ents: [[5, 4]], wlasti: -1, wcommit: 1 },
      // match with the last existing entry
      { logTerm: 3, index: 3, committed: 3, ents: [], wlasti: 3, wcommit: 3 },
      { logTerm: 3, index: 3, committed: 4, ents: [], wlasti: 3, wcommit: 3 }, // never commit beyond the last new index
      { logTerm: 3, index: 3, committed: 2, ents: [], wlasti: 3, wcommit: 2 },
      { logTerm: 3, index: 3, committed: 0, ents: [], wlasti: 3, wcommit: 1 }, // commit does not decrease
      { logTerm: 3, index: 3, committed: 4, ents: [[4, 4]], wlasti: 4, wcommit: 4 },
      { logTerm: 3, index: 3, committed: 5, ents: [[4, 4], [5, 4]], wlasti: 5, wcommit: 5 },
      // match with an entry in the middle, conflicting suffix replaced
      { logTerm: 2, index: 2, committed: 3, ents: [[3, 4]], wlasti: 3, wcommit: 3, wlog: [[1, 1], [2, 2], [3, 4]] },
      { logTerm: 1, index: 1, committed: 3, ents: [[2, 4]], wlasti: 2, wcommit: 2, wlog: [[1, 1], [2, 4]] },
    ];
    for (const tt of cases) {
      const l = newLog([], previous);
      l.commitTo(1);
      expect(l.maybeAppend(tt.index, tt.logTerm, tt.committed, ents(tt.ents)), JSON.stringify(tt)).toBe(tt.wlasti);
      expect(l.committed).toBe(tt.wcommit);
      if (tt.wlog) expect(pairs(l.allEntries())).toEqual(tt.wlog);
    }
    const l = newLog([], previous);
    l.commitTo(2);
    expect(() => l.maybeAppend(0, 0, 3, ents([[1, 4], [2, 4]]))).toThrow(/conflict with committed entry/);
  });

  it('only commits by counting current-term entries', () => {
    const l = newLog([], [[1, 1], [2, 2], [3, 2]]);
    expect(l.maybeCommit(2, 1)).toBe(false);
    expect(l.maybeCommit(3, 2)).toBe(true);
    expect(l.committed).toBe(3);
    expect(l.maybeCommit(Infinity, 2)).toBe(false);
  });

  it('hands out committed entries only up to the persisted index, and none while a snapshot is pending', () => {
    const l = newLog([[1, 1], [2, 1]], [[3, 1], [4, 1]]);
    l.commitTo(4);
    expect(pairs(l.nextCommittedEnts())).toEqual([[1, 1], [2, 1]]);
    expect(l.maybePersist(4, 1)).toBe(false); // still unstable: not durable yet
    (l.storage as MemoryStorage).append(l.unstable.entries);
    l.stableTo(4, 1);
    expect(l.maybePersist(4, 1)).toBe(true);
    expect(pairs(l.nextCommittedEnts())).toEqual([[1, 1], [2, 1], [3, 1], [4, 1]]);
    l.acceptApplying(2);
    expect(pairs(l.nextCommittedEnts())).toEqual([[3, 1], [4, 1]]);
    l.appliedTo(4);
    expect(l.hasNextCommittedEnts()).toBe(false);
    l.restore(snap(10, 2));
    expect(l.hasNextCommittedEnts()).toBe(false);
    expect(l.committed).toBe(10);
    expect(l.lastIndex()).toBe(10);
    expect(l.maybePersist(10, 2)).toBe(false); // a snapshot is persisted with maybePersistSnap
    expect(l.maybePersistSnap(10)).toBe(true);
  });

  it('replacing durable entries lowers the persisted index (they are no longer our log)', () => {
    const l = newLog([[1, 1], [2, 1], [3, 1]]);
    expect(l.persisted).toBe(3);
    expect(l.maybeAppend(1, 1, 0, ents([[2, 2]]))).toBe(2);
    expect(l.persisted).toBe(1);
    l.commitTo(2);
    // Entry 2 (term 2) is committed but not durable: it must not be applied yet.
    expect(pairs(l.nextCommittedEnts())).toEqual([[1, 1]]);
  });

  it('slice spans storage and unstable entries and respects the size limit', () => {
    const l = newLog([[1, 1], [2, 1], [3, 1]], [[4, 2], [5, 2]]);
    expect(pairs(l.slice(2, 6))).toEqual([[2, 1], [3, 1], [4, 2], [5, 2]]);
    expect(pairs(l.slice(4, 6))).toEqual([[4, 2], [5, 2]]);
    expect(pairs(l.slice(2, 6, 0))).toEqual([[2, 1]]);
    expect(() => l.slice(2, 7)).toThrow(/out of bound/);
    l.storage instanceof MemoryStorage && (l.storage as MemoryStorage).compact(2);
    expect(() => l.slice(1, 3)).toThrow(CompactedError);
    expect(() => l.term(0)).toThrow(CompactedError);
    expect(l.term(2)).toBe(1);
    expect(l.zeroTermOnOutOfBounds(99)).toBe(0);
  });

  it('isUpToDate compares last term, then last index (§5.4.1)', () => {
    const l = newLog([], [[1, 1], [2, 2], [3, 3]]);
    expect(l.isUpToDate(2, 4)).toBe(true);
    expect(l.isUpToDate(3, 3)).toBe(true);
    expect(l.isUpToDate(4, 3)).toBe(true);
    expect(l.isUpToDate(2, 3)).toBe(false);
    expect(l.isUpToDate(5, 2)).toBe(false);
  });
});

describe('Unstable', () => {
  it('maybeTerm and indexes with entries and snapshot', () => {
    const u = new Unstable(5);
    u.entries = ents([[5, 1]]);
    expect(u.maybeFirstIndex()).toBeUndefined();
    expect(u.maybeLastIndex()).toBe(5);
    expect(u.maybeTerm(5)).toBe(1);
    expect(u.maybeTerm(4)).toBeUndefined();
    u.snapshot = snap(4, 1);
    expect(u.maybeFirstIndex()).toBe(5);
    expect(u.maybeTerm(4)).toBe(1);
    expect(u.maybeTerm(6)).toBeUndefined();
  });

  it('stableTo drops durable entries unless they were replaced', () => {
    const cases: { entries: [number, number][]; offset: number; index: number; term: number; woffset: number; wlen: number }[] = [
      { entries: [], offset: 0, index: 5, term: 1, woffset: 0, wlen: 0 },
      { entries: [[5, 1]], offset: 5, index: 5, term: 1, woffset: 6, wlen: 0 }, // stable to the first entry
      { entries: [[5, 1], [6, 1]], offset: 5, index: 5, term: 1, woffset: 6, wlen: 1 },
      { entries: [[6, 2]], offset: 6, index: 6, term: 1, woffset: 6, wlen: 1 }, // term mismatch: replaced meanwhile
      { entries: [[5, 1]], offset: 5, index: 4, term: 1, woffset: 5, wlen: 1 }, // old index
      { entries: [[5, 1]], offset: 5, index: 6, term: 1, woffset: 5, wlen: 1 }, // unknown index
    ];
    for (const tt of cases) {
      const u = new Unstable(tt.offset);
      u.entries = ents(tt.entries);
      u.offsetInProgress = tt.offset + tt.entries.length;
      u.stableTo(tt.index, tt.term);
      expect([u.offset, u.entries.length], JSON.stringify(tt)).toEqual([tt.woffset, tt.wlen]);
      expect(u.offsetInProgress).toBeGreaterThanOrEqual(u.offset);
    }
  });

  it('tracks what was handed out (in progress) across truncation', () => {
    const u = new Unstable(5);
    u.truncateAndAppend(ents([[5, 1], [6, 1], [7, 1]]));
    expect(pairs(u.nextEntries())).toEqual([[5, 1], [6, 1], [7, 1]]);
    u.acceptInProgress();
    expect(u.nextEntries()).toEqual([]);
    u.truncateAndAppend(ents([[8, 1]]));
    expect(pairs(u.nextEntries())).toEqual([[8, 1]]);
    u.acceptInProgress();
    // A new leader replaces 7 and 8: they must be handed out again.
    u.truncateAndAppend(ents([[7, 2]]));
    expect(pairs(u.nextEntries())).toEqual([[7, 2]]);
    expect(pairs(u.entries)).toEqual([[5, 1], [6, 1], [7, 2]]);
    // Replace everything from before the offset.
    u.truncateAndAppend(ents([[4, 3]]));
    expect([u.offset, u.offsetInProgress]).toEqual([4, 4]);
    expect(() => u.truncateAndAppend(ents([[9, 3]]))).toThrow(/gap/);
  });

  it('restore replaces everything with a snapshot; stableSnapTo clears it', () => {
    const u = new Unstable(5);
    u.truncateAndAppend(ents([[5, 1]]));
    u.restore(snap(6, 2));
    expect([u.offset, u.offsetInProgress, u.entries.length]).toEqual([7, 7, 0]);
    expect(u.nextSnapshot()).toBeDefined();
    u.acceptInProgress();
    expect(u.nextSnapshot()).toBeUndefined();
    u.stableSnapTo(5);
    expect(u.snapshot).toBeDefined();
    u.stableSnapTo(6);
    expect(u.snapshot).toBeUndefined();
  });
});
