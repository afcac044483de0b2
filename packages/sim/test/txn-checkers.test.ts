import { describe, expect, it } from 'vitest';
import { checkBank } from '../src/txn/bank';
import type { MicroOp, TxnRecord, TxnStatus } from '../src/txn/history';
import { checkListAppend, explainListAppend } from '../src/txn/list-append';

// Hand-built histories for the list-append (Elle-style) and bank checkers:
// one valid history, one per anomaly class, and write skew (G2), which
// snapshot isolation allows and the checker must not report.

/** op parses 'a x 1' (append 1 to x), 'r x 1 2' (read x = [1 2]), 'r x' (read x = []), 'r x ?' (unknown). */
function op(s: string): MicroOp {
  const [f, key, ...rest] = s.split(' ');
  if (f === 'a') return { f: 'append', key: key!, value: Number(rest[0]) };
  return { f: 'r', key: key!, value: rest[0] === '?' ? null : rest.map(Number) };
}

function T(id: number, status: TxnStatus, ...ops: string[]): TxnRecord {
  return { id, process: id, status, ops: ops.map(op) };
}

const types = (h: TxnRecord[]) => checkListAppend(h).anomalies.map((a) => a.type);

describe('list-append checker', () => {
  it('passes a valid serial history, with no cycle at all', () => {
    const h = [T(1, 'ok', 'a x 1', 'a y 1'), T(2, 'ok', 'r x 1', 'a x 2'), T(3, 'ok', 'r x 1 2', 'r y 1', 'a y 2'), T(4, 'ok', 'r y 1 2', 'r x 1 2')];
    const r = checkListAppend(h);
    expect(r.ok, explainListAppend(r)).toBe(true);
    expect(r.allowed).toEqual([]);
    expect(r.stats.edges).toBeGreaterThan(3);
  });

  it('G0: write cycle (T1 before T2 on x, T2 before T1 on y)', () => {
    const h = [T(1, 'ok', 'a x 1', 'a y 2'), T(2, 'ok', 'a x 2', 'a y 1'), T(3, 'ok', 'r x 1 2'), T(4, 'ok', 'r y 1 2')];
    const r = checkListAppend(h);
    expect(types(h)).toEqual(['G0']);
    const g0 = r.anomalies[0]!;
    expect(new Set(g0.txns)).toEqual(new Set([1, 2]));
    expect(g0.edges!.map((e) => e.type)).toEqual(['ww', 'ww']);
    expect(g0.explanation).toContain('T1 -ww(x)-> T2');
  });

  it('G1a: a committed read sees an append of a failed transaction', () => {
    const h = [T(1, 'fail', 'a x 1'), T(2, 'ok', 'r x 1')];
    const r = checkListAppend(h);
    expect(types(h)).toEqual(['G1a']);
    expect(r.anomalies[0]!.txns).toEqual([2, 1]);
  });

  it('G1b: a read ends at a non-final append of another transaction', () => {
    const h = [T(1, 'ok', 'a x 1', 'a x 2'), T(2, 'ok', 'r x 1'), T(3, 'ok', 'r x 1 2')];
    expect(types(h)).toEqual(['G1b']);
  });

  it('G1c: circular information flow through wr edges', () => {
    const h = [T(1, 'ok', 'a x 1', 'r y 1'), T(2, 'ok', 'a y 1', 'r x 1')];
    const r = checkListAppend(h);
    expect(types(h)).toEqual(['G1c']);
    expect(r.anomalies[0]!.edges!.map((e) => e.type)).toEqual(['wr', 'wr']);
  });

  it('G-single: read skew (one rw edge closes the cycle)', () => {
    // T2 saw T1's y but not T1's x.
    const h = [T(1, 'ok', 'a x 1', 'a y 1'), T(2, 'ok', 'r x', 'r y 1'), T(3, 'ok', 'r x 1')];
    const r = checkListAppend(h);
    expect(types(h)).toEqual(['G-single']);
    const a = r.anomalies[0]!;
    expect(a.edges!.filter((e) => e.type === 'rw')).toHaveLength(1);
    expect(a.edges!.find((e) => e.type === 'rw')).toMatchObject({ from: 2, to: 1, key: 'x' });
    expect(a.explanation).toMatch(/T2 -rw\(x\)-> T1 -wr\(y\)-> T2/);
  });

  it('G-single: lost update (both read x empty, both append; the order puts T2 after T1)', () => {
    const h = [T(1, 'ok', 'r x', 'a x 1'), T(2, 'ok', 'r x', 'a x 2'), T(3, 'ok', 'r x 1 2')];
    // T2 read [] yet follows T1: T2 -rw-> T1 -ww-> T2.
    expect(types(h)).toContain('G-single');
  });

  it('G2 (write skew) is allowed under snapshot isolation and not reported as a bug', () => {
    const h = [T(1, 'ok', 'r x', 'r y', 'a x 1'), T(2, 'ok', 'r x', 'r y', 'a y 1'), T(3, 'ok', 'r x 1', 'r y 1')];
    const r = checkListAppend(h);
    expect(r.ok, explainListAppend(r)).toBe(true);
    expect(r.anomalies).toEqual([]);
    expect(r.allowed.map((a) => a.type)).toEqual(['G2']);
    expect(r.allowed[0]!.edges!.map((e) => e.type)).toEqual(['rw', 'rw']);
  });

  it('incompatible order: two reads of a key that are not prefixes of each other', () => {
    const h = [T(1, 'ok', 'a x 1'), T(2, 'ok', 'a x 2'), T(3, 'ok', 'r x 1'), T(4, 'ok', 'r x 2')];
    const r = checkListAppend(h);
    expect(types(h)).toEqual(['incompatible-order']);
    expect(r.anomalies[0]!.explanation).toContain('key x');
  });

  it('lost append: a transaction that began after an append was acknowledged does not see it', () => {
    const h = [{ ...T(1, 'ok', 'a x 1'), invokeTime: 1, returnTime: 2 }, { ...T(2, 'ok', 'r x'), invokeTime: 3, returnTime: 4 }];
    expect(types(h)).toEqual(['lost-append']);
    // Concurrent: not a violation.
    const c = [{ ...T(1, 'ok', 'a x 1'), invokeTime: 1, returnTime: 4 }, { ...T(2, 'ok', 'r x'), invokeTime: 3, returnTime: 5 }];
    expect(checkListAppend(c).ok).toBe(true);
  });

  it('internal, duplicate and unknown values', () => {
    expect(types([T(1, 'ok', 'a x 1', 'r x')])).toEqual(['internal']);
    expect(new Set(types([T(1, 'ok', 'r x 1', 'a x 2', 'r x 1 2')]))).toEqual(new Set(['unknown-value']));
    expect(types([T(1, 'ok', 'a x 1'), T(2, 'ok', 'r x 1 1')])).toEqual(['duplicate-elements']);
  });

  it('an undetermined transaction may have committed: reading its append is fine, and so is never seeing it', () => {
    expect(checkListAppend([T(1, 'info', 'a x 1'), T(2, 'ok', 'r x 1')]).ok).toBe(true);
    expect(checkListAppend([T(1, 'info', 'a x 1'), T(2, 'ok', 'r x')]).ok).toBe(true);
    // Its reads are unknown: they give no edge.
    expect(checkListAppend([T(1, 'info', 'r x ?', 'a y 1'), T(2, 'ok', 'r y 1')]).ok).toBe(true);
  });

  it('refuses a history that appends one value twice to a key', () => {
    expect(() => checkListAppend([T(1, 'ok', 'a x 1'), T(2, 'ok', 'a x 1')])).toThrow(/appended to x twice/);
  });

  it('finds a cycle in a large history fast (a long chain closed at the end)', () => {
    const h: TxnRecord[] = [];
    const n = 3000;
    for (let i = 1; i <= n; i++) h.push(T(i, 'ok', `a x ${i}`));
    h.push(T(n + 1, 'ok', `r x ${Array.from({ length: n }, (_, i) => i + 1).join(' ')}`));
    // T1 also appended y after Tn did: ww Tn → T1 closes a G0 cycle through all of them.
    h[0]!.ops.push({ f: 'append', key: 'y', value: 2 });
    h[n - 1]!.ops.push({ f: 'append', key: 'y', value: 1 });
    h.push(T(n + 2, 'ok', 'r y 1 2'));
    const t0 = performance.now();
    const r = checkListAppend(h);
    expect(r.anomalies.map((a) => a.type)).toEqual(['G0']);
    expect(r.anomalies[0]!.edges).toHaveLength(n);
    expect(performance.now() - t0).toBeLessThan(5_000);
  });
});

