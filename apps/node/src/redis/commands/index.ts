import { CommandError, errorReply, upper, type CommandDef, type ConnState, type FrontContext } from '../context';
import { reply, type Reply } from '../resp';
import { CONNECTION_COMMANDS } from './connection';
import { EXPIRY_COMMANDS } from './expiry';
import { KEY_COMMANDS } from './keys';
import { PUBSUB_COMMANDS, subscribedMode } from './pubsub';
import { SERVER_COMMANDS } from './server';
import { IMMEDIATE, MAX_QUEUED_COMMANDS, txnCommands } from './transactions';
import { STRING_COMMANDS } from './strings';

// The command table and dispatch: look the command up, check its arity and
// the connection's authentication (in Redis' order: unknown command, then
// arity, then NOAUTH), run it, and turn any failure into an error reply.

/**
 * NOT_YET: commands that need parts Flotilla does not have yet, answered
 * with an error that says which part, rather than Redis' "unknown command"
 * (the user asked for something real) or a silent approximation.
 */
const NOT_YET = new Map<string, string>([
  ...['ssubscribe', 'sunsubscribe', 'spublish'].map((n): [string, string] => [n, `ERR ${n.toUpperCase()} (sharded pub/sub) is not supported: use ${n.slice(1).toUpperCase()} (docs/redis.md "Pub/sub")`]),
]);

function commandInfo(d: CommandDef): Reply {
  const acl = [`@${d.group === 'generic' ? 'keyspace' : d.group}`, ...(d.flags.includes('readonly') ? ['@read'] : []), ...(d.flags.includes('write') ? ['@write'] : []), ...(d.flags.includes('fast') ? ['@fast'] : ['@slow'])];
  return reply.array([
    reply.bulk(d.name),
    reply.integer(d.arity),
    reply.array(d.flags.map((f) => reply.simple(f))),
    reply.integer(d.firstKey),
    reply.integer(d.lastKey),
    reply.integer(d.keyStep),
    reply.array(acl.map((a) => reply.simple(a))),
    reply.array([]),
    reply.array([]),
    reply.array([]),
  ]);
}

/** commandDocs: COMMAND DOCS' shape, which redis-cli reads for its help and groups (summary, since, group, complexity). */
function commandDocs(d: CommandDef): Reply {
  return reply.strMap([
    ['summary', reply.bulk(d.summary)],
    ['since', reply.bulk(d.since)],
    ['group', reply.bulk(d.group)],
    ['complexity', reply.bulk(d.complexity ?? 'O(1)')],
  ]);
}

function command(args: Buffer[]): Reply {
  const defs = [...TABLE.values()];
  if (args.length === 1) return reply.array(defs.map(commandInfo));
  const sub = upper(args[1]!);
  const named = (): CommandDef[] => (args.length > 2 ? args.slice(2).map((a) => TABLE.get(a.toString('latin1').toLowerCase())).filter((d): d is CommandDef => d !== undefined) : defs);
  switch (sub) {
    case 'COUNT':
      return reply.integer(defs.length);
    case 'LIST':
      return reply.array(defs.map((d) => reply.bulk(d.name)));
    case 'INFO':
      return reply.array(args.length > 2 ? args.slice(2).map((a) => {
        const d = TABLE.get(a.toString('latin1').toLowerCase());
        return d ? commandInfo(d) : reply.array(null);
      }) : defs.map(commandInfo));
    case 'DOCS':
      return reply.map(named().map((d) => [reply.bulk(d.name), commandDocs(d)]));
    default:
      throw new CommandError(`ERR unknown subcommand '${args[1]!.toString('utf8').slice(0, 128)}'. Try COMMAND DOCS.`);
  }
}

const COMMAND_DEF: CommandDef = {
  name: 'command',
  arity: -1,
  flags: ['loading', 'stale'],
  firstKey: 0,
  lastKey: 0,
  keyStep: 0,
  group: 'server',
  since: '2.8.13',
  summary: 'Describes the commands this front supports (COMMAND, COMMAND COUNT, LIST, INFO, DOCS).',
  complexity: 'O(N)',
  run: (_ctx, _c, args) => command(args),
};

