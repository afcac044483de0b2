import { CommandError, upper, type CommandDef, type ConnState, type FrontContext, type Handler } from '../context';
import { Glob } from '../glob';
import { KEYEVENT, KEYSPACE } from '../pubsub/channels';
import type { Subscriber } from '../pubsub/subscriber';
import { reply, type Reply } from '../resp';

// Pub/sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PUBLISH,
// PUBSUB, and RESET (which leaves subscribed mode). Keyspace channels
// (`__keyspace@0__:K`, `__keyevent@0__:set|del`) are fed by Flotilla watch
// on the transactional keyspace; every channel also gets what PUBLISH sends
// to it on this front (docs/redis.md "Pub/sub").

/** needsWatch: the answer on the raw keyspace, which watch does not cover. */
export const needsWatch = (name: string): string =>
  `ERR ${name} needs keyspace notifications through watch, which serve the transactional keyspace: this front serves the raw keyspace; start it with --keyspace txn (flotilla redis --keyspace txn, flotilla up --redis-keyspace txn)`;

/** SUBSCRIBED_ALLOWED: what a RESP2 connection in subscribed mode may run (Redis' rule; RESP3 may run anything). */
const SUBSCRIBED_ALLOWED = new Set(['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe', 'ssubscribe', 'sunsubscribe', 'ping', 'quit', 'reset']);

/**
 * subscribedMode: a RESP2 connection with a subscription may only
 * (un)subscribe, PING (answered as a `pong` message), QUIT and RESET;
 * anything else answers Redis' error. Null: run the command as usual.
 */