describe('bank checker', () => {
  const accounts = ['a0', 'a1', 'a2'];
  const read = (txnId: number, ts: bigint, ...b: number[]) => ({ txnId, ts, balances: new Map(b.map((v, i) => [`a${i}`, v])) });

  it('passes reads that sum to the total with no negative balance', () => {
    const r = checkBank(accounts, 30, [read(1, 5n, 10, 10, 10), read(2, 7n, 0, 25, 5)]);
    expect(r).toMatchObject({ ok: true, reads: 2, violations: 0 });
  });

  it('reports the violating read with the lowest ts first, with its total', () => {
    const r = checkBank(accounts, 30, [read(1, 5n, 10, 10, 10), read(2, 9n, 10, 10, 11), read(3, 8n, 5, 10, 10)]);
    expect(r.ok).toBe(false);
    expect(r.violations).toBe(2);
    expect(r.first).toMatchObject({ txnId: 3, ts: 8n, total: 25 });
    expect(r.first!.explanation).toContain('total 25, expected 30');
  });

  it('reports a negative balance even when the total is right, and a missing account', () => {
    expect(checkBank(accounts, 30, [read(1, 1n, -5, 20, 15)]).first!.negative).toEqual(['a0']);
    expect(checkBank(accounts, 30, [read(1, 1n, 15, 15)]).first!.missing).toEqual(['a2']);
  });
});
