import { EXPIRY_GROUP_ENV, ExpiringWriteGroup } from './expiring-group';
import { leaseBookOf } from './lease-book';
import net from 'node:net';
import { LIMITS, RateLimitedLog, type Logger } from '@flotilla/proto';
import { runBatch, takeRun } from './batch';
import { dispatch, sameKeyRmw } from './commands/index';
import type { ConnState, FrontContext, FrontStats, KeyEstimate, KvClient } from './context';
import { CursorTable } from './cursor';
import { DEFAULT_PUBSUB_LIMITS, PubSubHub, type PubSubLimits, type WatchClient } from './pubsub/hub';
import { Subscriber } from './pubsub/subscriber';
import { RespParser, RespProtocolError, encodeReply, type Reply, type RespLimits } from './resp';
import { RmwCombiner } from './rmw';
import { expiryOf, TxnKeyspace, TxnScope, type Keyspace, type TxnClient } from './txn';

// server.ts: the Redis protocol front's TCP server. Each connection parses
// commands as they arrive and runs them one after another, in order (what
// Redis promises a connection: a pipeline's later command sees the earlier
// one's effect); many connections run concurrently and share one
// FlotillaClient.

/** FrontLimits: every bound of the front (docs/redis.md "Limits"). */
export interface FrontLimits {
  /** maxConnections: more are answered `-ERR max number of clients reached` and closed. */
  maxConnections: number;
  /** maxPipeline: parsed commands waiting on one connection; past it the front stops reading that socket until half are done. */
  maxPipeline: number;
  /** maxOutputBytes: replies waiting to be sent on one socket; past it the connection runs nothing until the client reads. */
  maxOutputBytes: number;
  /** partialCommandTimeoutMs: a connection holding part of a command this long after its last complete one is closed. */
  partialCommandTimeoutMs: number;
  /** shutdownGraceMs: how long close() waits for commands in flight before it drops connections. */
  shutdownGraceMs: number;
  resp: RespLimits;
  /** pubsub: subscribers' output-buffer limits and watch bounds (pubsub/hub.ts). */
  pubsub: PubSubLimits;
}

export const DEFAULT_LIMITS: FrontLimits = {
  maxConnections: 1000,
  maxPipeline: 1024,
  maxOutputBytes: 64 * 1024 * 1024,
  partialCommandTimeoutMs: 60_000,
  shutdownGraceMs: 5_000,
  resp: { maxBulkBytes: LIMITS.maxValueBytes, maxArgs: 32_768, maxCommandBytes: 64 * 1024 * 1024, maxInlineBytes: 64 * 1024 },
  pubsub: DEFAULT_PUBSUB_LIMITS,
};

export interface RedisFrontOptions {
  /** listen: host:port to serve on (port 0 picks a free port). */
  host: string;
  port: number;
  client: KvClient;
  /** keyspace: serve the raw keyspace (default) or the transactional one, which needs txnClient. */
  keyspace?: Keyspace;
  /** txnClient: the client's transactions (required with keyspace 'txn'; usually the same FlotillaClient). */
  txnClient?: TxnClient;
  /** watchClient: the client's watch, for keyspace notifications (keyspace 'txn'; usually the same FlotillaClient). Without it SUBSCRIBE to a keyspace channel is refused. */
  watchClient?: WatchClient;
  /** placement: the placement address(es) the client routes through (INFO reports it). */
  placement: string;
  /** token: AUTH must present it before any data command (none: no AUTH). */
  token?: string;
  /** keyEstimate: the cluster's approximate key count (DBSIZE, INFO keyspace). */
  keyEstimate: () => Promise<KeyEstimate>;
  logger: Logger;
  limits?: Partial<Omit<FrontLimits, 'resp' | 'pubsub'>> & { resp?: Partial<RespLimits>; pubsub?: Partial<PubSubLimits> };
}

/** RedisFront is a running front: where it listens, its counters, and close(). */
export interface RedisFront {
  host: string;
  port: number;
  address: string;
  stats: FrontStats;
  /** connectionCount: connections open now. */
  connectionCount(): number;
  /** pubsubWatches: Flotilla watches open for keyspace notifications now (one per distinct prefix per subscribed connection). */
  pubsubWatches(): number;
  close(): Promise<void>;
}

