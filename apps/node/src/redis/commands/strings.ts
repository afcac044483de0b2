import { LIMITS } from '@flotilla/proto';
import { CommandError, NOT_INTEGER, SYNTAX_ERROR, inInt64, intArg, keyArg, parseInt64, upper, valueTooLarge, type CommandDef, type FrontContext } from '../context';
import { reply, type Reply } from '../resp';
import type { Step, StepResult } from '../rmw';
import { needsTxnForExpiry, parseExpiryOption, setWithExpiry, type Expiry } from './expiry';

// String commands. Plain reads and blind writes go straight to the client
// (GET, MGET, SET, MSET); everything that reads a value to decide what to
// write runs as a Step through the RmwCombiner, which makes it atomic with
// compare-and-swap.

const str = (name: string, arity: number, flags: string[], keys: [number, number, number], since: string, summary: string, run: CommandDef['run'], complexity = 'O(1)'): CommandDef => ({
  name,
  arity,
  flags,
  firstKey: keys[0],
  lastKey: keys[1],
  keyStep: keys[2],
  group: 'string',
  since,
  summary,
  complexity,
  run,
});

/** rmw: a single-key read-modify-write command (see CommandDef.keyRmw). */
const rmw = (...a: Parameters<typeof str>): CommandDef => ({ ...str(...a), keyRmw: true });

const ONE_KEY: [number, number, number] = [1, 1, 1];
const ALL_KEYS: [number, number, number] = [1, -1, 1];
const PAIRS: [number, number, number] = [1, -1, 2];

interface SetOptions {
  condition: 'NX' | 'XX' | null;
  get: boolean;
  /** expiry: EX/PX/EXAT/PXAT (a deadline) or KEEPTTL; none: the key stops expiring, as after any SET in Redis. */
  expiry: Expiry;
  /** expiryOption: the option's name as Redis spells it (EX, KEEPTTL...), for the raw keyspace's refusal. */
  expiryOption?: string;
}

/** parseSetOptions reads SET's options with Redis' errors: a repeated or conflicting option is a syntax error, a bad time 'not an integer' or 'invalid expire time'. */
function parseSetOptions(args: Buffer[]): SetOptions {
  const out: SetOptions = { condition: null, get: false, expiry: { kind: 'none' } };
  const now = Date.now();
  for (let i = 3; i < args.length; i++) {
    const opt = upper(args[i]!);
    if (opt === 'NX' || opt === 'XX') {
      if (out.condition !== null && out.condition !== opt) throw new CommandError(SYNTAX_ERROR);
      out.condition = opt;
    } else if (opt === 'GET') out.get = true;
    else {
      const e = parseExpiryOption(args, i, 'set', now);
      if (e === null || e.expiry.kind === 'persist' || out.expiry.kind !== 'none') throw new CommandError(SYNTAX_ERROR);
      out.expiry = e.expiry;
      out.expiryOption = opt;
      i += e.used - 1;
    }
  }
  return out;
}

/** setStep: SET with NX/XX/GET as a read-modify-write step; the write ends the key's expiry (clearTtl). */
function setStep(value: Buffer, o: Omit<SetOptions, 'expiry'>): Step {
  return (current) => {
    const allowed = o.condition === null || (o.condition === 'NX' ? current === null : current !== null);
    const answer = o.get ? reply.bulk(current) : allowed ? reply.ok : reply.nil;
    return allowed ? { next: value, reply: answer, clearTtl: true } : { keep: true, reply: answer };
  };
}

async function set(ctx: FrontContext, args: Buffer[]): Promise<Reply> {
  const key = keyArg(args[1]!);
  const value = args[2]!;
  const o = parseSetOptions(args);
  if (o.expiry.kind !== 'none') {
    if (ctx.keyspace !== 'txn') throw new CommandError(needsTxnForExpiry(`SET ${o.expiryOption ?? 'EX'}`));
    return setWithExpiry(ctx, key, value, o);
  }
  if (o.condition === null && !o.get) {
    await ctx.client.put(key, value);
    return reply.ok;
  }
  return ctx.rmw.run(key, setStep(value, o));
}

/** incrStep adds by to the integer the key holds (absent = 0), with Redis' checks and messages. */
export function incrStep(by: bigint): Step {
  return (current): StepResult => {
    const n = current === null ? 0n : parseInt64(current);
    if (n === null) return { keep: true, reply: reply.error(NOT_INTEGER) };
    const sum = n + by;
    if (!inInt64(sum)) return { keep: true, reply: reply.error('ERR increment or decrement would overflow') };
    return { next: Buffer.from(sum.toString()), reply: reply.integer(sum) };
  };
}

