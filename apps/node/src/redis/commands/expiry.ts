import { ClientError } from '@flotilla/client';
import { CommandError, NOT_INTEGER, SYNTAX_ERROR, keyArg, parseInt64, upper, type CommandDef, type FrontContext } from '../context';
import { GroupItemFailed } from '../expiring-group';
import { LEASE_TTL_MAX_MS, leaseBookOf, type LeaseBook } from '../lease-book';
import { reply, type Reply } from '../resp';
import type { TxnScope } from '../txn';

// Key expiry on the transactional keyspace (issue #20): EXPIRE PEXPIRE
// EXPIREAT PEXPIREAT (NX XX GT LT), TTL PTTL, PERSIST, EXPIRETIME
// PEXPIRETIME, SETEX PSETEX, GETEX, and SET's EX/PX/EXAT/PXAT/KEEPTTL.
//
// A key that expires is written with a lease whose expiry is at or after
// the deadline (LeaseBook: shared by the deadlines of one short window);
// its stored value records the lease, and placement's revocation deletes
// the key only while it still carries it. So SET without KEEPTTL, PERSIST
// and DEL end the expiry just by writing the key without the lease (or
// deleting it), and INCR, APPEND, SETRANGE and SET KEEPTTL keep it by
// rewriting it with the lease it has. Keeping a key's own lease needs no
// attach nor guard check: the value carries the lease only if a leased put
// attached it, and the revocation deletes or locks every attached key, so
// it conflicts with our rewrite whichever commits first.
//
// Every command runs in one transaction (ctx.atomic: its own, or EXEC's
// inside MULTI). The raw keyspace has no leases: they answer an error
// naming --keyspace txn, nothing applied.

/** needsTxnForExpiry: the answer on the raw keyspace. */
export const needsTxnForExpiry = (what: string): string =>
  `ERR ${what} needs the transactional keyspace (keys expire with Flotilla's leases, which live there): start the front with --keyspace txn (flotilla redis --keyspace txn, flotilla up --redis-keyspace txn); the command was not applied`;

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** invalidExpire: Redis' error for an expiry that is out of range (or, for SET, SETEX and GETEX, not positive). */
const invalidExpire = (cmd: string): CommandError => new CommandError(`ERR invalid expire time in '${cmd}' command`);

/** TimeUnit: how a command gives its time: seconds or milliseconds, from now or as a Unix time. */
interface TimeUnit {
  ms: boolean;
  absolute: boolean;
}

/**
 * deadlineOf turns a time argument into an absolute deadline in Unix ms,
 * with Redis' checks in Redis' order: not an integer; (positiveOnly: SET,
 * SETEX, GETEX) not positive; seconds that overflow as ms; a relative time
 * that overflows when added to now.
 */
export function deadlineOf(arg: Buffer, unit: TimeUnit, cmd: string, positiveOnly: boolean, nowMs: number): bigint {
  let n = parseInt64(arg);
  if (n === null) throw new CommandError(NOT_INTEGER);
  if (positiveOnly && n <= 0n) throw invalidExpire(cmd);
  if (!unit.ms) {
    if (n > INT64_MAX / 1000n || n < INT64_MIN / 1000n) throw invalidExpire(cmd);
    n *= 1000n;
  }
  if (!unit.absolute) {
    if (n > INT64_MAX - BigInt(nowMs)) throw invalidExpire(cmd);
    n += BigInt(nowMs);
  }
  return n;
}

/** checkHorizon: a future deadline must be within a lease's longest TTL (placement's LEASE_LIMITS.maxTtlMs, 24 h). */
function checkHorizon(deadline: bigint, nowMs: number, cmd: string): number {
  if (deadline - BigInt(nowMs) > BigInt(LEASE_TTL_MAX_MS)) {
    throw new CommandError(`ERR ${cmd}: an expiry more than 24 h ahead is not supported (Flotilla expires keys with leases, whose TTL is at most 24 h); the command was not applied`);
  }
  return Number(deadline);
}

/** Expiry: what a write does to the key's expiry: none (it stops expiring), keep (KEEPTTL), or at a deadline (Unix ms; at or before now: the key is deleted). */
export type Expiry = { kind: 'none' } | { kind: 'keep' } | { kind: 'at'; atMs: number };

const isLeaseGone = (err: unknown): boolean => err instanceof ClientError && err.code === 'LeaseNotFound';
const isLeaseFull = (err: unknown): boolean => err instanceof ClientError && err.code === 'InvalidArgument' && /already has \d+ keys/.test(err.message);

/**
 * writeExpiring writes key = value in s to expire at atMs: with a lease of
 * the book (attached, its guard read in s's transaction), or, when atMs has
 * passed, as a delete. A lease found gone (revoked by someone, or its
 * window already over) or full is replaced, at most 3 times.
 */
