import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Changer } from '../../src/confchange/changer';
import { restoreConfState } from '../../src/confchange/restore';
import { ConfChangeError } from '../../src/errors';
import { ProgressTracker, describeTrackerConfig } from '../../src/tracker/progress-tracker';
import { ConfChangeType } from '../../src/types';
import type { ConfChangeSingle, ConfState } from '../../src/types';

const v = (id: number): ConfChangeSingle => ({ changeType: ConfChangeType.AddNode, nodeId: id });
const l = (id: number): ConfChangeSingle => ({ changeType: ConfChangeType.AddLearnerNode, nodeId: id });
const r = (id: number): ConfChangeSingle => ({ changeType: ConfChangeType.RemoveNode, nodeId: id });

/** Tracker wraps a ProgressTracker and applies changer results to it, like raft's switchToConfig. */
class Tracker {
  readonly t = new ProgressTracker(10, 0);
  lastIndex = 10;
  private run(f: (c: Changer) => ReturnType<Changer['simple']>): string {
    const res = f(new Changer(this.t, this.lastIndex));
    this.t.setConfig(res.config, res.progress);
    return this.describe();
  }
  simple(...ccs: ConfChangeSingle[]): string {
    return this.run((c) => c.simple(ccs));
  }
  enter(autoLeave: boolean, ...ccs: ConfChangeSingle[]): string {
    return this.run((c) => c.enterJoint(autoLeave, ccs));
  }
  leave(): string {
    return this.run((c) => c.leaveJoint());
  }
  describe(): string {
    const prs = this.t.ids.map((id) => `${id}:${this.t.progress.get(id)!.isLearner ? 'L' : 'V'}@${this.t.progress.get(id)!.next}`);
    return `${describeTrackerConfig(this.t.config)} | ${prs.join(' ')}`;
  }
}

describe('confchange Changer', () => {
  it('simple: adds voters and learners one at a time, initializing progress at lastIndex', () => {
    const t = new Tracker();
    expect(t.simple(v(1))).toBe('voters=(1) | 1:V@10');
    t.lastIndex = 15;
    expect(t.simple(v(2))).toBe('voters=(1 2) | 1:V@10 2:V@15');
    expect(t.simple(l(3))).toBe('voters=(1 2) learners=(3) | 1:V@10 2:V@15 3:L@15');
    // Promoting a learner and demoting a voter keep the existing progress.
    expect(t.simple(v(3))).toBe('voters=(1 2 3) | 1:V@10 2:V@15 3:V@15');
    expect(t.simple(l(2))).toBe('voters=(1 3) learners=(2) | 1:V@10 2:L@15 3:V@15');
    expect(t.simple(r(2))).toBe('voters=(1 3) | 1:V@10 3:V@15');
    // Removing an unknown node and changes to node 0 are no-ops.
    expect(t.simple(r(9), v(0))).toBe('voters=(1 3) | 1:V@10 3:V@15');
  });

  it('simple: refuses to change more than one voter or to remove all voters', () => {
    const t = new Tracker();
    t.simple(v(1));
    t.simple(v(2));
    t.simple(v(3));
    expect(() => t.simple(v(4), v(5))).toThrow(/more than one voter changed/);
    expect(() => t.simple(r(1), r(2))).toThrow(ConfChangeError);
    // Adding learners alongside one voter change is fine.
    expect(t.simple(v(4), l(5), l(6))).toBe('voters=(1 2 3 4) learners=(5 6) | 1:V@10 2:V@10 3:V@10 4:V@10 5:L@10 6:L@10');
    const t2 = new Tracker();
    t2.simple(v(1));
    expect(() => t2.simple(r(1))).toThrow(/removed all voters/);
    expect(() => t2.simple({ changeType: 7 as ConfChangeType, nodeId: 2 })).toThrow(/unexpected conf change type/);
  });

  it('enterJoint / leaveJoint: replace voters, demote to learnersNext, auto-leave flag', () => {
    const t = new Tracker();
    t.simple(v(1));
    t.simple(v(2));
    t.simple(v(3));
    expect(t.enter(true, r(2), v(4), l(3))).toBe(
      'voters=(1 4)&&(1 2 3) learners_next=(3) autoleave | 1:V@10 2:V@10 3:V@10 4:V@10',
    );
    expect(() => t.enter(false, v(5))).toThrow(/already joint/);
    expect(() => t.simple(v(5))).toThrow(/in joint config/);
    expect(t.leave()).toBe('voters=(1 4) learners=(3) | 1:V@10 3:L@10 4:V@10');
    expect(() => t.leave()).toThrow(/can't leave a non-joint config/);
  });

  it('enterJoint: refuses a zero-voter config and removing every incoming voter', () => {
    const t = new Tracker();
    expect(() => t.enter(false, v(1))).toThrow(/zero-voter/);
    t.simple(v(1));
    expect(() => t.enter(false, r(1))).toThrow(/removed all voters/);
  });

  it('explicit joint config without auto-leave', () => {
    const t = new Tracker();
    t.simple(v(1));
    expect(t.enter(false, v(2), v(3))).toBe('voters=(1 2 3)&&(1) | 1:V@10 2:V@10 3:V@10');
    expect(t.leave()).toBe('voters=(1 2 3) | 1:V@10 2:V@10 3:V@10');
  });
});

describe('confchange restore', () => {
  function roundTrip(cs: ConfState): ConfState {
    const tr = new ProgressTracker(10, 0);
    const res = restoreConfState(new Changer(tr, 10), cs);
    tr.setConfig(res.config, res.progress);
    return tr.confState();
  }

  it('rebuilds simple and joint configurations', () => {
    const simple: ConfState = { voters: [1, 2, 3], learners: [5], votersOutgoing: [], learnersNext: [], autoLeave: false };
    expect(roundTrip(simple)).toEqual(simple);
    const joint: ConfState = { voters: [1, 2, 4], learners: [6], votersOutgoing: [1, 2, 3], learnersNext: [3], autoLeave: true };
    expect(roundTrip(joint)).toEqual(joint);
    const empty: ConfState = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
    expect(roundTrip(empty)).toEqual(empty);
  });

  it('round-trips any valid configuration reached by random changes', () => {
    const changeArb = fc.array(
      fc.record({ changeType: fc.constantFrom(ConfChangeType.AddNode, ConfChangeType.AddLearnerNode, ConfChangeType.RemoveNode), nodeId: fc.integer({ min: 1, max: 6 }) }),
      { minLength: 1, maxLength: 4 },
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('simple', 'enter', 'leave'), changeArb, fc.boolean()), { maxLength: 10 }), (steps) => {
        const t = new Tracker();
        t.simple(v(1));
        for (const [kind, ccs, auto] of steps) {
          try {
            if (kind === 'simple') t.simple(...ccs);
            else if (kind === 'enter') t.enter(auto, ...ccs);
            else t.leave();
          } catch (e) {
            expect(e).toBeInstanceOf(ConfChangeError);
          }
        }
        const cs = t.t.confState();
        expect(roundTrip(cs)).toEqual(cs);
      }),
      { numRuns: 300 },
    );
  });
});
