import { CommandError, keyArg, type CommandDef, type ConnState, type FrontContext, type Handler } from '../context';
import { reply, type Reply } from '../resp';
import { expiryOf, ScopeRmw, TxnScope } from '../txn';

// MULTI / EXEC / DISCARD / WATCH / UNWATCH on Flotilla transactions (txn
// keyspace only). MULTI queues commands; EXEC runs them all in ONE
// transaction, atomic across Regions, and answers their replies as an
// array. WATCH is optimistic check-and-set: EXEC answers a null array when
// a watched key's version changed since WATCH.

/** MAX_QUEUED_COMMANDS bounds the commands one MULTI may queue (each is held in memory until EXEC; docs/redis.md "Limits"). */
export const MAX_QUEUED_COMMANDS = 1000;
/** MAX_WATCHED_KEYS bounds the keys one connection watches. */
export const MAX_WATCHED_KEYS = 1000;

/** IMMEDIATE: commands that run at once inside MULTI instead of being queued (as in Redis). */
export const IMMEDIATE = new Set(['exec', 'discard', 'multi', 'watch', 'quit', 'reset']);

/** needsTxn: the answer in raw mode. */
export const needsTxn = (name: string): string =>
  `ERR ${name} needs the transactional keyspace: this front serves the raw keyspace, where keys in different Regions cannot change atomically; start it with --keyspace txn (flotilla redis --keyspace txn, flotilla up --redis-keyspace txn). Nothing was applied`;

const txnDef = (name: string, arity: number, firstKey: number, summary: string, run: Handler): CommandDef => ({
  name,
  arity,
  flags: ['noscript', 'loading', 'stale', 'fast', 'allow-busy'],
  firstKey,
  lastKey: firstKey === 0 ? 0 : -1,
  keyStep: firstKey === 0 ? 0 : 1,
  group: 'transactions',
  since: name === 'watch' || name === 'unwatch' ? '2.2.0' : '1.2.0',
  summary,
  run: (ctx, c, args) => {
    if (ctx.keyspace !== 'txn') throw new CommandError(needsTxn(name.toUpperCase()));
    return run(ctx, c, args);
  },
});

/** watch records each key's version at a fresh snapshot (one instant for all of them). */
async function watch(ctx: FrontContext, c: ConnState, args: Buffer[]): Promise<Reply> {
  if (c.multi) throw new CommandError('ERR WATCH inside MULTI is not allowed');
  const keys = args.slice(1).map(keyArg).filter((k) => !c.watched.has(k.toString('latin1')));
  if (c.watched.size + keys.length > MAX_WATCHED_KEYS) throw new CommandError(`ERR WATCH of more than ${MAX_WATCHED_KEYS} keys per connection: UNWATCH or EXEC first`);
  if (keys.length === 0) return reply.ok;
  const snap = await ctx.txnClient!.snapshot();
  const versions = await snap.batchGetWithVersion(keys);
  keys.forEach((key, i) => c.watched.set(key.toString('latin1'), { key, version: versions[i]?.version ?? null }));
  return reply.ok;
}

/**
 * exec runs the queue in one transaction. The watched keys are read first,
 * at the transaction's start_ts: a change committed between WATCH and that
 * start shows as a different version (null reply, nothing written). When
 * the queue writes, the watched keys are also locked (lockKeys), so a change
 * committed after start_ts makes the commit conflict; the transaction then
 * runs again from a new start_ts, where the version check fails. A retry
 * runs every queued command again: their replies come from the attempt
 * that committed.
 */
async function exec(ctx: FrontContext, c: ConnState, dispatch: Dispatch): Promise<Reply> {
  const m = c.multi;
  if (!m) throw new CommandError('ERR EXEC without MULTI');
  c.multi = null;
  const watched = [...c.watched.values()];
  c.watched.clear();
  if (m.dirty) return reply.error('EXECABORT Transaction discarded because of previous errors.');
  const replies = await ctx.txnClient!.txn(async (tx) => {
    const scope = new TxnScope(tx, expiryOf(ctx.txnClient!));
    if (watched.length > 0) {
      const now = await tx.batchGetWithVersion(watched.map((w) => w.key));
      if (watched.some((w, i) => (now[i]?.version ?? null) !== w.version)) return null;
    }
    const inner: FrontContext = { ...ctx, client: scope, rmw: new ScopeRmw(scope, ctx.rmw.stats), atomic: (fn) => fn(scope), expiringWrites: undefined };
    const out: Reply[] = [];
    for (const cmd of m.queue) {
      out.push(await dispatch(inner, c, cmd));
      if (scope.failure !== undefined) throw scope.failure;
    }
    if (scope.wrote && watched.length > 0) tx.lockKeys(watched.map((w) => w.key));
    return out;
  });
  return reply.array(replies);
}

/** Dispatch: commands/index.ts dispatch, passed in (not imported) so the command table has no import cycle. */
export type Dispatch = (ctx: FrontContext, c: ConnState, args: Buffer[]) => Reply | Promise<Reply>;

/** txnCommands: the transaction commands, running queued commands through dispatch. */
export function txnCommands(dispatch: Dispatch): CommandDef[] {
  return [
    txnDef('multi', 1, 0, 'Starts a transaction: later commands are queued until EXEC (txn keyspace only).', (_ctx, c) => {
      if (c.multi) throw new CommandError('ERR MULTI calls can not be nested');
      c.multi = { queue: [], dirty: false };
      return reply.ok;
    }),
    txnDef('exec', 1, 0, 'Runs the queued commands in one Flotilla transaction, atomic across Regions; a null reply when a WATCHed key changed.', (ctx, c) => exec(ctx, c, dispatch)),
    txnDef('discard', 1, 0, 'Drops the queued commands and the watched keys.', (_ctx, c) => {
      if (!c.multi) throw new CommandError('ERR DISCARD without MULTI');
      c.multi = null;
      c.watched.clear();
      return reply.ok;
    }),
    txnDef('watch', -2, 1, "Records keys' versions (commit ts) for the next EXEC, which aborts with a null reply if any changed.", watch),
    txnDef('unwatch', 1, 0, 'Forgets the watched keys.', (_ctx, c) => {
      c.watched.clear();
      return reply.ok;
    }),
  ];
}
