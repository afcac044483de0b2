import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/memory-storage';
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from '../../src/storage';
import type { Entry } from '../../src/types';
import { ENTRY_OVERHEAD_BYTES } from '../../src/util';
import { entry } from './network';

function storageWith(ents: [number, number][]): MemoryStorage {
  // Build a storage whose dummy entry is ents[0] (etcd's tests write ents directly).
  const s = new MemoryStorage({ voters: [1] });
  const [i0, t0] = ents[0]!;
  if (i0 > 0) s.applySnapshot({ data: new Uint8Array(0), metadata: { index: i0, term: t0, confState: { voters: [1], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } } });
  s.append(ents.slice(1).map(([i, t]) => entry(i, t)));
  return s;
}

const pairs = (es: Entry[]): [number, number][] => es.map((e) => [e.index, e.term]);

describe('MemoryStorage', () => {
  it('keeps a dummy entry: firstIndex/lastIndex and term around it', () => {
    const s = storageWith([[3, 3], [4, 4], [5, 5]]);
    expect(s.firstIndex()).toBe(4);
    expect(s.lastIndex()).toBe(5);
    expect(s.term(3)).toBe(3); // the dummy's term is kept
    expect(s.term(5)).toBe(5);
    expect(() => s.term(2)).toThrow(CompactedError);
    expect(() => s.term(6)).toThrow(UnavailableError);
    const fresh = new MemoryStorage();
    expect([fresh.firstIndex(), fresh.lastIndex(), fresh.term(0)]).toEqual([1, 0, 0]);
  });

  it('entries: [lo, hi) with typed errors and a size limit that returns at least one entry', () => {
    const s = storageWith([[3, 3], [4, 4], [5, 5], [6, 6]]);
    expect(() => s.entries(2, 6)).toThrow(CompactedError);
    expect(() => s.entries(3, 4)).toThrow(CompactedError); // the dummy is never returned
    expect(pairs(s.entries(4, 5))).toEqual([[4, 4]]);
    expect(pairs(s.entries(4, 7))).toEqual([[4, 4], [5, 5], [6, 6]]);
    expect(() => s.entries(4, 8)).toThrow(UnavailableError);
    expect(pairs(s.entries(4, 7, 0))).toEqual([[4, 4]]);
    expect(pairs(s.entries(4, 7, 2 * ENTRY_OVERHEAD_BYTES))).toEqual([[4, 4], [5, 5]]);
    expect(pairs(s.entries(4, 7, 2 * ENTRY_OVERHEAD_BYTES - 1))).toEqual([[4, 4]]);
    expect(() => new MemoryStorage().entries(1, 1)).toThrow(UnavailableError);
  });

  it('compact moves the dummy entry forward', () => {
    const s = storageWith([[3, 3], [4, 4], [5, 5]]);
    expect(() => s.compact(2)).toThrow(CompactedError);
    expect(() => s.compact(3)).toThrow(CompactedError);
    s.compact(4);
    expect([s.firstIndex(), s.lastIndex(), s.term(4)]).toEqual([5, 5, 4]);
    expect(() => s.compact(9)).toThrow(/out of bound/);
  });

  it('append truncates conflicts, ignores compacted prefixes and refuses gaps', () => {
    const cases: { ents: [number, number][]; want: [number, number][] | 'gap' }[] = [
      { ents: [[1, 1], [2, 2]], want: [[3, 3], [4, 4], [5, 5]] },
      { ents: [[3, 3], [4, 4], [5, 5]], want: [[3, 3], [4, 4], [5, 5]] },
      { ents: [[3, 3], [4, 6], [5, 6]], want: [[3, 3], [4, 6], [5, 6]] },
      { ents: [[3, 3], [4, 4], [5, 5], [6, 5]], want: [[3, 3], [4, 4], [5, 5], [6, 5]] },
      // Truncate incoming entries below the first index, then append.
      { ents: [[2, 3], [3, 3], [4, 5]], want: [[3, 3], [4, 5]] },
      // Truncate existing entries and append.
      { ents: [[4, 5]], want: [[3, 3], [4, 5]] },
      // Direct append.
      { ents: [[6, 5]], want: [[3, 3], [4, 4], [5, 5], [6, 5]] },
      { ents: [[7, 5]], want: 'gap' },
    ];
    for (const tt of cases) {
      const s = storageWith([[3, 3], [4, 4], [5, 5]]);
      const ents = tt.ents.map(([i, t]) => entry(i, t));
      if (tt.want === 'gap') {
        expect(() => s.append(ents)).toThrow(/missing log entry/);
        continue;
      }
      s.append(ents);
      expect([[s.firstIndex() - 1, s.term(s.firstIndex() - 1)], ...pairs(s.entries(s.firstIndex(), s.lastIndex() + 1))], JSON.stringify(tt)).toEqual(tt.want);
    }
  });

  it('createSnapshot and applySnapshot, refusing out-of-date snapshots', () => {
    const s = storageWith([[3, 3], [4, 4], [5, 5]]);
    const cs = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    const data = new Uint8Array([1, 2, 3]);
    const snap = s.createSnapshot(4, cs, data);
    expect(snap.metadata).toEqual({ index: 4, term: 4, confState: cs });
    expect(s.snapshot(0, 0)).toBe(snap);
    expect(() => s.createSnapshot(3, cs)).toThrow(SnapshotOutOfDateError);
    expect(() => s.createSnapshot(4, cs)).toThrow(SnapshotOutOfDateError);
    expect(s.initialState().confState).toEqual(cs);

    const s2 = new MemoryStorage();
    s2.applySnapshot({ data, metadata: { index: 4, term: 4, confState: cs } });
    expect([s2.firstIndex(), s2.lastIndex(), s2.term(4)]).toEqual([5, 4, 4]);
    expect(() => s2.applySnapshot({ data, metadata: { index: 3, term: 3, confState: cs } })).toThrow(SnapshotOutOfDateError);
  });

  it('initialState reports the hard state and membership', () => {
    const s = new MemoryStorage({ voters: [1, 2] });
    s.setHardState({ term: 3, vote: 2, commit: 0 });
    expect(s.initialState()).toEqual({
      hardState: { term: 3, vote: 2, commit: 0 },
      confState: { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false },
    });
  });
});
