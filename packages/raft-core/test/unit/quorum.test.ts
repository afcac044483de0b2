// Model comparison (etcd quorum/quick_test): the optimized committedIndex and
// voteResult are checked against a dumb reference on random inputs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JointConfig } from '../../src/quorum/joint';
import { MajorityConfig } from '../../src/quorum/majority';
import { VoteResult } from '../../src/quorum/types';

/** refCommitted: the largest index i such that a majority acked >= i (brute force over candidates). */
function refCommitted(ids: number[], acked: Map<number, number>): number {
  if (ids.length === 0) return Infinity;
  const candidates = [0, ...ids.map((id) => acked.get(id) ?? 0)];
  let best = 0;
  for (const c of candidates) {
    const n = ids.filter((id) => (acked.get(id) ?? 0) >= c).length;
    if (n > ids.length / 2 && c > best) best = c;
  }
  return best;
}

function refVote(ids: number[], votes: Map<number, boolean>): VoteResult {
  if (ids.length === 0) return VoteResult.Won;
  const yes = ids.filter((id) => votes.get(id) === true).length;
  const no = ids.filter((id) => votes.get(id) === false).length;
  if (yes * 2 > ids.length) return VoteResult.Won;
  if (no * 2 >= ids.length) return VoteResult.Lost;
  return VoteResult.Pending;
}

function refJointVote(a: number[], b: number[], votes: Map<number, boolean>): VoteResult {
  const r1 = refVote(a, votes);
  const r2 = refVote(b, votes);
  if (r1 === VoteResult.Won && r2 === VoteResult.Won) return VoteResult.Won;
  if (r1 === VoteResult.Lost || r2 === VoteResult.Lost) return VoteResult.Lost;
  return VoteResult.Pending;
}

const idsArb = fc.uniqueArray(fc.integer({ min: 1, max: 12 }), { maxLength: 9 });
const ackArb = fc.dictionary(fc.integer({ min: 1, max: 12 }).map(String), fc.integer({ min: 0, max: 20 }));
const voteArb = fc.dictionary(fc.integer({ min: 1, max: 12 }).map(String), fc.boolean());

function toMap<T>(d: Record<string, T>): Map<number, T> {
  return new Map(Object.entries(d).map(([k, v]) => [Number(k), v]));
}

describe('quorum', () => {
  it('majority committedIndex matches the reference', () => {
    fc.assert(
      fc.property(idsArb, ackArb, (ids, ackD) => {
        const acked = toMap(ackD);
        const c = new MajorityConfig(ids);
        expect(c.committedIndex({ ackedIndex: (id) => acked.get(id) })).toBe(refCommitted(ids, acked));
      }),
      { numRuns: 500 },
    );
  });

  it('joint committedIndex is the minimum of both halves', () => {
    fc.assert(
      fc.property(idsArb, idsArb, ackArb, (a, b, ackD) => {
        const acked = toMap(ackD);
        const j = new JointConfig(new MajorityConfig(a), new MajorityConfig(b));
        const want = Math.min(refCommitted(a, acked), refCommitted(b, acked));
        expect(j.committedIndex({ ackedIndex: (id) => acked.get(id) })).toBe(want);
      }),
      { numRuns: 500 },
    );
  });

  it('majority voteResult matches the reference', () => {
    fc.assert(
      fc.property(idsArb, voteArb, (ids, vD) => {
        const votes = toMap(vD);
        expect(new MajorityConfig(ids).voteResult({ vote: (id) => votes.get(id) })).toBe(refVote(ids, votes));
      }),
      { numRuns: 500 },
    );
  });

  it('joint voteResult matches the reference', () => {
    fc.assert(
      fc.property(idsArb, idsArb, voteArb, (a, b, vD) => {
        const votes = toMap(vD);
        const j = new JointConfig(new MajorityConfig(a), new MajorityConfig(b));
        expect(j.voteResult({ vote: (id) => votes.get(id) })).toBe(refJointVote(a, b, votes));
      }),
      { numRuns: 500 },
    );
  });

  it('handles the documented edge cases', () => {
    const none = { ackedIndex: () => undefined };
    expect(new MajorityConfig([]).committedIndex(none)).toBe(Infinity);
    expect(new MajorityConfig([1]).committedIndex({ ackedIndex: () => 5 })).toBe(5);
    expect(new MajorityConfig([1, 2]).committedIndex({ ackedIndex: (id) => (id === 1 ? 5 : 3) })).toBe(3);
    // A joint config with an empty outgoing half behaves like its incoming half.
    const j = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([]));
    expect(j.committedIndex({ ackedIndex: (id) => id * 10 })).toBe(20);
    expect(j.isJoint()).toBe(false);
    expect(new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([3, 4])).ids()).toEqual([1, 2, 3, 4]);
  });
});
