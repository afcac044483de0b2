import { timingSafeEqual, createHash } from 'node:crypto';
import { CommandError, SYNTAX_ERROR, intArg, upper, type CommandDef, type ConnState, type FrontContext } from '../context';
import { reply, type Reply } from '../resp';

// Connection commands: PING, ECHO, AUTH, HELLO, CLIENT, SELECT, QUIT.

/** REDIS_COMPAT_VERSION: the Redis release whose command syntax the front follows; HELLO and INFO report it, since clients gate features on it. */
export const REDIS_COMPAT_VERSION = '7.0.0';

const conn = (name: string, arity: number, flags: string[], since: string, summary: string, run: CommandDef['run'], noAuth = false): CommandDef => ({
  name,
  arity,
  flags,
  firstKey: 0,
  lastKey: 0,
  keyStep: 0,
  group: 'connection',
  since,
  summary,
  complexity: 'O(1)',
  ...(noAuth ? { noAuth } : {}),
  run,
});

/** tokenMatches compares in constant time (through hashes, so the lengths do not leak either). */
function tokenMatches(expected: string, given: Buffer): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(given).digest();
  return timingSafeEqual(a, b);
}

/** authenticate checks AUTH's or HELLO's user and password: the user is `default` (or omitted), the password the API token. */
function authenticate(ctx: FrontContext, c: ConnState, user: Buffer | null, password: Buffer): void {
  const userOk = user === null || user.toString('utf8') === 'default';
  if (ctx.token === undefined) {
    // As Redis answers when its default user has no password: AUTH <password> is a mistake worth saying; AUTH default <anything> passes.
    if (user === null) throw new CommandError('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct? (this front runs without --token)');
    if (!userOk) throw new CommandError('WRONGPASS invalid username-password pair or user is disabled.');
    return;
  }
  if (!userOk || !tokenMatches(ctx.token, password)) throw new CommandError('WRONGPASS invalid username-password pair or user is disabled.');
  c.authenticated = true;
}

/** checkName: CLIENT SETNAME's rule (no spaces, newlines or other special characters). */
function checkName(name: Buffer): Buffer | null {
  if (name.length === 0) return null;
  for (const b of name) if (b < 0x21 || b > 0x7e) throw new CommandError('ERR Client names cannot contain spaces, newlines or special characters.');
  return name;
}

/** helloReply is HELLO's answer: who is serving, in the protocol just chosen. */
function helloReply(c: ConnState): Reply {
  return reply.strMap([
    ['server', reply.bulk('flotilla')],
    ['version', reply.bulk(REDIS_COMPAT_VERSION)],
    ['proto', reply.integer(c.protocol)],
    ['id', reply.integer(c.id)],
    ['mode', reply.bulk('standalone')],
    ['role', reply.bulk('master')],
    ['modules', reply.array([])],
  ]);
}

function hello(ctx: FrontContext, c: ConnState, args: Buffer[]): Reply {
  let protocol = c.protocol;
  if (args.length >= 2) {
    const v = intArg(args[1]!);
    if (v !== 2n && v !== 3n) throw new CommandError('NOPROTO unsupported protocol version');
    protocol = Number(v) as 2 | 3;
  }
  let name: Buffer | null | undefined;
  for (let i = 2; i < args.length; i++) {
    const opt = upper(args[i]!);
    if (opt === 'AUTH' && i + 2 < args.length) {
      authenticate(ctx, c, args[i + 1]!, args[i + 2]!);
      i += 2;
    } else if (opt === 'SETNAME' && i + 1 < args.length) {
      name = checkName(args[++i]!);
    } else throw new CommandError(`ERR Syntax error in HELLO option '${args[i]!.toString('utf8').slice(0, 64)}'`);
  }
  if (!c.authenticated) {
    throw new CommandError('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time');
  }
  c.protocol = protocol;
  if (name !== undefined) c.name = name;
  return helloReply(c);
}

