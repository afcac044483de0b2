import type { FlotillaClient } from '@flotilla/client';
import type { Logger } from '@flotilla/proto';
import { enumFlag, hostPortFlag, intFlag, type CommandSpec, type FlagSpec } from '../args';
import { waitForShutdown, type Command, type CommandContext } from '../command';
import type { KeyEstimate } from '../redis/context';
import { startRedisFront, type RedisFront } from '../redis/server';
import type { Keyspace } from '../redis/txn';
import { type ClientSecurity } from '../security';
import { connectClient, resolvePlacement, security, targetFlags } from '../target';
import { fetchRegions } from './info';

// `flotilla redis`: the Redis protocol front (docs/redis.md). It routes
// every command through one FlotillaClient; `flotilla up --redis-port`
// runs the same front inside the supervisor.

/** maxConnectionsFlag: shared by `redis` and `up --redis-port`. */
export const redisMaxConnectionsFlag: FlagSpec = {
  name: 'redis-max-connections',
  type: 'string',
  placeholder: 'N',
  description: 'Redis connections served at once; more are answered "-ERR max number of clients reached" and closed',
  default: '1000',
  schema: intFlag(1, 100_000),
};

/** keyspaceFlag: which keyspace the front serves (shared by `redis --keyspace` and `up --redis-keyspace`). */
export const redisKeyspaceFlag: FlagSpec = {
  name: 'redis-keyspace',
  type: 'string',
  placeholder: 'raw|txn',
  description: 'keyspace the Redis front serves: raw (default; the fastest, single-key atomicity) or txn (transactional keys: MULTI/EXEC/WATCH, multi-key commands atomic across Regions); the two never alias (docs/redis.md)',
  default: 'raw',
  schema: enumFlag(['raw', 'txn'] as const),
};

const redisSpec: CommandSpec = {
  path: ['redis'],
  summary: 'Serve the Redis protocol (RESP2/RESP3) on a TCP port, routing every command through the Flotilla client.',
  description:
    'redis-cli, redis-benchmark, ioredis and other Redis clients can then read and write the cluster: strings (GET, SET with NX/XX/GET, MGET, MSET, INCR, APPEND, SETRANGE, ...), DEL, EXISTS, SCAN, DBSIZE (an estimate), and the connection commands. Read-modify-write commands are atomic (compare-and-swap). With --keyspace txn every command uses the transactional keyspace instead (snapshot reads, writes as transactions) and MULTI/EXEC/DISCARD/WATCH/UNWATCH work, atomic across Regions, and SUBSCRIBE/PSUBSCRIBE deliver keyspace notifications (__keyspace@0__:KEY, __keyevent@0__:set|del) through watch; on raw they are refused. Key expiry is refused until leases exist. With --token (or FLOTILLA_TOKEN), clients must AUTH with that same API token. Prints one JSON line with its address on stdout once it serves; Ctrl-C or SIGTERM stops it (exit 0). Commands, semantics and limits: docs/redis.md.',
  positionals: [],
  flags: [
    { name: 'listen', type: 'string', placeholder: 'HOST:PORT', description: 'address to serve Redis clients on (port 0 picks a free port)', default: '127.0.0.1:6379', schema: hostPortFlag(true) },
    { ...redisMaxConnectionsFlag, name: 'max-connections' },
    { ...redisKeyspaceFlag, name: 'keyspace' },
    ...targetFlags,
  ],
  examples: [
    'flotilla redis --listen 127.0.0.1:6379 --placement 127.0.0.1:20160   # then: redis-cli -p 6379 set greeting hello',
    'flotilla redis --data-dir ./data      # the cluster `flotilla up` started in ./data',
    'flotilla redis --keyspace txn --listen 127.0.0.1:6380 --data-dir ./data   # MULTI/EXEC/WATCH on transactions',
  ],
};

/** regionKeyEstimate sums placement's approximate key counts (GET /regions), for DBSIZE and INFO keyspace. */
export function regionKeyEstimate(placement: string, sec: ClientSecurity, timeoutMs = 3_000): () => Promise<KeyEstimate> {
  return async () => {
    const rows = await fetchRegions(placement, timeoutMs, sec);
    return { keys: rows.reduce((n, r) => n + (r.approximateKeys ?? 0), 0), regions: rows.length };
  };
}