export async function writeExpiring(book: LeaseBook, s: TxnScope, key: Uint8Array, value: Uint8Array, atMs: number, exists: boolean): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    if (atMs <= Date.now()) {
      if (exists) await s.delete(key);
      return;
    }
    let lease: number | undefined;
    try {
      lease = await book.leaseFor(atMs);
      await book.attach(s.tx, key, lease);
    } catch (err) {
      if ((isLeaseGone(err) || isLeaseFull(err)) && attempt < 3) {
        if (lease !== undefined) book.forget(lease);
        continue;
      }
      // A failure of the transaction itself (a read that timed out) aborts a whole EXEC, as TxnScope's own reads do.
      if (!(err instanceof CommandError)) s.failure ??= err;
      throw err;
    }
    await s.putWith(key, value, lease);
    return;
  }
}

/** atomicOf: the command's transaction (txn keyspace), or the raw keyspace's refusal. */
function atomicOf(ctx: FrontContext, what: string): NonNullable<FrontContext['atomic']> {
  if (ctx.keyspace !== 'txn' || !ctx.atomic || !ctx.txnClient) throw new CommandError(needsTxnForExpiry(what));
  return ctx.atomic;
}

function bookOf(ctx: FrontContext): LeaseBook {
  return leaseBookOf(ctx.txnClient!);
}

/** currentDeadline: the key's expiry as Unix ms by the lease's remaining time (null: the key does not expire; a lease already gone counts as due now). */
async function currentDeadline(book: LeaseBook, lease: number | null): Promise<number | null> {
  if (lease === null) return null;
  const remaining = await book.remainingMs(lease);
  return Date.now() + (remaining ?? 0);
}

/** SetExpiryOptions: the options of SET with an expiry. */
export interface SetExpiryOptions {
  condition: 'NX' | 'XX' | null;
  get: boolean;
  expiry: Expiry;
}

/**
 * setWithExpiry is SET with EX/PX/EXAT/PXAT/KEEPTTL (and NX/XX/GET): the
 * condition, the write and the expiry in one transaction. A deadline that
 * has passed (EXAT in the past) sets and at once expires the key: it is
 * deleted, as in Redis.
 */
export async function setWithExpiry(ctx: FrontContext, key: Uint8Array, value: Uint8Array, o: SetExpiryOptions): Promise<Reply> {
  const atomic = atomicOf(ctx, `SET ${o.expiry.kind === 'keep' ? 'KEEPTTL' : 'with an expiry'}`);
  const book = bookOf(ctx);
  const group = ctx.expiringWrites;
  if (group && o.condition === null && !o.get && o.expiry.kind === 'at' && o.expiry.atMs > Date.now()) {
    // A blind write with a future deadline reads nothing: it joins the group commit; one whose lease was gone or full runs alone below.
    try {
      await group.write(key, value, o.expiry.atMs);
      return reply.ok;
    } catch (err) {
      if (!(err instanceof GroupItemFailed)) throw err;
    }
  }
  return atomic(async (s) => {
    const current = await s.getEntry(key);
    const allowed = o.condition === null || (o.condition === 'NX' ? current === null : current !== null);
    const answer = o.get ? reply.bulk(current?.value ?? null) : allowed ? reply.ok : reply.nil;
    if (!allowed) return answer;
    if (o.expiry.kind === 'at') await writeExpiring(book, s, key, value, o.expiry.atMs, current !== null);
    else await s.putWith(key, value, o.expiry.kind === 'keep' ? (current?.lease ?? null) : null);
    return answer;
  });
}

type Condition = 'NX' | 'XX' | 'GT' | 'LT';

/** parseConditions reads EXPIRE's NX/XX/GT/LT with Redis 7's errors. */
function parseConditions(args: Buffer[]): Set<Condition> {
  const out = new Set<Condition>();
  for (const a of args) {
    const opt = upper(a);
    if (opt === 'NX' || opt === 'XX' || opt === 'GT' || opt === 'LT') out.add(opt);
    else throw new CommandError(`ERR Unsupported option ${a.toString('utf8').slice(0, 128)}`);
  }
  if (out.has('NX') && (out.has('XX') || out.has('GT') || out.has('LT'))) throw new CommandError('ERR NX and XX, GT or LT options at the same time are not compatible');
  if (out.has('GT') && out.has('LT')) throw new CommandError('ERR GT and LT options at the same time are not compatible');
  return out;
}

/** conditionsHold: Redis 7's rules; a key without an expiry counts as an infinite TTL for GT and LT. */
function conditionsHold(c: Set<Condition>, current: number | null, atMs: number): boolean {
  if (c.has('NX') && current !== null) return false;
  if (c.has('XX') && current === null) return false;
  if (c.has('GT') && (current === null || atMs <= current)) return false;
  if (c.has('LT') && current !== null && atMs >= current) return false;
  return true;
}

