import { describe, expect, it } from 'vitest';
import { Inflights } from '../../src/tracker/inflights';
import { Progress, ProgressState } from '../../src/tracker/progress';

describe('Inflights', () => {
  it('adds, frees up to an index and wraps around the ring', () => {
    const in1 = new Inflights(10);
    for (let i = 0; i < 5; i++) in1.add(i, 100);
    expect(in1.count()).toBe(5);
    expect(in1.bytes()).toBe(500);
    in1.freeLE(1);
    expect(in1.count()).toBe(3);
    expect(in1.bytes()).toBe(300);
    for (let i = 5; i < 12; i++) in1.add(i, 10);
    expect(in1.full()).toBe(true);
    expect(() => in1.add(12, 1)).toThrow(/full/);
    in1.freeLE(8);
    expect(in1.count()).toBe(3);
    expect(in1.full()).toBe(false);
    in1.freeLE(100);
    expect(in1.count()).toBe(0);
    expect(in1.bytes()).toBe(0);
  });

  it('ignores stale frees and frees the first one', () => {
    const in1 = new Inflights(4);
    in1.add(10, 1);
    in1.add(20, 2);
    in1.freeLE(5);
    expect(in1.count()).toBe(2);
    in1.freeFirstOne();
    expect(in1.count()).toBe(1);
    expect(in1.bytes()).toBe(2);
  });

  it('is full when the byte budget is used up, even with free slots', () => {
    const in1 = new Inflights(100, 1000);
    in1.add(1, 600);
    expect(in1.full()).toBe(false);
    in1.add(2, 400);
    expect(in1.full()).toBe(true);
    in1.freeLE(1);
    expect(in1.full()).toBe(false);
  });

  it('reset empties it', () => {
    const in1 = new Inflights(2);
    in1.add(1, 1);
    in1.add(2, 1);
    in1.reset();
    expect(in1.count()).toBe(0);
    expect(in1.full()).toBe(false);
  });
});

function newProgress(state: ProgressState, match: number, next: number, size = 256): Progress {
  const p = new Progress(next, new Inflights(size), false, match);
  if (state === ProgressState.Replicate) {
    p.becomeReplicate();
    p.next = next;
  } else if (state === ProgressState.Snapshot) p.becomeSnapshot(0);
  return p;
}

describe('Progress', () => {
  it('becomeProbe from Replicate and Snapshot picks the right next', () => {
    const p = newProgress(ProgressState.Replicate, 1, 5);
    p.becomeProbe();
    expect([p.state, p.match, p.next]).toEqual([ProgressState.Probe, 1, 2]);

    const s = new Progress(5, new Inflights(8), false, 1);
    s.becomeSnapshot(10);
    s.becomeProbe();
    expect([s.state, s.match, s.next]).toEqual([ProgressState.Probe, 1, 11]);

    const s2 = new Progress(5, new Inflights(8), false, 1);
    s2.becomeSnapshot(0);
    s2.becomeProbe();
    expect([s2.state, s2.next]).toEqual([ProgressState.Probe, 2]);
  });

  it('becomeReplicate sets next = match + 1', () => {
    const p = new Progress(5, new Inflights(8), false, 1);
    p.becomeReplicate();
    expect([p.state, p.match, p.next]).toEqual([ProgressState.Replicate, 1, 2]);
  });

  it('maybeUpdate raises match and next, never lowers them', () => {
    const prevM = 3;
    const prevN = 5;
    const cases = [
      { update: prevM - 1, wm: prevM, wn: prevN, ok: false },
      { update: prevM, wm: prevM, wn: prevN, ok: false },
      { update: prevM + 1, wm: prevM + 1, wn: prevN, ok: true },
      { update: prevM + 2, wm: prevM + 2, wn: prevN + 1, ok: true },
    ];
    for (const tt of cases) {
      const p = new Progress(prevN, new Inflights(8), false, prevM);
      expect(p.maybeUpdate(tt.update)).toBe(tt.ok);
      expect([p.match, p.next]).toEqual([tt.wm, tt.wn]);
    }
  });

  it('maybeDecrTo follows etcd semantics in Probe and Replicate', () => {
    const cases = [
      // replicate: stale rejection
      { state: ProgressState.Replicate, m: 5, n: 10, rejected: 5, last: 5, ok: false, wn: 10 },
      { state: ProgressState.Replicate, m: 5, n: 10, rejected: 4, last: 4, ok: false, wn: 10 },
      // replicate: go back to match+1
      { state: ProgressState.Replicate, m: 5, n: 10, rejected: 9, last: 9, ok: true, wn: 6 },
      // probe: rejection not for the probe we sent
      { state: ProgressState.Probe, m: 0, n: 0, rejected: 0, last: 0, ok: false, wn: 0 },
      // probe: next = min(rejected, last + 1)
      { state: ProgressState.Probe, m: 0, n: 10, rejected: 9, last: 9, ok: true, wn: 9 },
      { state: ProgressState.Probe, m: 0, n: 10, rejected: 9, last: 5, ok: true, wn: 6 },
      // probe: next never drops below match+1
      { state: ProgressState.Probe, m: 3, n: 10, rejected: 9, last: 0, ok: true, wn: 4 },
    ];
    for (const tt of cases) {
      const p = newProgress(tt.state, tt.m, tt.n);
      expect(p.maybeDecrTo(tt.rejected, tt.last), JSON.stringify(tt)).toBe(tt.ok);
      expect(p.match).toBe(tt.m);
      expect(p.next, JSON.stringify(tt)).toBe(tt.wn);
    }
  });

  it('isPaused: probe pauses after one send, replicate when the window is full, snapshot always', () => {
    const p = new Progress(1, new Inflights(2), false, 0);
    expect(p.isPaused()).toBe(false);
    p.sentEntries(1, 10);
    expect(p.isPaused()).toBe(true);
    p.maybeUpdate(1); // the answer unpauses
    expect(p.isPaused()).toBe(false);

    p.becomeReplicate();
    p.sentEntries(1, 10);
    expect(p.isPaused()).toBe(false);
    p.sentEntries(1, 10);
    expect(p.isPaused()).toBe(true);
    expect(p.next).toBe(4);
    p.inflights.freeLE(2);
    expect(p.isPaused()).toBe(false);

    p.becomeSnapshot(10);
    expect(p.isPaused()).toBe(true);
  });

  it('canBumpCommit tracks the commit index already sent', () => {
    const p = new Progress(10, new Inflights(2), false, 5);
    expect(p.canBumpCommit(3)).toBe(true);
    p.sentCommitTo(3);
    expect(p.canBumpCommit(3)).toBe(false);
    expect(p.canBumpCommit(7)).toBe(true);
    p.sentCommitTo(9);
    expect(p.canBumpCommit(12)).toBe(false); // nothing more to tell: sentCommit reached next-1
  });
});