export function subscribedMode(c: ConnState, name: string, args: Buffer[]): Reply | null {
  if (c.protocol !== 2 || !c.pubsub || c.pubsub.count === 0) return null;
  if (name === 'ping' && args.length <= 2) return reply.array([reply.bulk('pong'), reply.bulk(args[1] ?? '')]);
  if (SUBSCRIBED_ALLOWED.has(name)) return null;
  return reply.error(`ERR Can't execute '${name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
}

const def = (name: string, arity: number, summary: string, run: Handler, extra: Partial<CommandDef> = {}): CommandDef => ({
  name,
  arity,
  flags: ['pubsub', 'noscript', 'loading', 'stale', 'no-multi'],
  firstKey: 0,
  lastKey: 0,
  keyStep: 0,
  group: 'pubsub',
  since: '2.0.0',
  summary,
  complexity: 'O(N)',
  run: (ctx, c, args) => {
    if (ctx.keyspace !== 'txn' || !ctx.pubsub || !c.pubsub) throw new CommandError(needsWatch(name.toUpperCase()));
    return run(ctx, c, args);
  },
  ...extra,
});

const kindReply = (kind: string, name: Buffer | null, count: number): Reply => reply.push([reply.bulk(kind), reply.bulk(name), reply.integer(count)]);

/** subscribe: opens the watches the new channels (or patterns) need, then subscribes each and answers one confirmation per argument. */
async function subscribe(c: ConnState, args: Buffer[], pattern: boolean): Promise<Reply> {
  const s = c.pubsub!;
  const names = args.slice(1);
  await s.prepare(names, pattern);
  const out: Reply[] = [];
  for (const n of names) {
    s.add(n, pattern);
    out.push(kindReply(pattern ? 'psubscribe' : 'subscribe', n, s.count));
  }
  return reply.seq(out);
}

/** unsubscribe: the named channels (or patterns), or all of them; one reply per name, or one with a null name when there was nothing. */
function unsubscribe(c: ConnState, args: Buffer[], pattern: boolean): Reply {
  const s: Subscriber = c.pubsub!;
  const kind = pattern ? 'punsubscribe' : 'unsubscribe';
  const map = pattern ? s.patterns : s.channels;
  const names = args.length > 1 ? args.slice(1) : [...map.values()].map((x) => x.name);
  if (names.length === 0) return reply.seq([kindReply(kind, null, s.count)]);
  const out: Reply[] = [];
  for (const n of names) {
    s.remove(n, pattern);
    out.push(kindReply(kind, n, s.count));
  }
  return reply.seq(out);
}

function pubsub(ctx: FrontContext, args: Buffer[]): Reply {
  const hub = ctx.pubsub!;
  const sub = upper(args[1]!);
  switch (sub) {
    case 'CHANNELS':
      if (args.length > 3) throw new CommandError("ERR wrong number of arguments for 'pubsub|channels' command");
      return reply.array(hub.channelNames(args[2] ? new Glob(args[2]) : undefined).map((b) => reply.bulk(b)));
    case 'NUMSUB':
      return reply.array(args.slice(2).flatMap((ch) => [reply.bulk(ch), reply.integer(hub.numSub(ch))]));
    case 'NUMPAT':
      if (args.length !== 2) throw new CommandError("ERR wrong number of arguments for 'pubsub|numpat' command");
      return reply.integer(hub.numPat());
    case 'HELP':
      return reply.array(['PUBSUB <subcommand> [<arg> ...]. Subcommands are:', 'CHANNELS [<pattern>]', 'NUMSUB [<channel> ...]', 'NUMPAT', `(this front only; keyspace channels ${KEYSPACE.toString()}<key> and ${KEYEVENT.toString()}set|del come from watch)`].map((t) => reply.simple(t)));
    default:
      throw new CommandError(`ERR unknown subcommand '${args[1]!.toString('utf8').slice(0, 128)}'. Try PUBSUB HELP.`);
  }
}

/** reset: Redis' RESET: leaves MULTI, forgets WATCHed keys, unsubscribes everything, back to RESP2, no name, authenticated only when no token is needed. */
function reset(ctx: FrontContext, c: ConnState): Reply {
  c.multi = null;
  c.watched.clear();
  c.pubsub?.close();
  c.protocol = 2;
  c.name = null;
  c.authenticated = ctx.token === undefined;
  return reply.simple('RESET');
}

export const PUBSUB_COMMANDS: CommandDef[] = [
  def('subscribe', -2, 'Subscribes to channels: __keyspace@0__:<key> and __keyevent@0__:set|del are keyspace notifications from watch (txn keyspace); any channel also gets PUBLISH on this front.', (_ctx, c, args) => subscribe(c, args, false)),
  def('psubscribe', -2, 'Subscribes to channel patterns (glob); keyspace patterns watch their literal key prefix.', (_ctx, c, args) => subscribe(c, args, true)),
  def('unsubscribe', -1, 'Unsubscribes from the channels given, or all; a watch closes with its last subscription.', (_ctx, c, args) => unsubscribe(c, args, false)),
  def('punsubscribe', -1, 'Unsubscribes from the patterns given, or all.', (_ctx, c, args) => unsubscribe(c, args, true)),
  def('publish', 3, 'Posts a message to the subscribers of a channel on this front (not other fronts); answers how many received it.', (ctx, _c, args) => reply.integer(ctx.pubsub!.publish(args[1]!, args[2]!)), { flags: ['pubsub', 'loading', 'stale', 'fast'] }),
  def('pubsub', -2, 'PUBSUB CHANNELS [pattern], NUMSUB [channel...], NUMPAT: the subscriptions of this front.', (ctx, _c, args) => pubsub(ctx, args), { flags: ['pubsub', 'loading', 'stale'] }),
  {
    name: 'reset',
    arity: 1,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no-auth', 'allow-busy'],
    firstKey: 0,
    lastKey: 0,
    keyStep: 0,
    group: 'connection',
    since: '6.2.0',
    summary: 'Resets the connection: leaves MULTI, UNWATCH, unsubscribes everything, RESP2, no name, authenticated again only without a token.',
    complexity: 'O(1)',
    noAuth: true,
    run: (ctx, c) => reset(ctx, c),
  },
];