/** TABLE: every supported command by lower-case name. */
export const TABLE = new Map<string, CommandDef>([...STRING_COMMANDS, ...EXPIRY_COMMANDS, ...KEY_COMMANDS, ...CONNECTION_COMMANDS, ...SERVER_COMMANDS, ...txnCommands(dispatch), ...PUBSUB_COMMANDS, COMMAND_DEF].map((d) => [d.name, d]));

/** unknownCommand: Redis' wording, with the first arguments quoted (bounded, as Redis bounds them). */
function unknownCommand(args: Buffer[]): string {
  let text = `ERR unknown command '${args[0]!.toString('utf8').slice(0, 128)}', with args beginning with: `;
  let budget = 128;
  for (const a of args.slice(1)) {
    if (budget <= 0) break;
    const s = a.toString('utf8').slice(0, budget);
    text += `'${s}' `;
    budget -= s.length;
  }
  return text;
}

/** sameKeyRmw: b may start before a answered: both are read-modify-writes of the same one key (CommandDef.keyRmw). */
export function sameKeyRmw(a: Buffer[], b: Buffer[] | undefined): boolean {
  if (!b || a.length < 2 || b.length < 2) return false;
  const da = TABLE.get(a[0]!.toString('latin1').toLowerCase());
  const db = TABLE.get(b[0]!.toString('latin1').toLowerCase());
  return da?.keyRmw === true && db?.keyRmw === true && a[1]!.equals(b[1]!);
}

/**
 * queue: inside MULTI a command is checked as Redis checks it at queue time
 * (known, arity, authenticated, within MAX_QUEUED_COMMANDS) and queued; a
 * refusal answers its error and makes EXEC answer EXECABORT.
 */
function queue(c: ConnState, def: CommandDef | undefined, args: Buffer[]): Reply {
  const m = c.multi!;
  let refusal: string | undefined;
  const name = args[0]!.toString('latin1').toLowerCase();
  if (!def) refusal = NOT_YET.get(name) ?? unknownCommand(args);
  else if (def.arity > 0 ? args.length !== def.arity : args.length < -def.arity) refusal = `ERR wrong number of arguments for '${def.name}' command`;
  else if (!c.authenticated && !def.noAuth) refusal = 'NOAUTH Authentication required.';
  else if (def.flags.includes('no-multi')) refusal = 'ERR Command not allowed inside a transaction';
  else if (m.queue.length >= MAX_QUEUED_COMMANDS) refusal = `ERR MULTI of more than ${MAX_QUEUED_COMMANDS} commands: Flotilla bounds one transaction's queue; EXEC will be refused, DISCARD and split it`;
  if (refusal !== undefined) {
    m.dirty = true;
    return reply.error(refusal);
  }
  m.queue.push(args);
  return reply.simple('QUEUED');
}

/** dispatch runs one command; the result is synchronous for commands that need no cluster round trip. */
export function dispatch(ctx: FrontContext, c: ConnState, args: Buffer[]): Reply | Promise<Reply> {
  const name = args[0]!.toString('latin1').toLowerCase();
  ctx.stats.commandsProcessed++;
  const def = TABLE.get(name);
  if (c.multi && !IMMEDIATE.has(name)) return queue(c, def, args);
  if (!def) {
    const notYet = NOT_YET.get(name);
    if (notYet && !c.authenticated) return reply.error('NOAUTH Authentication required.');
    return reply.error(notYet ?? unknownCommand(args));
  }
  if (def.arity > 0 ? args.length !== def.arity : args.length < -def.arity) return reply.error(`ERR wrong number of arguments for '${def.name}' command`);
  if (!c.authenticated && !def.noAuth) return reply.error('NOAUTH Authentication required.');
  const subscribed = subscribedMode(c, name, args);
  if (subscribed) return subscribed;
  c.lastCommand = def.name;
  try {
    const r = def.run(ctx, c, args);
    return r instanceof Promise ? r.catch(errorReply) : r;
  } catch (err) {
    return errorReply(err);
  }
}
