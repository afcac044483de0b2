import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Glob, prefixEnd } from '../src/redis/glob';
import { RespParser, RespProtocolError, encodeCommand, encodeReply, reply, type Protocol, type Reply, type RespLimits } from '../src/redis/resp';
import { ConflictError, RmwCombiner, type CasStore } from '../src/redis/rmw';
import { incrStep } from '../src/redis/commands/strings';
import { getRange } from '../src/redis/commands/strings';
import { parseInt64 } from '../src/redis/context';
import { CursorTable } from '../src/redis/cursor';

// Unit tests of the Redis front's pure parts: the RESP parser (round trips
// at every chunking, fuzzed malformed input), the reply encoder, glob
// matching against a regex model, Redis' integer and GETRANGE rules, the
// SCAN cursor table, and the compare-and-swap combiner against a fake store.

const LIMITS: RespLimits = { maxBulkBytes: 1024, maxArgs: 64, maxCommandBytes: 4096, maxInlineBytes: 256 };

/** parseAll feeds bytes in the given chunk sizes and collects every command (or the protocol error). */
function parseAll(bytes: Buffer, chunkSizes: number[], limits = LIMITS): { commands: string[][]; error?: string } {
  const p = new RespParser(limits);
  const commands: string[][] = [];
  let i = 0;
  let c = 0;
  try {
    while (i < bytes.length) {
      const n = Math.max(1, chunkSizes[c++ % Math.max(1, chunkSizes.length)] ?? bytes.length);
      p.push(bytes.subarray(i, i + n));
      i += n;
      for (let cmd = p.next(); cmd !== null; cmd = p.next()) commands.push(cmd.map((b) => b.toString('latin1')));
    }
  } catch (err) {
    if (!(err instanceof RespProtocolError)) throw err;
    return { commands, error: err.message };
  }
  return { commands };
}

const arg = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1'));
const command = fc.array(arg, { minLength: 1, maxLength: 6 });

