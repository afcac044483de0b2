import { describe, expect, it } from 'vitest';
import { makeMessage } from '../../src/raft';
import { MessageType } from '../../src/types';
import { ENTRY_OVERHEAD_BYTES, describeHardState, describeMessage, limitSize, newSeededRandom } from '../../src/util';
import { entry } from './network';

describe('util', () => {
  it('limitSize keeps at least one entry and never exceeds the limit otherwise', () => {
    const ents = [entry(1, 1, 'aaaa'), entry(2, 1, 'bbbb'), entry(3, 1, 'cccc')];
    const one = 4 + ENTRY_OVERHEAD_BYTES;
    expect(limitSize(ents, undefined)).toBe(ents);
    expect(limitSize(ents, 0).length).toBe(1);
    expect(limitSize(ents, one).length).toBe(1);
    expect(limitSize(ents, 2 * one).length).toBe(2);
    expect(limitSize(ents, 3 * one - 1).length).toBe(2);
    expect(limitSize(ents, 3 * one)).toBe(ents); // nothing cut: no copy
    expect(limitSize([], 0)).toEqual([]);
  });

  it('newSeededRandom is deterministic and in [0, 1)', () => {
    const a = newSeededRandom(7);
    const b = newSeededRandom(7);
    const c = newSeededRandom(8);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(c()).not.toBe(xs[0]);
    for (const x of xs) {
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
    }
    // Spread: every tenth of [0,1) is hit.
    expect(new Set(xs.map((x) => Math.floor(x * 10))).size).toBe(10);
  });

  it('describeMessage uses a stable etcd-like format', () => {
    const m = makeMessage(MessageType.MsgApp, 2);
    Object.assign(m, { from: 1, term: 3, logTerm: 2, index: 5, commit: 4, entries: [entry(6, 3, 'foo')] });
    expect(describeMessage(m)).toBe('1->2 MsgApp Term:3 Log:2/5 Commit:4 Entries:[3/6 EntryNormal "foo"]');
    const r = makeMessage(MessageType.MsgAppResp, 1);
    Object.assign(r, { from: 2, term: 3, index: 5, reject: true, rejectHint: 4, logTerm: 2 });
    expect(describeMessage(r)).toBe('2->1 MsgAppResp Term:3 Log:2/5 Rejected (Hint: 4)');
    expect(describeHardState({ term: 1, vote: 2, commit: 3 })).toBe('Term:1 Vote:2 Commit:3');
  });
});