/** clientLine: one CLIENT LIST / CLIENT INFO line, the fields clients and tools read. */
export function clientLine(c: ConnState, now: number): string {
  const age = Math.floor((now - c.connectedAt) / 1000);
  return `id=${c.id} addr=${c.remote} laddr=${c.local} name=${c.name?.toString('utf8') ?? ''} age=${age} db=0 resp=${c.protocol} lib-name=${c.libName ?? ''} lib-ver=${c.libVersion ?? ''} cmd=${c.lastCommand}`;
}

function client(ctx: FrontContext, c: ConnState, args: Buffer[]): Reply {
  const sub = upper(args[1]!);
  const wrongArgs = (): never => {
    throw new CommandError(`ERR wrong number of arguments for 'client|${sub.toLowerCase()}' command`);
  };
  switch (sub) {
    case 'SETNAME':
      if (args.length !== 3) wrongArgs();
      c.name = checkName(args[2]!);
      return reply.ok;
    case 'GETNAME':
      if (args.length !== 2) wrongArgs();
      return reply.bulk(c.name);
    case 'ID':
      return reply.integer(c.id);
    case 'SETINFO': {
      if (args.length !== 4) wrongArgs();
      const attr = upper(args[2]!);
      const value = checkName(args[3]!)?.toString('utf8') ?? null;
      if (attr === 'LIB-NAME') c.libName = value;
      else if (attr === 'LIB-VER') c.libVersion = value;
      else throw new CommandError(`ERR Unrecognized option '${args[2]!.toString('utf8').slice(0, 64)}'`);
      return reply.ok;
    }
    case 'INFO':
      return reply.bulk(`${clientLine(c, Date.now())}\n`);
    case 'LIST':
      return reply.bulk(ctx.connections().map((x) => `${clientLine(x, Date.now())}\n`).join(''));
    case 'HELP':
      return reply.array(['CLIENT <subcommand> [<arg> ...]. Subcommands are:', 'GETNAME', 'SETNAME <name>', 'ID', 'INFO', 'LIST', 'SETINFO <LIB-NAME|LIB-VER> <value>'].map((s) => reply.simple(s)));
    default:
      throw new CommandError(`ERR unknown subcommand '${args[1]!.toString('utf8').slice(0, 128)}'. Try CLIENT HELP.`);
  }
}

export const CONNECTION_COMMANDS: CommandDef[] = [
  conn('ping', -1, ['fast'], '1.0.0', 'Returns PONG, or the message given.', (_ctx, _c, args) => {
    if (args.length > 2) throw new CommandError("ERR wrong number of arguments for 'ping' command");
    return args.length === 2 ? reply.bulk(args[1]!) : reply.simple('PONG');
  }),
  conn('echo', 2, ['fast'], '1.0.0', 'Returns the given string.', (_ctx, _c, args) => reply.bulk(args[1]!)),
  conn('auth', -2, ['fast', 'no-auth'], '1.0.0', 'Authenticates the connection with the API token (user: default).', (ctx, c, args) => {
    if (args.length > 3) throw new CommandError(SYNTAX_ERROR);
    authenticate(ctx, c, args.length === 3 ? args[1]! : null, args[args.length - 1]!);
    return reply.ok;
  }, true),
  conn('hello', -1, ['fast', 'no-auth'], '6.0.0', 'Chooses RESP2 or RESP3, optionally authenticates and names the connection; returns server facts.', (ctx, c, args) => hello(ctx, c, args), true),
  conn('client', -2, ['fast'], '2.4.0', 'Connection commands: SETNAME, GETNAME, ID, INFO, LIST, SETINFO.', (ctx, c, args) => client(ctx, c, args)),
  conn('select', 2, ['fast'], '1.0.0', 'Selects database 0 (the only one Flotilla has).', (_ctx, _c, args) => {
    const db = intArg(args[1]!);
    if (db !== 0n) throw new CommandError('ERR DB index is out of range (Flotilla has one database, 0)');
    return reply.ok;
  }),
  conn('quit', -1, ['fast', 'no-auth'], '1.0.0', 'Closes the connection once the replies before it are written.', (_ctx, c) => {
    c.closeAfterReply = true;
    return reply.ok;
  }, true),
];