/** expire: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: 1 when the expiry was set (or the key deleted for a deadline that passed), 0 when the key is absent or a condition failed. */
async function expire(ctx: FrontContext, args: Buffer[], unit: TimeUnit): Promise<Reply> {
  const cmd = args[0]!.toString('latin1').toLowerCase();
  const atomic = atomicOf(ctx, cmd.toUpperCase());
  const key = keyArg(args[1]!);
  const conditions = parseConditions(args.slice(3));
  const now = Date.now();
  const deadline = deadlineOf(args[2]!, unit, cmd, false, now);
  const atMs = deadline <= BigInt(now) ? now : checkHorizon(deadline, now, cmd.toUpperCase());
  const book = bookOf(ctx);
  return atomic(async (s) => {
    const current = await s.getEntry(key);
    if (current === null) return reply.integer(0);
    if (conditions.size > 0 && !conditionsHold(conditions, await currentDeadline(book, current.lease), atMs)) return reply.integer(0);
    await writeExpiring(book, s, key, current.value, atMs, true);
    return reply.integer(1);
  });
}

/** ttl: TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 absent (or its lease already ended: expired, being deleted), -1 no expiry, else the lease's time left (or end), rounded as Redis rounds. */
async function ttl(ctx: FrontContext, args: Buffer[], ms: boolean, absolute: boolean): Promise<Reply> {
  const atomic = atomicOf(ctx, args[0]!.toString('latin1').toUpperCase());
  const key = keyArg(args[1]!);
  const book = bookOf(ctx);
  return atomic(async (s) => {
    const current = await s.getEntry(key);
    if (current === null) return reply.integer(-2);
    if (current.lease === null) return reply.integer(-1);
    const remaining = await book.remainingMs(current.lease);
    if (remaining === null) return reply.integer(-2);
    const t = absolute ? Date.now() + remaining : remaining;
    return reply.integer(ms ? t : Math.floor((t + 500) / 1000));
  });
}

/** persist: 1 when the key had an expiry and now has none, else 0. */
async function persist(ctx: FrontContext, args: Buffer[]): Promise<Reply> {
  const atomic = atomicOf(ctx, 'PERSIST');
  const key = keyArg(args[1]!);
  return atomic(async (s) => {
    const current = await s.getEntry(key);
    if (current === null || current.lease === null) return reply.integer(0);
    await s.putWith(key, current.value, null);
    return reply.integer(1);
  });
}

/** setex: SETEX and PSETEX: SET key value EX/PX time. */
function setex(ctx: FrontContext, args: Buffer[], ms: boolean): Promise<Reply> {
  const cmd = ms ? 'psetex' : 'setex';
  atomicOf(ctx, cmd.toUpperCase());
  const key = keyArg(args[1]!);
  const now = Date.now();
  const atMs = checkHorizon(deadlineOf(args[2]!, { ms, absolute: false }, cmd, true, now), now, cmd.toUpperCase());
  return setWithExpiry(ctx, key, args[3]!, { condition: null, get: false, expiry: { kind: 'at', atMs } });
}

const EXPIRY_UNITS = new Map<string, TimeUnit>([
  ['EX', { ms: false, absolute: false }],
  ['PX', { ms: true, absolute: false }],
  ['EXAT', { ms: false, absolute: true }],
  ['PXAT', { ms: true, absolute: true }],
]);

/**
 * parseExpiryOption reads one of EX/PX/EXAT/PXAT (with its time) or
 * KEEPTTL/PERSIST at args[i], for SET and GETEX; returns the expiry and how
 * many arguments it took, or null when args[i] is none of them.
 */
export function parseExpiryOption(args: Buffer[], i: number, cmd: 'set' | 'getex', nowMs: number): { expiry: Expiry | { kind: 'persist' }; used: number } | null {
  const opt = upper(args[i]!);
  const unit = EXPIRY_UNITS.get(opt);
  if (unit) {
    const t = args[i + 1];
    if (t === undefined) throw new CommandError(SYNTAX_ERROR);
    const deadline = deadlineOf(t, unit, cmd, true, nowMs);
    return { expiry: { kind: 'at', atMs: deadline <= BigInt(nowMs) ? nowMs : checkHorizon(deadline, nowMs, cmd.toUpperCase()) }, used: 2 };
  }
  if (opt === 'KEEPTTL' && cmd === 'set') return { expiry: { kind: 'keep' }, used: 1 };
  if (opt === 'PERSIST' && cmd === 'getex') return { expiry: { kind: 'persist' }, used: 1 };
  return null;
}