/** isLoopback: whether a listen host is reachable only from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]';
}

/** startFront starts the front on host:port for a connected client, warning when it is open to the network without a token. */
export async function startFront(opts: { host: string; port: number; client: FlotillaClient; placement: string; sec: ClientSecurity; maxConnections: number; keyspace: Keyspace; logger: Logger }): Promise<RedisFront> {
  if (!opts.sec.token && !isLoopback(opts.host)) {
    opts.logger.warn({ host: opts.host }, 'redis: serving a non-loopback address without --token: anyone who can reach it can read and write every key');
  }
  const front = await startRedisFront({
    host: opts.host,
    port: opts.port,
    client: opts.client,
    keyspace: opts.keyspace,
    txnClient: opts.client,
    watchClient: opts.client,
    placement: opts.placement,
    ...(opts.sec.token ? { token: opts.sec.token } : {}),
    keyEstimate: regionKeyEstimate(opts.placement, opts.sec),
    logger: opts.logger,
    limits: { maxConnections: opts.maxConnections },
  }).catch((err: NodeJS.ErrnoException) => {
    const hint = err.code === 'EADDRINUSE' ? ' (something else serves that port, perhaps a Redis server: pick another port)' : '';
    throw new Error(`redis: cannot listen on ${opts.host}:${opts.port}: ${err.message}${hint}`);
  });
  opts.logger.info({ address: front.address, placement: opts.placement, keyspace: opts.keyspace, auth: opts.sec.token ? 'token' : 'none' }, 'redis: serving');
  return front;
}

/** redisPortFlag: `flotilla up --redis-port P` serves the Redis protocol on the cluster host, port P (0: a free port). */
export const redisPortFlag: FlagSpec = {
  name: 'redis-port',
  type: 'string',
  placeholder: 'PORT',
  description: 'also serve the Redis protocol (flotilla redis) on 127.0.0.1:PORT, inside this process (0 picks a free port); off by default',
  schema: intFlag(0, 65_535),
};

/** RedisUp is the front `flotilla up --redis-port` runs: its address, and close() for the shutdown (front, then its client). */
export interface RedisUp {
  address: string;
  port: number;
  close(): Promise<void>;
}

/** startUpRedis starts the front for `up` when --redis-port was given: a client of the cluster's placement with the cluster's token and CA. */
export async function startUpRedis(ctx: CommandContext, placement: string, sec: ClientSecurity): Promise<RedisUp | undefined> {
  const port = ctx.parsed.values['redisPort'] as number | undefined;
  if (port === undefined) return undefined;
  const { FlotillaClient } = await import('@flotilla/client');
  const client = await FlotillaClient.connect({ placement, logger: ctx.logger, ...sec });
  let front: RedisFront;
  try {
    front = await startFront({ host: '127.0.0.1', port, client, placement, sec, maxConnections: ctx.parsed.values['redisMaxConnections'] as number, keyspace: ctx.parsed.values['redisKeyspace'] as Keyspace, logger: ctx.logger });
  } catch (err) {
    client.close();
    throw err;
  }
  return {
    address: front.address,
    port: front.port,
    close: async () => {
      await front.close();
      client.close();
    },
  };
}

export const redisCommand: Command = {
  spec: redisSpec,
  async run(ctx) {
    const listen = ctx.parsed.values['listen'] as string;
    const i = listen.lastIndexOf(':');
    const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = Number(listen.slice(i + 1));
    const placement = resolvePlacement(ctx);
    const sec = security(ctx);
    const client = await connectClient(ctx);
    let front: RedisFront;
    try {
      front = await startFront({ host, port, client, placement, sec, maxConnections: ctx.parsed.values['maxConnections'] as number, keyspace: ctx.parsed.values['keyspace'] as Keyspace, logger: ctx.logger });
    } catch (err) {
      client.close();
      throw err;
    }
    ctx.io.stdout.write(JSON.stringify({ service: 'redis', address: front.address, placement, keyspace: ctx.parsed.values['keyspace'], pid: process.pid }) + '\n');
    return waitForShutdown(ctx, async () => {
      await front.close();
      client.close();
    });
  },
};
