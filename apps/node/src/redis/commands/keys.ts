import { LIMITS } from '@flotilla/proto';
import { CommandError, SYNTAX_ERROR, intArg, keyArg, upper, type CommandDef, type FrontContext } from '../context';
import { Glob, prefixEnd } from '../glob';
import { reply, type Reply } from '../resp';
import type { Step } from '../rmw';

// Key-space commands: DEL/UNLINK, EXISTS, TYPE, SCAN, DBSIZE.

const generic = (name: string, arity: number, flags: string[], keys: [number, number, number], since: string, summary: string, run: CommandDef['run'], complexity = 'O(N)'): CommandDef => ({
  name,
  arity,
  flags,
  firstKey: keys[0],
  lastKey: keys[1],
  keyStep: keys[2],
  group: 'generic',
  since,
  summary,
  complexity,
  run,
});

/** deleteStep deletes a key and counts it if it existed (the count is exact: the CAS saw the value it removed). */
const deleteStep: Step = (current) => (current === null ? { keep: true, reply: reply.integer(0) } : { next: null, reply: reply.integer(1) });

/** del deletes each distinct key atomically on its own (in parallel: the keys are not deleted as one transaction) and sums what existed. */
async function del(ctx: FrontContext, args: Buffer[]): Promise<Reply> {
  const keys = new Map<string, Buffer>();
  for (const k of args.slice(1)) keys.set(keyArg(k).toString('latin1'), k);
  if (keys.size > LIMITS.maxBatchKeys) throw new CommandError(`ERR DEL of ${keys.size} keys: at most ${LIMITS.maxBatchKeys} keys per command; split it`);
  if (ctx.atomic) {
    // txn keyspace: every key in one transaction, counted from its reads.
    return ctx.atomic(async (s) => {
      const ks = [...keys.values()];
      const values = await s.batchGet(ks);
      let n = 0;
      for (let i = 0; i < ks.length; i++) if (values[i] !== null) await s.delete(ks[i]!), n++;
      return reply.integer(n);
    });
  }
  const replies = await Promise.all([...keys.values()].map((k) => ctx.rmw.run(k, deleteStep)));
  let n = 0;
  for (const r of replies) if (r.type === 'integer') n += Number(r.value);
  return reply.integer(n);
}

/** SCAN_DEFAULT_COUNT and SCAN_MAX_COUNT: COUNT is a hint in Redis; here it is the keys read per call, capped because the store's scan also returns the values. */
export const SCAN_DEFAULT_COUNT = 10;
export const SCAN_MAX_COUNT = 1000;

interface ScanArgs {
  start: Uint8Array;
  count: number;
  match: Glob | null;
  typeOk: boolean;
}

function parseScan(ctx: FrontContext, args: Buffer[]): ScanArgs {
  const cursorText = args[1]!.toString('latin1');
  let start: Uint8Array = new Uint8Array(0);
  if (cursorText !== '0') {
    if (!/^[0-9]{1,20}$/.test(cursorText)) throw new CommandError('ERR invalid cursor');
    const key = ctx.cursors.lookup(cursorText);
    if (!key) throw new CommandError(`ERR unknown or expired cursor ${cursorText} (this front keeps cursors for an hour, and not across restarts or other fronts); start again from 0`);
    start = key;
  }
  const out: ScanArgs = { start, count: SCAN_DEFAULT_COUNT, match: null, typeOk: true };
  for (let i = 2; i < args.length; i += 2) {
    const opt = upper(args[i]!);
    const value = args[i + 1];
    if (value === undefined) throw new CommandError(SYNTAX_ERROR);
    if (opt === 'COUNT') {
      const n = intArg(value);
      if (n < 1n) throw new CommandError(SYNTAX_ERROR);
      out.count = Number(n > BigInt(SCAN_MAX_COUNT) ? BigInt(SCAN_MAX_COUNT) : n);
    } else if (opt === 'MATCH') out.match = new Glob(value);
    else if (opt === 'TYPE') out.typeOk = upper(value) === 'STRING';
    else throw new CommandError(SYNTAX_ERROR);
  }
  return out;
}

const compare = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b);

/**
 * scan reads up to COUNT keys from the cursor's key on, in key order, and
 * answers those matching MATCH with a cursor for the key after them. A
 * MATCH with a literal prefix (user:*) reads only the keys with that prefix.
 */
async function scan(ctx: FrontContext, args: Buffer[]): Promise<Reply> {
  const a = parseScan(ctx, args);
  let start = a.start;
  let end: Uint8Array = new Uint8Array(0);
  const prefix = a.match?.literalPrefix() ?? new Uint8Array(0);
  if (prefix.length > 0) {
    if (compare(start, prefix) < 0) start = prefix;
    end = prefixEnd(prefix);
    if (end.length > 0 && compare(start, end) >= 0) return reply.array([reply.bulk('0'), reply.array([])]);
  }
  // One key more than COUNT: it is where the next call starts, and its absence means the scan is done.
  const pairs = await ctx.client.scan(start, end, a.count + 1);
  const page = pairs.slice(0, a.count);
  const next = pairs.length > a.count ? pairs[a.count]!.key : null;
  const everything = a.match === null || a.match.matchesEverything();
  const keys = a.typeOk ? page.filter((p) => p.expired !== true && (everything || a.match!.matches(p.key))).map((p) => reply.bulk(p.key)) : [];
  return reply.array([reply.bulk(next === null ? '0' : ctx.cursors.issue(next)), reply.array(keys)]);
}

export const KEY_COMMANDS: CommandDef[] = [
  generic('del', -2, ['write'], [1, -1, 1], '1.0.0', 'Deletes keys; returns how many existed (raw keyspace: each key atomically on its own; txn keyspace: all in one transaction).', (ctx, _c, args) => del(ctx, args)),
  generic('unlink', -2, ['write', 'fast'], [1, -1, 1], '4.0.0', 'Same as DEL (Flotilla deletes are cheap; nothing is freed in the background).', (ctx, _c, args) => del(ctx, args)),
  generic('exists', -2, ['readonly', 'fast'], [1, -1, 1], '3.0.3', 'Counts the keys that exist (a key named twice counts twice).', async (ctx, _c, args) => {
    const keys = args.slice(1).map(keyArg);
    if (keys.length > LIMITS.maxBatchKeys) throw new CommandError(`ERR EXISTS of ${keys.length} keys: at most ${LIMITS.maxBatchKeys} keys per command; split it`);
    const values = await ctx.client.batchGet(keys);
    return reply.integer(values.filter((v) => v !== null).length);
  }),
  generic('type', 2, ['readonly', 'fast'], [1, 1, 1], '1.0.0', 'Returns the type of a key: string, or none when absent (Flotilla has only strings).', async (ctx, _c, args) => reply.simple((await ctx.client.get(keyArg(args[1]!))) === null ? 'none' : 'string'), 'O(1)'),
  generic('scan', -2, ['readonly'], [0, 0, 0], '2.8.0', 'Iterates keys in key order: the cursor stands for the next key; MATCH with a literal prefix reads only that prefix; COUNT (at most 1000) is the keys read per call.', (ctx, _c, args) => scan(ctx, args)),
  {
    name: 'dbsize',
    arity: 1,
    flags: ['readonly', 'fast'],
    firstKey: 0,
    lastKey: 0,
    keyStep: 0,
    group: 'server',
    since: '1.0.0',
    summary: "Returns an ESTIMATE of the number of keys: placement's approximate counts from Region heartbeats (not exact, and late by a heartbeat).",
    complexity: 'O(Regions)',
    run: async (ctx) => reply.integer((await ctx.keyEstimate()).keys),
  },
];