function appendStep(suffix: Buffer): Step {
  return (current) => {
    const length = (current?.length ?? 0) + suffix.length;
    const tooLarge = valueTooLarge(length);
    if (tooLarge) return { keep: true, reply: tooLarge };
    const next = current === null ? suffix : Buffer.concat([current, suffix]);
    return { next, reply: reply.integer(length) };
  };
}

/** setRangeStep overwrites bytes from offset on, padding with zero bytes; an empty value changes nothing (and creates no key). */
function setRangeStep(offset: number, value: Buffer): Step {
  return (current) => {
    const length = current?.length ?? 0;
    if (value.length === 0) return { keep: true, reply: reply.integer(length) };
    const tooLarge = valueTooLarge(offset + value.length);
    if (tooLarge) return { keep: true, reply: tooLarge };
    const next = Buffer.alloc(Math.max(length, offset + value.length));
    if (current) next.set(current);
    next.set(value, offset);
    return { next, reply: reply.integer(next.length) };
  };
}

const getDelStep: Step = (current) => (current === null ? { keep: true, reply: reply.nil } : { next: null, reply: reply.bulk(current) });

/** getRange: Redis' GETRANGE index arithmetic (negative = from the end, clamped, inclusive end). */
export function getRange(v: Uint8Array, startArg: bigint, endArg: bigint): Uint8Array {
  const len = BigInt(v.length);
  let start = startArg;
  let end = endArg;
  if (start < 0n && end < 0n && start > end) return new Uint8Array(0);
  if (start < 0n) start += len;
  if (end < 0n) end += len;
  if (start < 0n) start = 0n;
  if (end < 0n) end = 0n;
  if (end >= len) end = len - 1n;
  if (start > end || len === 0n) return new Uint8Array(0);
  return v.subarray(Number(start), Number(end) + 1);
}

/** distinctPairs keeps the last value of each key (Redis' MSET order), so parallel per-Region batches cannot reorder two writes of one key. */
function distinctPairs(args: Buffer[]): { key: Buffer; value: Buffer }[] {
  const byKey = new Map<string, { key: Buffer; value: Buffer }>();
  for (let i = 1; i < args.length; i += 2) {
    const key = keyArg(args[i]!);
    byKey.set(key.toString('latin1'), { key, value: args[i + 1]! });
  }
  return [...byKey.values()];
}

function checkBatch(name: string, keys: number): void {
  if (keys > LIMITS.maxBatchKeys) throw new CommandError(`ERR ${name} of ${keys} keys: at most ${LIMITS.maxBatchKeys} keys per command; split it`);
}

const incrBy = (ctx: FrontContext, key: Buffer, by: bigint): Promise<Reply> => ctx.rmw.run(keyArg(key), incrStep(by));

