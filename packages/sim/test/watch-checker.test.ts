import { describe, expect, it } from 'vitest';
import { checkWatches } from '../src/watch/checker';
import type { WatchCommit, WatcherRecord, WatchItemRecord } from '../src/watch/history';

// The watch checker on hand-made histories: each rule it enforces, and
// what it allows (an undetermined transaction either way, but whole and once).

const commits: WatchCommit[] = [
  { id: 1, status: 'ok', commitTs: 10n, writes: [{ key: 'a', value: '1' }, { key: 'b', value: '1' }] },
  { id: 2, status: 'ok', commitTs: 20n, writes: [{ key: 'b', value: '2' }] },
  { id: 3, status: 'fail', writes: [{ key: 'a', value: 'x' }] },
  { id: 4, status: 'info', writes: [{ key: 'a', value: '4' }, { key: 'c', value: '4' }] },
  { id: 5, status: 'ok', commitTs: 40n, writes: [{ key: 'c', value: '5' }] },
];

const put = (key: string, value: string, revision: bigint): WatchItemRecord => ({ type: 'put', key, value, revision });
const progress = (revision: bigint): WatchItemRecord => ({ type: 'progress', revision });
const watcher = (items: WatchItemRecord[], o: Partial<WatcherRecord> = {}): WatcherRecord => ({ id: 0, start: '', end: '', from: 0n, items, resumes: 0, ...o });

/** exact: what a correct watch of everything from 0 delivers when T4 did not commit. */
const exact = [put('a', '1', 10n), put('b', '1', 10n), progress(15n), put('b', '2', 20n), put('c', '5', 40n), progress(50n)];

describe('checkWatches', () => {
  it('passes an exact delivery, and one that stopped early (complete only to its last progress)', () => {
    expect(checkWatches(commits, [watcher(exact)]).ok).toBe(true);
    expect(checkWatches(commits, [watcher(exact.slice(0, 3))]).ok).toBe(true);
  });

  it('passes a watcher on a sub-range from a later revision', () => {
    const r = checkWatches(commits, [watcher([put('b', '2', 20n), progress(45n)], { start: 'b', end: 'c', from: 10n })]);
    expect(r.ok, JSON.stringify(r.failures)).toBe(true);
    expect(r.stats.expected).toBe(1);
  });

  it('reports a missed event with the first divergence (watcher, revision, expected vs delivered)', () => {
    const r = checkWatches(commits, [watcher([put('a', '1', 10n), progress(15n), put('b', '2', 20n), put('c', '5', 40n), progress(50n)])]);
    expect(r.ok).toBe(false);
    expect(r.failures[0]!.kinds).toEqual({ missed: 1 });
    expect(r.failures[0]!.explanation).toMatch(/W0 .*at event #2, revision 10: expected put b=1@10 \(T1\), delivered put b=2@20/);
  });

  it('reports a duplicate and an out-of-order delivery', () => {
    const dup = checkWatches(commits, [watcher([...exact.slice(0, 2), put('b', '1', 10n), ...exact.slice(2)])]);
    expect(dup.failures[0]!.kinds['duplicated']).toBe(1);
    const order = checkWatches(commits, [watcher([put('b', '2', 20n), put('a', '1', 10n), put('b', '1', 10n), put('c', '5', 40n), progress(50n)])]);
    expect(order.failures[0]!.kinds['out-of-order']).toBe(1);
  });

  it('reports a failed transaction delivered, a wrong value, and an event at or below the start', () => {
    const phantom = checkWatches(commits, [watcher([...exact.slice(0, 3), put('a', 'x', 17n), ...exact.slice(3)])]);
    expect(phantom.failures[0]!.kinds['phantom']).toBe(1);
    const wrong = checkWatches(commits, [watcher([put('a', '1', 10n), put('b', 'zz', 10n), ...exact.slice(2)])]);
    expect(wrong.failures[0]!.kinds['wrong-value']).toBe(1);
    const below = checkWatches(commits, [watcher([put('b', '1', 10n), ...exact.slice(2)], { start: 'b', end: 'c', from: 10n })]);
    expect(below.failures[0]!.kinds['at-or-below-start']).toBe(1);
  });

  it('reports progress going backwards and an event at or below an earlier progress', () => {
    const back = checkWatches(commits, [watcher([...exact.slice(0, 3), progress(12n), ...exact.slice(3)])]);
    expect(back.failures[0]!.kinds['progress-backwards']).toBe(1);
    const late = checkWatches(commits, [watcher([put('a', '1', 10n), progress(15n), put('b', '1', 10n), ...exact.slice(3)])]);
    expect(late.failures[0]!.kinds['after-progress']).toBe(1);
  });

  it('allows an undetermined transaction either way, but only whole, once, and at one revision for every watcher', () => {
    const withT4 = [...exact.slice(0, 4), put('a', '4', 30n), put('c', '4', 30n), put('c', '5', 40n), progress(50n)];
    const both = checkWatches(commits, [watcher(withT4), watcher(withT4, { id: 1 })]);
    expect(both.ok, JSON.stringify(both.failures)).toBe(true);
    expect(both.stats.undeterminedPlaced).toBe(1);
    // Half of it: no transaction explains it.
    const half = checkWatches(commits, [watcher([...exact.slice(0, 4), put('a', '4', 30n), put('c', '5', 40n), progress(50n)])]);
    expect(half.failures[0]!.kinds['phantom']).toBe(1);
    // One watcher saw it commit at 30; another, watching c over the same span, did not deliver it.
    const one = checkWatches(commits, [watcher(withT4), watcher([put('c', '5', 40n), progress(50n)], { id: 1, start: 'c', end: 'd' })]);
    expect(one.ok).toBe(false);
    expect(one.failures[0]!.watcher).toBe(1);
    expect(one.failures[0]!.explanation).toMatch(/expected put c=4@30 \(T4\), delivered put c=5@40/);
    // Twice (at two revisions): the second is unexplained.
    const twice = checkWatches(commits, [watcher([...withT4.slice(0, 6), put('a', '4', 35n), put('c', '4', 35n), put('c', '5', 40n), progress(50n)])]);
    expect(twice.ok).toBe(false);
  });
});
