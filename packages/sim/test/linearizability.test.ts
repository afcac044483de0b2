import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkKvHistory, checkOperations, kvModel, type KvInput, type KvOperation, type KvOutput } from '../src/linearizability';

let nextClient = 0;
function op(input: KvInput, output: KvOutput | undefined, invokeTime: number, returnTime: number, clientId = nextClient++): KvOperation {
  return { clientId, op: input.type, input, output, invokeTime, returnTime };
}
const put = (key: string, value: string, a: number, b: number) => op({ type: 'put', key, value }, {}, a, b);
const get = (key: string, value: string | null, a: number, b: number) => op({ type: 'get', key }, { value }, a, b);
const del = (key: string, a: number, b: number) => op({ type: 'delete', key }, {}, a, b);
const cas = (key: string, expected: string | null, value: string | null, succeeded: boolean, a: number, b: number) =>
  op({ type: 'cas', key, expected, value }, { succeeded }, a, b);

describe('linearizability: hand-written classics', () => {
  it('a read overlapping a write may see either value', () => {
    expect(checkKvHistory([put('x', '1', 0, 10), get('x', '1', 5, 15)]).verdict).toBe('ok');
    expect(checkKvHistory([put('x', '1', 0, 10), get('x', null, 5, 15)]).verdict).toBe('ok');
  });

  it('a read after a completed write must see it (stale read)', () => {
    expect(checkKvHistory([put('x', '1', 0, 10), get('x', null, 11, 12)]).verdict).toBe('illegal');
  });

  it('two reads after a write cannot go back in time (new-old inversion)', () => {
    // Write of 1 is concurrent with both reads; the first read sees 1, a later one sees the old value.
    const h = [put('x', '0', 0, 1), put('x', '1', 2, 100), get('x', '1', 3, 4), get('x', '0', 5, 6)];
    expect(checkKvHistory(h).verdict).toBe('illegal');
    const ok = [put('x', '0', 0, 1), put('x', '1', 2, 100), get('x', '0', 3, 4), get('x', '1', 5, 6)];
    expect(checkKvHistory(ok).verdict).toBe('ok');
  });

  it('a value that was never written cannot be read', () => {
    expect(checkKvHistory([put('x', '1', 0, 10), get('x', '2', 0, 10)]).verdict).toBe('illegal');
  });

  it('cas: two concurrent cas from the same expected value cannot both succeed', () => {
    const h = [put('x', 'a', 0, 1), cas('x', 'a', 'b', true, 2, 10), cas('x', 'a', 'c', true, 2, 10)];
    expect(checkKvHistory(h).verdict).toBe('illegal');
    const ok = [put('x', 'a', 0, 1), cas('x', 'a', 'b', true, 2, 10), cas('x', 'a', 'c', false, 2, 10), get('x', 'b', 11, 12)];
    expect(checkKvHistory(ok).verdict).toBe('ok');
  });

  it('cas that failed although the value matched is illegal', () => {
    expect(checkKvHistory([put('x', 'a', 0, 1), cas('x', 'a', 'b', false, 2, 3)]).verdict).toBe('illegal');
    // previous must be the value seen.
    const h = [put('x', 'a', 0, 1), op({ type: 'cas', key: 'x', expected: 'z', value: 'b' }, { succeeded: false, previous: 'q' }, 2, 3)];
    expect(checkKvHistory(h).verdict).toBe('illegal');
  });

  it('delete then get sees absent; cas with expected null creates', () => {
    const h = [put('x', '1', 0, 1), del('x', 2, 3), get('x', null, 4, 5), cas('x', null, '2', true, 6, 7), get('x', '2', 8, 9)];
    expect(checkKvHistory(h).verdict).toBe('ok');
  });

  it('a write with unknown outcome may have happened ...', () => {
    const h = [put('x', '1', 0, 1), op({ type: 'put', key: 'x', value: '2' }, undefined, 2, Infinity), get('x', '2', 50, 51)];
    expect(checkKvHistory(h).verdict).toBe('ok');
  });

  it('... or not, but not before it was invoked, and not twice', () => {
    const notYet = [put('x', '1', 0, 1), get('x', '2', 2, 3), op({ type: 'put', key: 'x', value: '2' }, undefined, 10, Infinity)];
    expect(checkKvHistory(notYet).verdict).toBe('illegal');
    const never = [put('x', '1', 0, 1), op({ type: 'put', key: 'x', value: '2' }, undefined, 2, Infinity), get('x', '1', 50, 51)];
    expect(checkKvHistory(never).verdict).toBe('ok');
    // It takes effect at most once: 2 then 1 then 2 again would need two applications.
    const twice = [
      put('x', '1', 0, 1),
      op({ type: 'put', key: 'x', value: '2' }, undefined, 2, Infinity),
      get('x', '2', 10, 11),
      put('x', '1', 12, 13),
      get('x', '2', 14, 15),
    ];
    expect(checkKvHistory(twice).verdict).toBe('illegal');
  });

  it('keys are independent (per-key partitions), and a bad key names itself', () => {
    const h = [put('x', '1', 0, 1), put('y', '1', 0, 1), get('y', null, 5, 6), get('x', '1', 5, 6)];
    const r = checkKvHistory(h);
    expect(r.verdict).toBe('illegal');
    expect(r.partitions.find((p) => p.verdict === 'illegal')?.partition).toBe('y');
  });

  it('the work bound turns a huge search into unknown, not a hang', () => {
    // Many concurrent writes of distinct values and reads that cannot be explained:
    // the bound stops the search.
    const h: KvOperation[] = [];
    for (let i = 0; i < 40; i++) h.push(put('x', String(i), 0, 1000));
    h.push(get('x', 'never', 2000, 2001));
    const r = checkOperations(kvModel, h, 5000);
    expect(r.verdict).toBe('unknown');
    expect(r.steps).toBeLessThanOrEqual(5001);
    // With fewer writes memoisation keeps the same search small enough to finish: illegal.
    const small = [...h.slice(0, 10), h[h.length - 1]!];
    expect(checkOperations(kvModel, small).verdict).toBe('illegal');
    // checkKvHistory's pre-check rejects a read of a value nobody wrote without searching.
    const fast = checkKvHistory(h);
    expect(fast.verdict).toBe('illegal');
    expect(fast.partitions[0]!.steps).toBe(0);
  });

  it('rejects an operation that returns before it starts', () => {
    expect(() => checkKvHistory([put('x', '1', 5, 4)])).toThrow(RangeError);
  });
});