/** startRedisFront listens and serves until close(); resolves once listening. */
export async function startRedisFront(opts: RedisFrontOptions): Promise<RedisFront> {
  const limits: FrontLimits = { ...DEFAULT_LIMITS, ...opts.limits, resp: { ...DEFAULT_LIMITS.resp, ...opts.limits?.resp }, pubsub: { ...DEFAULT_LIMITS.pubsub, ...opts.limits?.pubsub } };
  const conns = new Set<Connection>();
  const stats: FrontStats = { connectionsReceived: 0, connectionsRejected: 0, commandsProcessed: 0, errorReplies: 0, protocolErrors: 0, batchedCommands: 0 };
  const server = net.createServer({ noDelay: true });
  // Refusals (connection limit, wrong token, protocol errors) are logged once per source and window: a hostile client cannot fill the log.
  const refusals = new RateLimitedLog(opts.logger);
  const keyspace = opts.keyspace ?? 'raw';
  const txnClient = opts.txnClient;
  if (keyspace === 'txn' && !txnClient) throw new Error('redis: keyspace txn needs txnClient');
  const client = keyspace === 'txn' ? new TxnKeyspace(txnClient!) : opts.client;
  const ctx: FrontContext = {
    client,
    rmw: new RmwCombiner(client),
    keyspace,
    txnClient: keyspace === 'txn' ? txnClient : undefined,
    atomic: keyspace === 'txn' ? (fn) => txnClient!.txn((tx) => fn(new TxnScope(tx, expiryOf(txnClient!)))) : undefined,
    expiringWrites: keyspace === 'txn' && process.env[EXPIRY_GROUP_ENV] !== 'off' ? new ExpiringWriteGroup(txnClient!, leaseBookOf(txnClient!)) : undefined,
    cursors: new CursorTable(),
    token: opts.token,
    stats,
    startedAt: Date.now(),
    listen: { host: opts.host, port: opts.port },
    placement: opts.placement,
    maxConnections: limits.maxConnections,
    connections: () => [...conns].map((c) => c.state),
    keyEstimate: cached(opts.keyEstimate, 5_000),
    ...(keyspace === 'txn' ? { pubsub: new PubSubHub(opts.watchClient, limits.pubsub, opts.logger) } : {}),
  };
  let nextId = 1;
  server.on('connection', (socket) => {
    stats.connectionsReceived++;
    if (conns.size >= limits.maxConnections) {
      stats.connectionsRejected++;
      refusals.warn(`maxclients ${socket.remoteAddress}`, { remote: socket.remoteAddress, maxConnections: limits.maxConnections }, 'redis: connection refused: max number of clients reached');
      socket.end('-ERR max number of clients reached\r\n');
      return;
    }
    const c = new Connection(socket, nextId++, ctx, limits, opts.logger, refusals, () => conns.delete(c));
    conns.add(c);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.logger.error({ err: err.message }, 'redis: server error'));
  const bound = server.address() as net.AddressInfo;
  ctx.listen = { host: opts.host, port: bound.port };
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  let closing: Promise<void> | undefined;
  return {
    host: bound.address,
    port: bound.port,
    address: `${host}:${bound.port}`,
    stats,
    connectionCount: () => conns.size,
    pubsubWatches: () => ctx.pubsub?.watches ?? 0,
    close: () =>
      (closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        await Promise.all([...conns].map((c) => c.shutdown(limits.shutdownGraceMs)));
        await closed;
        refusals.close();
      })()),
  };
}

/** cached shares one in-flight call and reuses its answer for ttlMs (DBSIZE in a loop must not flood placement). */
function cached<T>(fn: () => Promise<T>, ttlMs: number): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    const now = Date.now();
    if (last && now - last.at < ttlMs) return last.value;
    const value = fn();
    last = { at: now, value };
    value.catch(() => (last = undefined));
    return value;
  };
}