export const STRING_COMMANDS: CommandDef[] = [
  str('get', 2, ['readonly', 'fast'], ONE_KEY, '1.0.0', 'Returns the string value of a key.', async (ctx, _c, args) => reply.bulk(await ctx.client.get(keyArg(args[1]!)))),
  str('set', -3, ['write', 'denyoom'], ONE_KEY, '1.0.0', 'Sets the string value of a key (NX, XX and GET atomically; EX/PX/EXAT/PXAT/KEEPTTL on the txn keyspace).', (ctx, _c, args) => set(ctx, args)),
  rmw('setnx', 3, ['write', 'denyoom', 'fast'], ONE_KEY, '1.0.0', 'Sets the value of a key only when the key does not exist; 1 if set, 0 if not.', async (ctx, _c, args) => {
    const r = await ctx.rmw.run(keyArg(args[1]!), setStep(args[2]!, { condition: 'NX', get: false }));
    return reply.integer(r.type === 'simple' ? 1 : 0);
  }),
  rmw('getset', 3, ['write', 'denyoom', 'fast'], ONE_KEY, '1.0.0', 'Sets the value of a key and returns its previous value.', (ctx, _c, args) => ctx.rmw.run(keyArg(args[1]!), setStep(args[2]!, { condition: null, get: true }))),
  rmw('getdel', 2, ['write', 'fast'], ONE_KEY, '6.2.0', 'Returns the value of a key and deletes it, atomically.', (ctx, _c, args) => ctx.rmw.run(keyArg(args[1]!), getDelStep)),
  str('mget', -2, ['readonly', 'fast'], ALL_KEYS, '1.0.0', 'Returns the values of keys (raw keyspace: each Region read at one point, not as one snapshot; txn keyspace: one snapshot).', async (ctx, _c, args) => {
    const keys = args.slice(1).map(keyArg);
    checkBatch('MGET', keys.length);
    const values = await ctx.client.batchGet(keys);
    return reply.array(values.map((v) => reply.bulk(v)));
  }, 'O(N)'),
  str('mset', -3, ['write', 'denyoom'], PAIRS, '1.0.1', 'Sets the values of keys (raw keyspace: atomic within each Region, not across Regions; txn keyspace: one transaction).', async (ctx, _c, args) => {
    if (args.length % 2 === 0) throw new CommandError("ERR wrong number of arguments for 'mset' command");
    const pairs = distinctPairs(args);
    checkBatch('MSET', pairs.length);
    await ctx.client.batchPut(pairs);
    return reply.ok;
  }, 'O(N)'),
  str('msetnx', -3, ['write', 'denyoom'], PAIRS, '1.0.1', 'Sets keys only when none of them exists, atomically (more than one key needs --keyspace txn).', async (ctx, _c, args) => {
    if (args.length % 2 === 0) throw new CommandError("ERR wrong number of arguments for 'msetnx' command");
    const pairs = distinctPairs(args);
    checkBatch('MSETNX', pairs.length);
    if (ctx.atomic) {
      // txn keyspace: all keys read and written in one transaction, so it is all or nothing across Regions.
      return ctx.atomic(async (s) => {
        const values = await s.batchGet(pairs.map((p) => p.key));
        if (values.some((v) => v !== null)) return reply.integer(0);
        await s.batchPut(pairs);
        return reply.integer(1);
      });
    }
    if (pairs.length > 1) {
      throw new CommandError(
        'ERR MSETNX of more than one key needs the transactional keyspace (all keys or none, across Regions): start the front with --keyspace txn; the command was not applied. For one key use MSETNX k v or SET k v NX',
      );
    }
    const r = await ctx.rmw.run(keyArg(args[1]!), setStep(args[args.length - 1]!, { condition: 'NX', get: false }));
    return reply.integer(r.type === 'simple' ? 1 : 0);
  }),
  rmw('incr', 2, ['write', 'denyoom', 'fast'], ONE_KEY, '1.0.0', 'Increments the integer value of a key by one (absent = 0), atomically.', (ctx, _c, args) => incrBy(ctx, args[1]!, 1n)),
  rmw('decr', 2, ['write', 'denyoom', 'fast'], ONE_KEY, '1.0.0', 'Decrements the integer value of a key by one (absent = 0), atomically.', (ctx, _c, args) => incrBy(ctx, args[1]!, -1n)),
  rmw('incrby', 3, ['write', 'denyoom', 'fast'], ONE_KEY, '1.0.0', 'Increments the integer value of a key by a number (absent = 0), atomically.', (ctx, _c, args) => incrBy(ctx, args[1]!, intArg(args[2]!))),
  rmw('decrby', 3, ['write', 'denyoom', 'fast'], ONE_KEY, '1.0.0', 'Decrements the integer value of a key by a number (absent = 0), atomically.', (ctx, _c, args) => {
    const by = intArg(args[2]!);
    if (!inInt64(-by)) throw new CommandError('ERR decrement would overflow');
    return incrBy(ctx, args[1]!, -by);
  }),
  rmw('append', 3, ['write', 'denyoom', 'fast'], ONE_KEY, '2.0.0', 'Appends a string to the value of a key (creating it), atomically; returns the new length.', (ctx, _c, args) => ctx.rmw.run(keyArg(args[1]!), appendStep(args[2]!))),
  str('strlen', 2, ['readonly', 'fast'], ONE_KEY, '2.2.0', 'Returns the length of a string value (0 when absent).', async (ctx, _c, args) => reply.integer((await ctx.client.get(keyArg(args[1]!)))?.length ?? 0)),
  rmw('setrange', 4, ['write', 'denyoom'], ONE_KEY, '2.2.0', 'Overwrites part of a string value from an offset (zero-padding), atomically; returns the new length.', (ctx, _c, args) => {
    const key = keyArg(args[1]!);
    const offset = intArg(args[2]!);
    if (offset < 0n) throw new CommandError('ERR offset is out of range');
    if (offset + BigInt(args[3]!.length) > BigInt(LIMITS.maxValueBytes)) {
      throw new CommandError(`ERR string exceeds maximum allowed size (${LIMITS.maxValueBytes} bytes, Flotilla's value limit)`);
    }
    return ctx.rmw.run(key, setRangeStep(Number(offset), args[3]!));
  }),
  str('getrange', 4, ['readonly'], ONE_KEY, '2.4.0', 'Returns a substring of a string value (inclusive, negative indices from the end).', async (ctx, _c, args) => {
    const key = keyArg(args[1]!);
    const start = intArg(args[2]!);
    const end = intArg(args[3]!);
    const v = await ctx.client.get(key);
    return reply.bulk(v === null ? new Uint8Array(0) : getRange(v, start, end));
  }, 'O(N)'),
];