describe('RespParser', () => {
  it('parses any sequence of commands back exactly, however the bytes are chunked', () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 10 }), (cmds, chunks) => {
        const bytes = Buffer.concat(cmds.map((c) => encodeCommand(c.map((a) => Buffer.from(a, 'latin1')))));
        const out = parseAll(bytes, chunks);
        expect(out.error).toBeUndefined();
        expect(out.commands).toEqual(cmds);
      }),
      { numRuns: 300 },
    );
  });

  it('a bulk string larger than what one read brings is assembled across pushes', () => {
    const value = Buffer.alloc(1000, 7);
    const out = parseAll(encodeCommand(['SET', 'k', value]), [3, 1, 17, 400, 1]);
    expect(out.commands).toHaveLength(1);
    expect(Buffer.from(out.commands[0]![2]!, 'latin1').equals(value)).toBe(true);
  });

  it('reads inline commands with quotes, and skips empty lines', () => {
    const out = parseAll(Buffer.from('PING\r\n\r\nset k "a b\\n"\nGET  k\r\n'), [2]);
    expect(out.commands).toEqual([['PING'], ['set', 'k', 'a b\n'], ['GET', 'k']]);
    expect(parseAll(Buffer.from('set k "abc\r\n'), [100]).error).toContain('unbalanced quotes');
  });

  it('refuses an oversized bulk from its header, before its bytes arrive', () => {
    const p = new RespParser(LIMITS);
    p.push(Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n'));
    expect(() => p.next()).toThrow(/invalid bulk length 1025/);
  });

  it('refuses too many arguments, a command over the byte limit, and a header line without an end', () => {
    expect(parseAll(Buffer.from('*65\r\n'), [100]).error).toMatch(/invalid multibulk length/);
    const big = encodeCommand(['MSET', ...Array.from({ length: 10 }, () => Buffer.alloc(500))]);
    expect(parseAll(big, [100]).error).toMatch(/command larger than 4096 bytes/);
    expect(parseAll(Buffer.from(`*${'1'.repeat(300)}`), [400]).error).toMatch(/too big multibulk count string/);
    expect(parseAll(Buffer.from('x'.repeat(300)), [400]).error).toMatch(/too big inline request/);
  });

  it('names the malformation: a missing $, a bad length, a bulk without CRLF', () => {
    expect(parseAll(Buffer.from('*1\r\n:5\r\n'), [100]).error).toBe("expected '$', got ':'");
    expect(parseAll(Buffer.from('*1\r\n$x\r\n'), [100]).error).toBe('invalid bulk length');
    expect(parseAll(Buffer.from('*1\r\n$-1\r\n'), [100]).error).toMatch(/invalid bulk length -1/);
    expect(parseAll(Buffer.from('*1\r\n$3\r\nabcde\r\n'), [100]).error).toBe('bulk string not followed by CRLF');
    expect(parseAll(Buffer.from('*1\r\n$3\r\nabc\r\n*0\r\n*-1\r\n'), [100])).toEqual({ commands: [['abc']] });
  });

  it('fuzz: garbage and mutated commands yield commands or a RespProtocolError, never another exception or unbounded buffering', () => {
    const mutated = fc.tuple(fc.array(command, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 })).map(([cmds, edits]) => {
      const b = Buffer.concat(cmds.map((c) => encodeCommand(c.map((a) => Buffer.from(a, 'latin1')))));
      for (const [at, byte] of edits) b[at % b.length] = byte;
      return b;
    });
    const garbage = fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u));
    fc.assert(
      fc.property(fc.oneof(mutated, garbage), fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 8 }), (bytes, chunks) => {
        const out = parseAll(bytes, chunks); // throws (failing the property) on anything but RespProtocolError
        for (const c of out.commands) {
          expect(c.length).toBeLessThanOrEqual(LIMITS.maxArgs);
          expect(c.reduce((n, a) => n + a.length, 0)).toBeLessThanOrEqual(LIMITS.maxCommandBytes + LIMITS.maxInlineBytes);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('encodeReply', () => {
  const enc = (r: Reply, p: Protocol): string => {
    const out: Buffer[] = [];
    encodeReply(r, p, out);
    return Buffer.concat(out).toString('latin1');
  };

  it('writes RESP2 and RESP3 forms of every reply type', () => {
    expect(enc(reply.ok, 2)).toBe('+OK\r\n');
    expect(enc(reply.error('ERR bad\r\nthing'), 2)).toBe('-ERR bad thing\r\n');
    expect(enc(reply.integer(-(2n ** 63n)), 2)).toBe(':-9223372036854775808\r\n');
    expect(enc(reply.bulk('héllo'), 2)).toBe('$6\r\nh\xc3\xa9llo\r\n');
    expect(enc(reply.nil, 2)).toBe('$-1\r\n');
    expect(enc(reply.nil, 3)).toBe('_\r\n');
    expect(enc(reply.array(null), 2)).toBe('*-1\r\n');
    expect(enc(reply.array([reply.integer(1), reply.bulk('a')]), 3)).toBe('*2\r\n:1\r\n$1\r\na\r\n');
    const m = reply.strMap([['proto', reply.integer(3)]]);
    expect(enc(m, 2)).toBe('*2\r\n$5\r\nproto\r\n:3\r\n');
    expect(enc(m, 3)).toBe('%1\r\n$5\r\nproto\r\n:3\r\n');
  });
});

/** globModel: Redis glob as a regular expression over latin1 text (a dumb reference). */
function globModel(pattern: string, s: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '\\' && i + 1 < pattern.length) re += `\\x${pattern.charCodeAt(++i).toString(16).padStart(2, '0')}`;
    else re += `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  }
  return new RegExp(`^${re}$`).test(s);
}

describe('Glob', () => {
  const alphabet = fc.constantFrom('a', 'b', ':', '*', '?', '\\');
  it('matches like a regex model on patterns of literals, *, ? and escapes', () => {
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 8 }).map((a) => a.join('')), fc.array(fc.constantFrom('a', 'b', ':', '*', '?'), { maxLength: 10 }).map((a) => a.join('')), (pattern, s) => {
        expect(new Glob(Buffer.from(pattern, 'latin1')).matches(Buffer.from(s, 'latin1'))).toBe(globModel(pattern, s));
      }),
      { numRuns: 2000 },
    );
  });

  it('classes, negation, ranges and the literal prefix', () => {
    const g = (p: string, s: string): boolean => new Glob(Buffer.from(p)).matches(Buffer.from(s));
    expect(g('h[ae]llo', 'hello')).toBe(true);
    expect(g('h[ae]llo', 'hillo')).toBe(false);
    expect(g('h[^e]llo', 'hallo')).toBe(true);
    expect(g('h[^e]llo', 'hello')).toBe(false);
    expect(g('[a-c]x', 'bx')).toBe(true);
    expect(g('[c-a]x', 'bx')).toBe(true);
    expect(g('user:*', 'user:17')).toBe(true);
    expect(g('user:*', 'users')).toBe(false);
    expect(Buffer.from(new Glob(Buffer.from('user:*:x')).literalPrefix()).toString()).toBe('user:');
    expect(Buffer.from(new Glob(Buffer.from('a\\*b*')).literalPrefix()).toString()).toBe('a*b');
    expect(new Glob(Buffer.from('**')).matchesEverything()).toBe(true);
    expect([...prefixEnd(Buffer.from([0x61, 0xff]))]).toEqual([0x62]);
    expect(prefixEnd(Buffer.from([0xff])).length).toBe(0);
    // The argument is never changed, even a Buffer (whose slice would be a view).
    const prefix = Buffer.from('user:');
    expect(Buffer.from(prefixEnd(prefix)).toString()).toBe('user;');
    expect(prefix.toString()).toBe('user:');
  });
});

describe("Redis' integer and range rules", () => {
  it('parseInt64 accepts exactly the signed 64-bit decimals Redis accepts', () => {
    const ok = (s: string): bigint | null => parseInt64(Buffer.from(s));
    expect(ok('0')).toBe(0n);
    expect(ok('-12')).toBe(-12n);
    expect(ok('9223372036854775807')).toBe(2n ** 63n - 1n);
    expect(ok('-9223372036854775808')).toBe(-(2n ** 63n));
    for (const bad of ['', '-0', '01', '+1', ' 1', '1 ', '1.5', '9223372036854775808', 'abc']) expect(ok(bad), bad).toBeNull();
  });

  it('INCR overflows with an error and leaves the value', () => {
    const r = incrStep(1n)(Buffer.from('9223372036854775807'));
    expect('keep' in r && r.reply).toEqual(reply.error('ERR increment or decrement would overflow'));
    const n = incrStep(5n)(null);
    expect('next' in n && Buffer.from(n.next!).toString()).toBe('5');
  });

  it('GETRANGE index arithmetic', () => {
    const s = Buffer.from('This is a string');
    const r = (a: bigint, b: bigint): string => Buffer.from(getRange(s, a, b)).toString();
    expect(r(0n, 3n)).toBe('This');
    expect(r(-3n, -1n)).toBe('ing');
    expect(r(0n, -1n)).toBe('This is a string');
    expect(r(10n, 100n)).toBe('string');
    expect(r(5n, 3n)).toBe('');
    expect(r(-1n, -5n)).toBe('');
  });
});

describe('CursorTable', () => {
  it('maps cursors to keys, evicts the oldest past its bounds, and forgets expired ones', () => {
    let now = 0;
    const t = new CursorTable({ maxCursors: 2, maxKeyBytes: 100, ttlMs: 1000 }, () => now);
    const a = t.issue(Buffer.from('a'));
    const b = t.issue(Buffer.from('b'));
    expect(Number.isSafeInteger(Number(a))).toBe(true);
    expect(Buffer.from(t.lookup(a)!).toString()).toBe('a');
    t.issue(Buffer.from('c'));
    expect(t.lookup(a)).toBeUndefined();
    expect(Buffer.from(t.lookup(b)!).toString()).toBe('b');
    now = 2000;
    expect(t.lookup(b)).toBeUndefined();
    expect(t.lookup('12345')).toBeUndefined();
  });
});

/** FakeStore: an in-memory CasStore with a hook to let "another writer" change a key between rounds. */
class FakeStore implements CasStore {
  readonly data = new Map<string, Uint8Array>();
  gets = 0;
  cases = 0;
  beforeCas: ((key: string) => void) | undefined;
  async get(key: Uint8Array): Promise<Uint8Array | null> {
    this.gets++;
    await Promise.resolve();
    return this.data.get(Buffer.from(key).toString()) ?? null;
  }
  async cas(key: Uint8Array, expected: Uint8Array | null, value: Uint8Array | null) {
    this.cases++;
    await new Promise((r) => setImmediate(r));
    const k = Buffer.from(key).toString();
    this.beforeCas?.(k);
    const previous = this.data.get(k) ?? null;
    const matches = expected === null ? previous === null : previous !== null && Buffer.compare(previous, expected) === 0;
    if (matches) {
      if (value === null) this.data.delete(k);
      else this.data.set(k, value);
    }
    return { succeeded: matches, previous };
  }
}

describe('RmwCombiner', () => {
  it('combines concurrent INCRs of one key into few CAS rounds, each INCR answered with its own value', async () => {
    const store = new FakeStore();
    const rmw = new RmwCombiner(store);
    const replies = await Promise.all(Array.from({ length: 200 }, () => rmw.run(Buffer.from('n'), incrStep(1n))));
    const values = replies.map((r) => (r.type === 'integer' ? Number(r.value) : NaN)).sort((a, b) => a - b);
    expect(values).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(Buffer.from(store.data.get('n')!).toString()).toBe('200');
    expect(store.cases).toBeLessThanOrEqual(3);
  });

  it('a CAS that loses to another writer is recomputed from the value it found', async () => {
    const store = new FakeStore();
    store.data.set('n', Buffer.from('10'));
    let interfere = 2;
    store.beforeCas = (k) => {
      if (interfere-- > 0) store.data.set(k, Buffer.from(String(Number(Buffer.from(store.data.get(k)!).toString()) + 100)));
    };
    const rmw = new RmwCombiner(store);
    const r = await rmw.run(Buffer.from('n'), incrStep(1n));
    expect(r).toEqual(reply.integer(211n));
    expect(rmw.stats.casConflicts).toBe(2);
  });

  it('gives up with ConflictError after maxRounds, applying nothing', async () => {
    const store = new FakeStore();
    store.data.set('n', Buffer.from('1'));
    store.beforeCas = (k) => store.data.set(k, Buffer.from(String(Number(Buffer.from(store.data.get(k)!).toString()) + 1)));
    const rmw = new RmwCombiner(store, { maxRounds: 4 });
    await expect(rmw.run(Buffer.from('n'), incrStep(1000n))).rejects.toBeInstanceOf(ConflictError);
    expect(Number(Buffer.from(store.data.get('n')!).toString())).toBe(5); // only the interfering writer's four increments
  });

  it('a batch that changes nothing answers from a fresh read, not a remembered value', async () => {
    const store = new FakeStore();
    store.data.set('k', Buffer.from('x'));
    const rmw = new RmwCombiner(store);
    const bad = await rmw.run(Buffer.from('k'), incrStep(1n));
    expect(bad).toEqual(reply.error('ERR value is not an integer or out of range'));
    expect(store.cases).toBe(0);
    expect(store.gets).toBe(1);
  });
});