/** getex: GETEX key [EX|PX|EXAT|PXAT time | PERSIST]: the value, and the expiry changed as asked (a passed deadline deletes the key). */
async function getex(ctx: FrontContext, args: Buffer[]): Promise<Reply> {
  const atomic = atomicOf(ctx, 'GETEX');
  const key = keyArg(args[1]!);
  const now = Date.now();
  let change: Expiry | { kind: 'persist' } | null = null;
  for (let i = 2; i < args.length; ) {
    const o = parseExpiryOption(args, i, 'getex', now);
    if (o === null || change !== null) throw new CommandError(SYNTAX_ERROR);
    change = o.expiry;
    i += o.used;
  }
  const book = bookOf(ctx);
  return atomic(async (s) => {
    const current = await s.getEntry(key);
    if (current === null) return reply.nil;
    if (change?.kind === 'persist' && current.lease !== null) await s.putWith(key, current.value, null);
    else if (change?.kind === 'at') await writeExpiring(book, s, key, current.value, change.atMs, true);
    return reply.bulk(current.value);
  });
}

const def = (name: string, arity: number, flags: string[], group: CommandDef['group'], since: string, summary: string, run: CommandDef['run']): CommandDef => ({
  name,
  arity,
  flags,
  firstKey: 1,
  lastKey: 1,
  keyStep: 1,
  group,
  since,
  summary,
  run,
});

const TXN_ONLY = ' (txn keyspace: keys expire with leases; docs/redis.md "Key expiry")';

/** EXPIRY_COMMANDS: the commands of key expiry (SET's options are parsed in strings.ts and run by setWithExpiry). */
export const EXPIRY_COMMANDS: CommandDef[] = [
  def('expire', -3, ['write', 'fast'], 'generic', '1.0.0', `Sets a key's time to live in seconds (NX, XX, GT, LT); a non-positive time deletes the key${TXN_ONLY}.`, (ctx, _c, a) => expire(ctx, a, { ms: false, absolute: false })),
  def('pexpire', -3, ['write', 'fast'], 'generic', '2.6.0', `Sets a key's time to live in milliseconds (NX, XX, GT, LT)${TXN_ONLY}.`, (ctx, _c, a) => expire(ctx, a, { ms: true, absolute: false })),
  def('expireat', -3, ['write', 'fast'], 'generic', '1.2.0', `Sets a key's expiry as a Unix time in seconds (NX, XX, GT, LT); a past time deletes the key${TXN_ONLY}.`, (ctx, _c, a) => expire(ctx, a, { ms: false, absolute: true })),
  def('pexpireat', -3, ['write', 'fast'], 'generic', '2.6.0', `Sets a key's expiry as a Unix time in milliseconds (NX, XX, GT, LT)${TXN_ONLY}.`, (ctx, _c, a) => expire(ctx, a, { ms: true, absolute: true })),
  def('ttl', 2, ['readonly', 'fast'], 'generic', '1.0.0', `Returns a key's time to live in seconds: -2 absent, -1 no expiry (the lease's time left)${TXN_ONLY}.`, (ctx, _c, a) => ttl(ctx, a, false, false)),
  def('pttl', 2, ['readonly', 'fast'], 'generic', '2.6.0', `Returns a key's time to live in milliseconds: -2 absent, -1 no expiry${TXN_ONLY}.`, (ctx, _c, a) => ttl(ctx, a, true, false)),
  def('expiretime', 2, ['readonly', 'fast'], 'generic', '7.0.0', `Returns a key's expiry as a Unix time in seconds: -2 absent, -1 no expiry${TXN_ONLY}.`, (ctx, _c, a) => ttl(ctx, a, false, true)),
  def('pexpiretime', 2, ['readonly', 'fast'], 'generic', '7.0.0', `Returns a key's expiry as a Unix time in milliseconds: -2 absent, -1 no expiry${TXN_ONLY}.`, (ctx, _c, a) => ttl(ctx, a, true, true)),
  def('persist', 2, ['write', 'fast'], 'generic', '2.2.0', `Removes a key's expiry: 1 if it had one${TXN_ONLY}.`, (ctx, _c, a) => persist(ctx, a)),
  def('setex', 4, ['write', 'denyoom'], 'string', '2.0.0', `Sets a key's value and its time to live in seconds${TXN_ONLY}.`, (ctx, _c, a) => setex(ctx, a, false)),
  def('psetex', 4, ['write', 'denyoom'], 'string', '2.6.0', `Sets a key's value and its time to live in milliseconds${TXN_ONLY}.`, (ctx, _c, a) => setex(ctx, a, true)),
  def('getex', -2, ['write', 'fast'], 'string', '6.2.0', `Returns a key's value and sets or removes its expiry (EX, PX, EXAT, PXAT, PERSIST)${TXN_ONLY}.`, (ctx, _c, a) => getex(ctx, a)),
];
