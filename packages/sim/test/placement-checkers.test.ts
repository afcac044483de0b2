import { describe, expect, it } from 'vitest';
import { checkTso, IdLedger, LeaderRouting, type TsoRecord } from '../src/placement-checkers';

// Each checker of the replicated placement is fed a planted violation (and
// the same history without it), so a checker that cannot fail would fail here.

const tso = (client: number, sentSeq: number, answeredSeq: number, first: bigint, last = first): TsoRecord => ({ client, sentSeq, answeredSeq, first, last });

describe('IdLedger (no ID issued twice)', () => {
  it('passes distinct IDs and repeated answers about the same operator and peer', () => {
    const l = new IdLedger();
    l.observe('store#0', 'allocId', { count: 2 }, { ids: [1, 2] });
    l.observe('store#1', 'askBatchSplit', {}, { ids: [{ newRegionId: 3, newPeerIds: [4, 5, 6] }] });
    const hb = { region: { id: 3 } };
    const op = { operatorId: 7, kind: 'replica', step: { type: 'addLearner', peer: { id: 8, storeId: 2 } } };
    l.observe('store#1', 'regionHeartbeat', hb, { stale: false, operator: op });
    l.observe('store#1', 'regionHeartbeat', hb, { stale: false, operator: op });
    expect(l.violations).toEqual([]);
    expect(l.size).toBe(8);
  });

  it('catches an ID handed out by two allocId answers (a new leader below the old mark)', () => {
    const l = new IdLedger();
    l.observe('store#0', 'allocId', { count: 2 }, { ids: [10, 11] });
    l.observe('store#1', 'allocId', { count: 1 }, { ids: [11] });
    expect(l.violations).toHaveLength(1);
    expect(l.violations[0]).toContain('ID 11 issued twice');
  });

  it('catches a split ID that is also an operator ID or a new peer of another Region', () => {
    const l = new IdLedger();
    l.observe('store#0', 'askBatchSplit', {}, { ids: [{ newRegionId: 20, newPeerIds: [21] }] });
    l.observe('store#0', 'regionHeartbeat', { region: { id: 5 } }, { stale: false, operator: { operatorId: 21, kind: 'replica', step: { type: 'addLearner', peer: { id: 22, storeId: 1 } } } });
    l.observe('store#0', 'regionHeartbeat', { region: { id: 6 } }, { stale: false, operator: { operatorId: 23, kind: 'replica', step: { type: 'addLearner', peer: { id: 22, storeId: 1 } } } });
    expect(l.violations.map((v) => v.split(':')[0])).toEqual(['ID 21 issued twice', 'ID 22 issued twice']);
  });
});

describe('checkTso (linearizable, unique timestamps)', () => {
  it('passes increasing ranges, and concurrent requests answered in any order', () => {
    const h = [tso(0, 1, 2, 10n, 14n), tso(1, 3, 6, 20n, 20n), tso(0, 4, 5, 15n, 19n), tso(1, 7, 8, 21n, 30n)];
    expect(checkTso(h)).toEqual([]);
  });

  it('catches a timestamp below one answered before the request was sent (a new leader below the old bound)', () => {
    const h = [tso(0, 1, 2, 100n, 110n), tso(1, 3, 4, 105n + 10n, 120n), tso(0, 5, 6, 50n, 60n)];
    const v = checkTso(h);
    expect(v.some((x) => x.startsWith('TSO went back: client 0 sent at event 5 and got 50'))).toBe(true);
  });

  it('catches concurrent requests given overlapping ranges (a timestamp issued twice)', () => {
    const h = [tso(0, 1, 4, 10n, 19n), tso(1, 2, 3, 15n, 25n)];
    const v = checkTso(h);
    expect(v).toHaveLength(1);
    expect(v[0]).toContain('issued a timestamp twice');
  });
});

describe('LeaderRouting (routing table on the leader)', () => {
  const e = (version: number, confVer: number) => ({ version, confVer });

  it('passes a leader whose epochs only grow, and a new leader at or above what was committed', () => {
    const r = new LeaderRouting();
    const a = {};
    r.check(100, { leadership: a, member: 'p1', term: 2, regions: [{ id: 1, epoch: e(1, 1) }] });
    r.committed(2, [{ id: 1, epoch: e(2, 1) }]);
    r.check(200, { leadership: a, member: 'p1', term: 2, regions: [{ id: 1, epoch: e(2, 1) }] });
    r.check(300, { leadership: {}, member: 'p2', term: 3, regions: [{ id: 1, epoch: e(2, 3) }] });
    expect(r.violations).toEqual([]);
  });

  it('catches an epoch going back within one leadership', () => {
    const r = new LeaderRouting();
    const a = {};
    r.check(100, { leadership: a, member: 'p1', term: 2, regions: [{ id: 7, epoch: e(3, 2) }] });
    r.check(200, { leadership: a, member: 'p1', term: 2, regions: [{ id: 7, epoch: e(3, 1) }] });
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toContain('Region 7 epoch went back 3/2 -> 3/1');
  });

  it('catches a new leader routing to a Region older than one committed in an earlier term', () => {
    const r = new LeaderRouting();
    r.committed(2, [{ id: 4, epoch: e(5, 1) }]);
    // Committed in a later term than this leader's: a deposed leader may lag it, so it is not held against term 2.
    r.committed(4, [{ id: 9, epoch: e(8, 1) }]);
    r.check(100, { leadership: {}, member: 'p3', term: 3, regions: [{ id: 4, epoch: e(4, 1) }, { id: 9, epoch: e(1, 1) }] });
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toContain('routes Region 4 at epoch 4/1, older than the 5/1 committed by term 2');
  });

  it('reports a broken Region tree (overlap)', () => {
    const r = new LeaderRouting();
    r.check(100, { leadership: {}, member: 'p1', term: 2, regions: [], treeError: 'Regions 2 and 3 overlap' });
    expect(r.violations[0]).toContain('Region tree invariant broken: Regions 2 and 3 overlap');
  });
});
