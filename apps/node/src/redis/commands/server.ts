import { LIMITS } from '@flotilla/proto';
import { CommandError, upper, type CommandDef, type FrontContext, type KeyEstimate } from '../context';
import { Glob } from '../glob';
import { reply, type Reply } from '../resp';
import { REDIS_COMPAT_VERSION } from './connection';

// Server commands: INFO and CONFIG GET (read-only facts, so tools such as
// redis-benchmark and ioredis' ready check find what they look for).

/** FLOTILLA_VERSION: this front's own version (INFO flotilla_version). */
export const FLOTILLA_VERSION = '0.1.0';

const server = (name: string, arity: number, flags: string[], since: string, summary: string, run: CommandDef['run']): CommandDef => ({
  name,
  arity,
  flags,
  firstKey: 0,
  lastKey: 0,
  keyStep: 0,
  group: 'server',
  since,
  summary,
  complexity: 'O(1)',
  run,
});

type Section = [string, [string, string | number][]];

/** estimateLines: the Keyspace section, its key count marked as an estimate (placement's Region heartbeats, not a count). */
function keyspace(estimate: KeyEstimate | Error): Section {
  if (estimate instanceof Error) return ['Keyspace', [['flotilla_keys_estimate_error', estimate.message.replace(/[\r\n]+/g, ' ')]]];
  return [
    'Keyspace',
    [
      ['db0', `keys=${estimate.keys},expires=0,avg_ttl=0,keys_estimated=1`],
      ['flotilla_keys_estimate', estimate.keys],
      ['flotilla_keys_estimate_source', 'placement approximate_keys from Region heartbeats (not an exact count)'],
      ['flotilla_regions', estimate.regions],
    ],
  ];
}

async function sections(ctx: FrontContext): Promise<Section[]> {
  const now = Date.now();
  const uptime = Math.floor((now - ctx.startedAt) / 1000);
  const estimate = await ctx.keyEstimate().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
  const s = ctx.stats;
  return [
    [
      'Server',
      [
        ['redis_version', REDIS_COMPAT_VERSION],
        ['flotilla_version', FLOTILLA_VERSION],
        ['redis_mode', 'standalone'],
        ['os', `${process.platform} ${process.arch}`],
        ['process_id', process.pid],
        ['tcp_port', ctx.listen.port],
        ['uptime_in_seconds', uptime],
        ['uptime_in_days', Math.floor(uptime / 86_400)],
        ['flotilla_placement', ctx.placement],
      ],
    ],
    ['Clients', [['connected_clients', ctx.connections().length], ['maxclients', ctx.maxConnections]]],
    ['Persistence', [['loading', 0], ['flotilla_durability', 'every write is committed by a Raft quorum before its reply']]],
    [
      'Stats',
      [
        ['total_connections_received', s.connectionsReceived],
        ['total_commands_processed', s.commandsProcessed],
        ['total_error_replies', s.errorReplies],
        ['rejected_connections', s.connectionsRejected],
        ['flotilla_protocol_errors', s.protocolErrors],
        ['flotilla_batched_commands', s.batchedCommands],
        ['flotilla_cas_rounds', ctx.rmw.stats.casRounds],
        ['flotilla_cas_conflicts', ctx.rmw.stats.casConflicts],
        ['flotilla_rmw_commands', ctx.rmw.stats.combinedCommands],
        ['flotilla_scan_cursors', ctx.cursors.size],
      ],
    ],
    ['Replication', [['role', 'master'], ['connected_slaves', 0]]],
    keyspace(estimate),
  ];
}

const DEFAULT_SECTIONS = new Set(['server', 'clients', 'persistence', 'stats', 'replication', 'keyspace']);

async function info(ctx: FrontContext, args: Buffer[]): Promise<Reply> {
  const wanted = new Set(args.slice(1).map((a) => a.toString('utf8').toLowerCase()));
  const all = wanted.size === 0 || wanted.has('all') || wanted.has('everything') || wanted.has('default');
  let text = '';
  for (const [name, fields] of await sections(ctx)) {
    if (!all && !wanted.has(name.toLowerCase())) continue;
    if (all && !DEFAULT_SECTIONS.has(name.toLowerCase())) continue;
    if (text !== '') text += '\r\n';
    text += `# ${name}\r\n`;
    for (const [k, v] of fields) text += `${k}:${v}\r\n`;
  }
  return reply.bulk(text);
}

/** CONFIG_VALUES: what CONFIG GET reports; read-only, for tools that look (redis-benchmark asks for save and appendonly). */
function configValues(ctx: FrontContext): [string, string][] {
  return [
    ['save', ''],
    ['appendonly', 'yes'], // every write is durable on a quorum before its reply, which is what clients mean by asking
    ['databases', '1'],
    ['maxclients', String(ctx.maxConnections)],
    ['maxmemory', '0'],
    ['proto-max-bulk-len', String(LIMITS.maxValueBytes)],
    ['timeout', '0'],
    ['port', String(ctx.listen.port)],
    ['bind', ctx.listen.host],
  ];
}

function config(ctx: FrontContext, args: Buffer[]): Reply {
  const sub = upper(args[1]!);
  if (sub !== 'GET') {
    if (['SET', 'RESETSTAT', 'REWRITE'].includes(sub)) throw new CommandError(`ERR CONFIG ${sub} is not supported: the front's settings are its command-line flags (flotilla redis --help)`);
    throw new CommandError(`ERR unknown subcommand '${args[1]!.toString('utf8').slice(0, 128)}'. Try CONFIG GET.`);
  }
  if (args.length < 3) throw new CommandError("ERR wrong number of arguments for 'config|get' command");
  const patterns = args.slice(2).map((p) => new Glob(Buffer.from(p.toString('utf8').toLowerCase())));
  const entries = configValues(ctx).filter(([k]) => patterns.some((g) => g.matches(Buffer.from(k))));
  return reply.map(entries.map(([k, v]) => [reply.bulk(k), reply.bulk(v)]));
}

export const SERVER_COMMANDS: CommandDef[] = [
  server('info', -1, ['loading', 'stale'], '1.0.0', 'Returns facts and counters about the front (sections server, clients, persistence, stats, replication, keyspace; key counts are estimates).', (ctx, _c, args) => info(ctx, args)),
  server('config', -2, ['admin', 'loading', 'stale'], '2.0.0', 'CONFIG GET reports a few read-only settings; CONFIG SET is not supported.', (ctx, _c, args) => config(ctx, args)),
];