/**
 * randomHistory runs random operations against a sequential register per
 * key: each operation gets a linearization point inside [invoke, return],
 * and outputs come from applying them in point order, so the history is
 * linearizable by construction. Some writes are made indeterminate
 * (return = Infinity, output unknown); of those, some never took effect.
 */
function randomHistory(seed: number, nOps: number, keys: number, clients: number, unknownRate = 0.1): KvOperation[] {
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const values = ['a', 'b', 'c', 'd'];
  type Planned = { clientId: number; input: KvInput; invoke: number; ret: number; point: number; lost: boolean; unknown: boolean };
  const planned: Planned[] = [];
  const clientFree = new Array<number>(clients).fill(0);
  for (let i = 0; i < nOps; i++) {
    const c = Math.floor(rnd() * clients);
    const invoke = clientFree[c]! + Math.floor(rnd() * 5);
    const ret = invoke + 1 + Math.floor(rnd() * 20);
    const point = invoke + rnd() * (ret - invoke);
    const key = `k${Math.floor(rnd() * keys)}`;
    const t = rnd();
    const input: KvInput =
      t < 0.35 ? { type: 'get', key } : t < 0.6 ? { type: 'put', key, value: pick(values) } : t < 0.75 ? { type: 'delete', key } : { type: 'cas', key, expected: rnd() < 0.3 ? null : pick(values), value: rnd() < 0.2 ? null : pick(values) };
    const unknown = input.type !== 'get' && rnd() < unknownRate;
    const lost = unknown && rnd() < 0.5;
    planned.push({ clientId: c, input, invoke, ret, point, lost, unknown });
    // A client with an unknown outcome moves on (it timed out), like a real one.
    clientFree[c] = ret + 1;
  }
  const state = new Map<string, string | null>();
  const outputs = new Map<Planned, KvOutput>();
  for (const p of [...planned].sort((a, b) => a.point - b.point)) {
    if (p.lost) continue;
    const cur = state.get(p.input.key) ?? null;
    const next = kvModel.step(cur, p.input, undefined)!;
    state.set(p.input.key, next);
    const i = p.input;
    outputs.set(p, i.type === 'get' ? { value: cur } : i.type === 'cas' ? { succeeded: cur === i.expected, previous: cur } : {});
  }
  return planned.map((p) => ({
    clientId: p.clientId,
    op: p.input.type,
    input: p.input,
    output: p.unknown ? undefined : outputs.get(p),
    invokeTime: p.invoke,
    returnTime: p.unknown ? Infinity : p.ret,
  }));
}

describe('linearizability: random histories', () => {
  it('histories generated from a sequential execution always pass', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 1, max: 120 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), (seed, n, keys, clients) => {
        const h = randomHistory(seed, n, keys, clients);
        const r = checkKvHistory(h);
        expect(r.verdict).toBe('ok');
      }),
      { numRuns: 300 },
    );
  });

  it('a read of a value never written to its key always fails', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 2, max: 120 }), fc.nat(), (seed, n, which) => {
        const h = randomHistory(seed, n, 3, 4);
        const reads = h.filter((o) => o.input.type === 'get' && o.output !== undefined);
        fc.pre(reads.length > 0);
        const victim = reads[which % reads.length]!;
        victim.output = { value: 'never-written' };
        expect(checkKvHistory(h).verdict).toBe('illegal');
      }),
      { numRuns: 200 },
    );
  });

  it('in a sequential history (one client), any changed read or cas answer fails', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 2, max: 150 }), fc.nat(), (seed, n, which) => {
        const h = randomHistory(seed, n, 2, 1, 0);
        const answers = h.filter((o) => o.input.type === 'get' || o.input.type === 'cas');
        fc.pre(answers.length > 0);
        const victim = answers[which % answers.length]!;
        if (victim.input.type === 'get') {
          const v = victim.output!.value;
          victim.output = { value: v === null ? 'a' : v === 'a' ? null : 'a' };
        } else {
          victim.output = { succeeded: !victim.output!.succeeded };
        }
        expect(checkKvHistory(h).verdict).toBe('illegal');
      }),
      { numRuns: 300 },
    );
  });

  it('a lost acknowledged write is caught: an acked put followed (strictly later) by a read of the previous value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), (seed) => {
        const h = randomHistory(seed, 60, 1, 3, 0);
        const end = Math.max(...h.map((o) => (o.returnTime === Infinity ? o.invokeTime : o.returnTime)));
        h.push({ clientId: 99, op: 'put', input: { type: 'put', key: 'k0', value: 'final' }, output: {}, invokeTime: end + 10, returnTime: end + 11 });
        h.push({ clientId: 99, op: 'get', input: { type: 'get', key: 'k0' }, output: { value: 'a' }, invokeTime: end + 12, returnTime: end + 13 });
        expect(checkKvHistory(h).verdict).toBe('illegal');
      }),
      { numRuns: 100 },
    );
  });
});