/**
 * Connection is one client socket. Reading feeds the parser, which queues
 * complete commands (at most maxPipeline: past that the socket is paused,
 * so a client that pipelines faster than the cluster answers is slowed by
 * TCP, not buffered without bound). The run loop executes the queue in
 * order; replies of commands that need no round trip are batched into one
 * write. A protocol error stops parsing: the commands before it run and
 * are answered, then the error is written and the connection closed.
 */
class Connection {
  readonly state: ConnState;
  private readonly parser: RespParser;
  private readonly queue: Buffer[][] = [];
  private out: Buffer[] = [];
  private running = false;
  private closed = false;
  private protocolError: string | undefined;
  private partialTimer: NodeJS.Timeout | undefined;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => {};
  /** pushBytes: bytes of pub/sub messages in `out` not yet written; pushFlush: a write of them is scheduled. */
  private pushBytes = 0;
  private pushFlush = false;

  constructor(
    private readonly socket: net.Socket,
    id: number,
    private readonly ctx: FrontContext,
    private readonly limits: FrontLimits,
    private readonly logger: Logger,
    private readonly refusals: RateLimitedLog,
    onClose: () => void,
  ) {
    this.parser = new RespParser(limits.resp);
    this.state = {
      id,
      protocol: 2,
      name: null,
      authenticated: ctx.token === undefined,
      libName: null,
      libVersion: null,
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      local: `${socket.localAddress}:${socket.localPort}`,
      connectedAt: Date.now(),
      lastCommand: 'NULL',
      closeAfterReply: false,
      multi: null,
      watched: new Map(),
    };
    if (ctx.pubsub) {
      this.state.pubsub = new Subscriber(ctx.pubsub, {
        push: (r) => this.push(r),
        unsentBytes: () => this.socket.writableLength + this.pushBytes,
        drop: (reason) => {
          logger.info({ id, remote: this.state.remote, reason }, 'redis: dropping a subscriber');
          this.closed = true;
          this.queue.length = 0;
          this.socket.destroy();
        },
      });
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => logger.debug({ id, remote: this.state.remote, err: err.message }, 'redis: socket error'));
    socket.on('close', () => {
      this.closed = true;
      this.queue.length = 0;
      clearTimeout(this.partialTimer);
      this.state.pubsub?.shutdown();
      onClose();
    });
    logger.debug({ id, remote: this.state.remote }, 'redis: connection opened');
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.protocolError !== undefined) return;
    this.parser.push(chunk);
    this.parse();
    void this.run();
  }

  /** parse moves complete commands from the parser to the queue, up to maxPipeline. */
  private parse(): void {
    let completed = 0;
    while (this.queue.length < this.limits.maxPipeline && this.protocolError === undefined) {
      let cmd: Buffer[] | null;
      try {
        cmd = this.parser.next();
      } catch (err) {
        if (!(err instanceof RespProtocolError)) throw err;
        this.protocolError = err.message;
        this.ctx.stats.protocolErrors++;
        this.refusals.warn(`protocol ${this.socket.remoteAddress}`, { id: this.state.id, remote: this.state.remote, error: err.message }, 'redis: protocol error; closing the connection');
        break;
      }
      if (cmd === null) break;
      this.queue.push(cmd);
      completed++;
    }
    if (this.queue.length >= this.limits.maxPipeline) this.socket.pause();
    this.armPartialTimer(completed > 0);
  }

  /** armPartialTimer bounds how long a half-sent command may sit: from the last complete command, while part of one is buffered. */
  private armPartialTimer(progressed: boolean): void {
    const waiting = this.parser.pending && this.queue.length < this.limits.maxPipeline && this.protocolError === undefined;
    if (progressed || !waiting) {
      clearTimeout(this.partialTimer);
      this.partialTimer = undefined;
    }
    if (waiting && this.partialTimer === undefined) {
      this.partialTimer = setTimeout(() => {
        this.logger.info({ id: this.state.id, remote: this.state.remote, timeoutMs: this.limits.partialCommandTimeoutMs }, 'redis: incomplete command timed out; closing the connection');
        this.protocolError = `incomplete command for ${this.limits.partialCommandTimeoutMs} ms`;
        void this.run();
      }, this.limits.partialCommandTimeoutMs);
      this.partialTimer.unref();
    }
  }

  /** run executes the queue in order until it is empty (one run loop per connection at a time). */
  private async run(): Promise<void> {
    if (this.running || this.closed) return;
    this.running = true;
    this.idle = new Promise((r) => (this.markIdle = r));
    try {
      while (this.queue.length > 0 && !this.closed) {
        if (this.socket.writableLength > this.limits.maxOutputBytes) {
          this.flush();
          await new Promise<void>((r) => {
            this.socket.once('drain', r);
            this.socket.once('close', r);
          });
          continue;
        }
        const cmd = this.queue.shift()!;
        // A run of plain GETs or SETs goes out as one request when its keys share a Region (batch.ts says why that keeps the order).
        const run = this.state.authenticated && !this.state.multi && !this.state.pubsub?.count ? takeRun(cmd, this.queue) : null;
        if (run) {
          this.flush();
          for (const reply of await runBatch(this.ctx, this.state, run)) this.answer(reply);
          this.maybeResume();
          continue;
        }
        const r = dispatch(this.ctx, this.state, cmd);
        if (r instanceof Promise) {
          // A run of read-modify-writes of this same key queues behind it in the combiner, in order: start them all now.
          const started: (Reply | Promise<Reply>)[] = [r];
          while (!this.state.multi && sameKeyRmw(cmd, this.queue[0])) started.push(dispatch(this.ctx, this.state, this.queue.shift()!));
          this.flush();
          for (const s of started) this.answer(await s);
        } else this.answer(r);
        if (this.state.closeAfterReply) {
          this.end();
          return;
        }
        this.maybeResume();
      }
      if (this.protocolError !== undefined && !this.closed) {
        this.answer({ type: 'error', value: `ERR Protocol error: ${this.protocolError}` });
        this.end();
        return;
      }
      this.flush();
    } finally {
      this.running = false;
      this.markIdle();
    }
  }

  /** maybeResume reads on once the queue is down to half of maxPipeline (and parses what the parser already holds). */
  private maybeResume(): void {
    if (this.queue.length <= this.limits.maxPipeline / 2 && this.socket.isPaused() && !this.closed) {
      this.parse();
      if (this.queue.length < this.limits.maxPipeline) this.socket.resume();
    }
  }

  private answer(r: Reply): void {
    if (this.closed) return;
    if (r.type === 'error') {
      this.ctx.stats.errorReplies++;
      if (r.value.startsWith('WRONGPASS')) this.refusals.warn(`auth ${this.socket.remoteAddress}`, { id: this.state.id, remote: this.state.remote }, 'redis: AUTH with a wrong token');
    }
    encodeReply(r, this.state.protocol, this.out);
  }

  /** push queues a pub/sub message behind the replies already answered and writes it on the next turn (messages of one turn go in one write). */
  private push(r: Reply): void {
    if (this.closed) return;
    const n = this.out.length;
    encodeReply(r, this.state.protocol, this.out);
    for (let i = n; i < this.out.length; i++) this.pushBytes += this.out[i]!.length;
    if (!this.pushFlush) {
      this.pushFlush = true;
      setImmediate(() => {
        this.pushFlush = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    this.pushBytes = 0;
    if (this.out.length === 0 || this.closed) {
      this.out = [];
      return;
    }
    this.socket.write(this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out));
    this.out = [];
  }

  /** end writes what is pending and closes the connection (QUIT, protocol errors, shutdown). */
  private end(): void {
    this.flush();
    this.closed = true;
    this.queue.length = 0;
    clearTimeout(this.partialTimer);
    this.socket.end();
    // A client that does not read its last replies must not hold the socket open.
    setTimeout(() => this.socket.destroy(), 5_000).unref();
  }

  /** shutdown drops commands not yet started (so they do not apply), waits up to graceMs for the one in flight, then closes. */
  async shutdown(graceMs: number): Promise<void> {
    this.socket.pause();
    this.queue.length = 0;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    if (!this.closed) this.end();
    if (!this.socket.destroyed) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, 1_000);
        this.socket.once('close', () => {
          clearTimeout(t);
          r();
        });
      });
    }
    this.socket.destroy();
  }
}
