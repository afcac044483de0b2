// WsTransport: store-to-store raft messaging over WebSocket.
//
// One listener per store; one authenticated connection per store pair for
// raft traffic (either side may dial, lazily, on the first send; when both
// dial at once the connection dialed by the lower store ID wins on both
// sides); one short-lived connection per snapshot. Messages queue per
// destination store until flush(), which writes them as one frame.
// Everything is bounded: queue messages and bytes, frame size, socket
// backlog, handshake time, concurrent inbound snapshots.

import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import type { RaftMessage } from '@flotilla/proto';
import { decodeRaftFrame, FRAME_HEADER_BYTES, FrameWriter } from './codec';
import { Connections, type Conn } from './connection';
import { CloseCode, HandshakeError, type Channel } from './handshake';
import { SnapshotReceiver, type SnapshotReceiverContext } from './snapshot-receiver';
import { SnapshotSender, type SnapshotSenderContext } from './snapshot-sender';
import {
  emptyStats,
  TransportError,
  type MessagesHandler,
  type SnapshotChunks,
  type SnapshotHandler,
  type SnapshotHeader,
  type Transport,
  type TransportStats,
  type UnreachableHandler,
} from './transport';

/** AddressResolver maps a store ID to "host:port" (placement provides it); undefined = unknown store. */
export type AddressResolver = (storeId: number) => Promise<string | undefined>;

export interface WsTransportOptions {
  storeId: number;
  /** clusterId must match on both ends of every connection. */
  clusterId: string | number;
  /** secret is the cluster's shared secret for the HMAC handshake. Never logged. */
  secret: string | Uint8Array;
  resolveAddress: AddressResolver;
  /** listen address (default 127.0.0.1, port 0 = any free port). */
  host?: string;
  port?: number;
  /** logger (pino); default silent. */
  logger?: Logger;
  /** maxQueuedMessages per destination store (default 65,536). */
  maxQueuedMessages?: number;
  /** maxQueuedBytes per destination store (default 64 MiB, estimated). */
  maxQueuedBytes?: number;
  /** maxFrameBytes: largest raft frame sent or accepted (default 16 MiB); bigger batches are split. */
  maxFrameBytes?: number;
  /** maxSocketBufferedBytes: while a socket holds more unsent bytes, flush leaves messages queued (default 16 MiB). */
  maxSocketBufferedBytes?: number;
  /** handshakeTimeoutMs for both sides (default 5,000). */
  handshakeTimeoutMs?: number;
  /** reconnect backoff: base and cap (defaults 100 ms and 5,000 ms), with jitter in [50%, 100%]. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** unreachableReportIntervalMs: at most one onUnreachable per store per interval (default 100). */
  unreachableReportIntervalMs?: number;
  /** snapshotChunkBytes: larger chunks are split (default 1 MiB). */
  snapshotChunkBytes?: number;
  /** snapshotWindow: chunks in flight without acknowledgement (default 4). */
  snapshotWindow?: number;
  /** snapshotIdleTimeoutMs: a snapshot with no progress for this long fails (default 30,000). */
  snapshotIdleTimeoutMs?: number;
  /**
   * keepaliveIntervalMs: raft connections are pinged this often; one with no
   * pong (or frame) for a whole interval is closed as dead (default 10,000;
   * 0 disables). Catches half-open TCP connections of crashed machines.
   */
  keepaliveIntervalMs?: number;
  /** maxPendingHandshakes: inbound connections still in their handshake (default 256); more are closed at once. */
  maxPendingHandshakes?: number;
  /** maxInboundSnapshots at once (default 4); more are refused with Busy. */
  maxInboundSnapshots?: number;
  /** faults: fault-injection hooks, off unless enabled. */
  faults?: { enabled: boolean };
  /** random for backoff jitter (default Math.random). */
  random?: () => number;
  /**
   * tls switches the whole cluster to wss://: this store serves TLS with
   * cert/key and dials peers with TLS, trusting `caPath` (default: the
   * system roots). The HMAC handshake still authenticates both stores.
   */
  tls?: TlsOptions;
}

export interface TlsOptions {
  certPath: string;
  keyPath: string;
  caPath?: string;
  /** rejectUnauthorized: verify the peer's certificate chain and name (default true). */
  rejectUnauthorized?: boolean;
}

/** WsFaults is the chaos-test hook (only when options.faults.enabled). */
export interface WsFaults {
  /** blockStore drops everything to and from a store and closes its connections. */
  blockStore(storeId: number): void;
  unblock(storeId: number): void;
  unblockAll(): void;
  isBlocked(storeId: number): boolean;
}

/** DestinationBacklog describes what waits for one destination store. */
export interface DestinationBacklog {
  queuedMessages: number;
  queuedBytes: number;
  socketBufferedBytes: number;
  connected: boolean;
}

/** Link is the state of raft traffic to one remote store. */
class Link {
  conn: Conn | undefined;
  dialing = false;
  pending: RaftMessage[] = [];
  pendingBytes = 0;
  attempts = 0;
  backoffUntil = 0;
  everConnected = false;
  lastUnreachableAt = -Infinity;
  waitingForDrain = false;
  constructor(readonly storeId: number) {}
}

function estimateBytes(m: RaftMessage): number {
  let n = 64 + m.startKey.length + m.endKey.length;
  const msg = m.message;
  for (let i = 0; i < msg.entries.length; i++) {
    const e = msg.entries[i]!;
    n += 24 + e.data.length + (e.context?.length ?? 0);
  }
  if (msg.context) n += msg.context.length;
  if (msg.snapshot) n += 256 + msg.snapshot.data.length;
  return n;
}

export class WsTransport implements Transport {
  readonly storeId: number;
  /** faults is defined only when fault injection is enabled in the options. */
  readonly faults: WsFaults | undefined;
  private readonly log: Logger;
  private readonly opts: Required<Omit<WsTransportOptions, 'logger' | 'faults' | 'secret' | 'clusterId' | 'storeId' | 'resolveAddress' | 'random' | 'tls'>>;
  private readonly tls: { cert: Buffer; key: Buffer; ca: Buffer | undefined; rejectUnauthorized: boolean } | undefined;
  private readonly resolveAddress: AddressResolver;
  private readonly random: () => number;
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private boundAddress: AddressInfo | undefined;
  private readonly links = new Map<number, Link>();
  private readonly dirty = new Set<Link>();
  private readonly conns: Connections;
  private readonly blocked = new Set<number>();
  private readonly writer = new FrameWriter();
  private readonly counters: TransportStats = emptyStats();
  private messagesHandler: MessagesHandler | undefined;
  private unreachableHandler: UnreachableHandler | undefined;
  private snapshotHandler: SnapshotHandler | undefined;
  private inboundSnapshots = 0;
  private readonly outboundSnapshots = new Set<SnapshotSender>();
  private readonly snapshotContext: SnapshotSenderContext & SnapshotReceiverContext;
  private state: 'new' | 'running' | 'closed' = 'new';
  private keepaliveTimer: NodeJS.Timeout | undefined;

  constructor(options: WsTransportOptions) {
    if (!Number.isSafeInteger(options.storeId) || options.storeId <= 0) throw new RangeError(`storeId must be a positive integer, got ${options.storeId}`);
    const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : Buffer.from(options.secret);
    if (secret.length === 0) throw new RangeError('secret must not be empty');
    this.storeId = options.storeId;
    this.resolveAddress = options.resolveAddress;
    this.random = options.random ?? Math.random;
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'transport', store: options.storeId });
    this.opts = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 0,
      maxQueuedMessages: options.maxQueuedMessages ?? 65_536,
      maxQueuedBytes: options.maxQueuedBytes ?? 64 * 1024 * 1024,
      maxFrameBytes: options.maxFrameBytes ?? 16 * 1024 * 1024,
      maxSocketBufferedBytes: options.maxSocketBufferedBytes ?? 16 * 1024 * 1024,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5_000,
      reconnectBaseMs: options.reconnectBaseMs ?? 100,
      reconnectMaxMs: options.reconnectMaxMs ?? 5_000,
      unreachableReportIntervalMs: options.unreachableReportIntervalMs ?? 100,
      snapshotChunkBytes: options.snapshotChunkBytes ?? 1024 * 1024,
      snapshotWindow: options.snapshotWindow ?? 4,
      snapshotIdleTimeoutMs: options.snapshotIdleTimeoutMs ?? 30_000,
      maxInboundSnapshots: options.maxInboundSnapshots ?? 4,
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? 10_000,
      maxPendingHandshakes: options.maxPendingHandshakes ?? 256,
    };
    if (this.opts.maxFrameBytes < 1024) throw new RangeError('maxFrameBytes must be at least 1 KiB');
    if (this.opts.snapshotWindow < 1) throw new RangeError('snapshotWindow must be at least 1');
    this.faults = options.faults?.enabled ? this.makeFaults() : undefined;
    if (options.tls) {
      // Read at construction: a missing file is a configuration error, reported at once.
      this.tls = {
        cert: readFileSync(options.tls.certPath),
        key: readFileSync(options.tls.keyPath),
        ca: options.tls.caPath ? readFileSync(options.tls.caPath) : undefined,
        rejectUnauthorized: options.tls.rejectUnauthorized ?? true,
      };
    }
    const connectionOptions = {
      storeId: this.storeId,
      clusterId: String(options.clusterId),
      secret,
      handshakeTimeoutMs: this.opts.handshakeTimeoutMs,
      keepaliveIntervalMs: this.opts.keepaliveIntervalMs,
      maxPendingHandshakes: this.opts.maxPendingHandshakes,
      maxPayload: this.maxPayload(),
      tls: this.tls,
    };
    this.conns = new Connections(connectionOptions, this.counters, this.log, {
      isRunning: () => this.state === 'running',
      admit: (from, channel) => this.admit(from, channel),
      accepted: (conn) => this.accepted(conn),
    });
    this.snapshotContext = {
      connections: this.conns,
      counters: this.counters,
      log: this.log,
      chunkBytes: this.opts.snapshotChunkBytes,
      window: this.opts.snapshotWindow,
      idleTimeoutMs: this.opts.snapshotIdleTimeoutMs,
      isRunning: () => this.state === 'running',
      resolve: (storeId) => this.resolve(storeId),
      handler: () => this.snapshotHandler,
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /** address is the bound "host:port" (valid after start; port 0 resolves to the real port). */
  get address(): string {
    if (!this.boundAddress) throw new Error('transport not started');
    const a = this.boundAddress;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  get port(): number {
    if (!this.boundAddress) throw new Error('transport not started');
    return this.boundAddress.port;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new TransportError('Closed', `transport cannot start in state ${this.state}`);
    const upgradeRequired = (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain' });
      res.end('flotilla transport: WebSocket upgrade required\n');
    };
    const server: Server = this.tls ? createTlsServer({ cert: this.tls.cert, key: this.tls.key }, upgradeRequired) : createServer(upgradeRequired);
    server.headersTimeout = this.opts.handshakeTimeoutMs;
    server.requestTimeout = this.opts.handshakeTimeoutMs;
    const wss = new WebSocketServer({
      server,
      maxPayload: this.maxPayload(),
      perMessageDeflate: false,
      clientTracking: false,
    });
    wss.on('connection', (ws, req) => this.conns.acceptConnection(ws, req));
    wss.on('error', (err) => this.log.error({ err: err.message }, 'websocket server error'));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new TransportError('Unreachable', `cannot listen on ${this.opts.host}:${this.opts.port}: ${err.message}`, err));
      server.once('error', onError);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this.server = server;
    this.wss = wss;
    this.boundAddress = server.address() as AddressInfo;
    this.state = 'running';
    if (this.opts.keepaliveIntervalMs > 0) {
      this.keepaliveTimer = setInterval(() => this.conns.keepalive(), this.opts.keepaliveIntervalMs);
      this.keepaliveTimer.unref();
    }
    this.log.info({ address: this.address, tls: this.tls !== undefined }, 'transport listening');
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasRunning = this.state === 'running';
    this.state = 'closed';
    clearInterval(this.keepaliveTimer);
    for (const link of this.links.values()) {
      this.countDrop(link.pending.length, 'unreachable');
      link.pending = [];
      link.pendingBytes = 0;
    }
    this.dirty.clear();
    for (const s of this.outboundSnapshots) s.fail(new TransportError('Closed', 'transport closed'));
    const closing: Promise<void>[] = [];
    for (const c of this.conns) {
      closing.push(
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          this.conns.closeConn(c, CloseCode.GoingAway, 'store shutting down', 200);
        }),
      );
    }
    await Promise.all(closing);
    if (wasRunning && this.server) {
      const server = this.server;
      this.wss?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.log.info('transport closed');
  }

  // ---------------------------------------------------------------- sending

  send(toStoreId: number, msg: RaftMessage): boolean {
    if (this.state !== 'running') {
      this.countDrop(1, 'unreachable');
      return false;
    }
    if (this.blocked.has(toStoreId)) {
      this.countDrop(1, 'fault');
      return false;
    }
    let link = this.links.get(toStoreId);
    if (!link) {
      link = new Link(toStoreId);
      this.links.set(toStoreId, link);
    }
    if (!link.conn && !link.dialing && performance.now() < link.backoffUntil) {
      this.countDrop(1, 'unreachable');
      this.reportUnreachable(link);
      return false;
    }
    const bytes = estimateBytes(msg);
    if (link.pending.length >= this.opts.maxQueuedMessages || link.pendingBytes + bytes > this.opts.maxQueuedBytes) {
      this.countDrop(1, 'queue');
      this.reportUnreachable(link);
      return false;
    }
    link.pending.push(msg);
    link.pendingBytes += bytes;
    this.dirty.add(link);
    if (!link.conn && !link.dialing) void this.dial(link);
    return true;
  }

  flush(): void {
    if (this.dirty.size === 0) return;
    for (const link of this.dirty) {
      if (link.conn) this.writeFrames(link);
    }
    // Links still holding messages (connecting, or socket backlog) stay dirty.
    for (const link of this.dirty) if (link.pending.length === 0) this.dirty.delete(link);
  }

  /** connections lists the open raft connections (diagnostics and tests). */
  connections(): { storeId: number; dialer: number; remote: string }[] {
    const out: { storeId: number; dialer: number; remote: string }[] = [];
    for (const c of this.conns) if (c.open && !c.closed && c.channel === 'raft') out.push({ storeId: c.remoteStoreId, dialer: c.dialer, remote: c.remote });
    return out;
  }

  /** backlog tells what waits for one destination (for ServerIsBusy decisions and benchmarks). */
  backlog(storeId: number): DestinationBacklog {
    const link = this.links.get(storeId);
    return {
      queuedMessages: link?.pending.length ?? 0,
      queuedBytes: link?.pendingBytes ?? 0,
      socketBufferedBytes: link?.conn?.ws.bufferedAmount ?? 0,
      connected: link?.conn !== undefined,
    };
  }

  private writeFrames(link: Link): void {
    const conn = link.conn!;
    const ws = conn.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > this.opts.maxSocketBufferedBytes) {
      // The kernel is not draining fast enough: keep messages queued (bounded)
      // and retry when the last frame handed to the socket is written.
      link.waitingForDrain = true;
      return;
    }
    const msgs = link.pending;
    link.pending = [];
    link.pendingBytes = 0;
    const w = this.writer;
    const limit = this.opts.maxFrameBytes;
    w.begin();
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      const before = w.pos;
      const countBefore = w.messageCount;
      w.write(m);
      if (w.pos <= limit) continue;
      if (countBefore === 0) {
        // This message alone exceeds the limit: it can never be sent.
        w.rewind(FRAME_HEADER_BYTES, 0);
        this.countDrop(1, 'tooLarge');
        this.log.warn({ peerStore: link.storeId, regionId: m.regionId, msgType: m.message.msgType, limit }, 'dropping a raft message larger than the frame limit');
        continue;
      }
      w.rewind(before, countBefore);
      this.emitFrame(link, conn, w.take(), countBefore);
      w.begin();
      i--; // write this message again into the fresh frame
    }
    if (w.messageCount > 0) this.emitFrame(link, conn, w.take(), w.messageCount);
  }

  private emitFrame(link: Link, conn: Conn, frame: Buffer, count: number): void {
    this.counters.framesSent++;
    this.counters.messagesSent += count;
    this.counters.bytesSent += frame.length;
    conn.ws.send(frame, { binary: true, compress: false }, () => {
      // Written to the kernel (or failed): the socket no longer needs the bytes.
      this.writer.release(frame);
      if (link.waitingForDrain && link.conn === conn && conn.ws.bufferedAmount <= this.opts.maxSocketBufferedBytes) {
        link.waitingForDrain = false;
        if (link.pending.length > 0) this.writeFrames(link);
      }
    });
  }

  // ---------------------------------------------------------------- dialing

  private async dial(link: Link): Promise<void> {
    link.dialing = true;
    let failure: string | undefined;
    try {
      const address = await this.resolve(link.storeId);
      await this.conns.connect(link.storeId, address, 'raft', (conn) => {
        if (this.state !== 'running') this.conns.closeConn(conn, CloseCode.GoingAway, 'store shutting down');
        else this.adoptRaftConn(link, conn);
      });
    } catch (err) {
      failure = (err as Error).message;
    } finally {
      link.dialing = false;
    }
    if (failure === undefined || this.state !== 'running') return;
    if (link.conn) return; // the peer's dial won meanwhile
    this.counters.dialFailures++;
    link.attempts++;
    const backoff = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectBaseMs * 2 ** Math.min(link.attempts - 1, 20));
    const jittered = backoff * (0.5 + 0.5 * this.random());
    link.backoffUntil = performance.now() + jittered;
    this.log.warn({ peerStore: link.storeId, attempt: link.attempts, backoffMs: Math.round(jittered), reason: failure }, 'dial failed');
    this.countDrop(link.pending.length, 'unreachable');
    link.pending = [];
    link.pendingBytes = 0;
    this.dirty.delete(link);
    this.reportUnreachable(link);
  }

  private async resolve(storeId: number): Promise<string> {
    let address: string | undefined;
    try {
      address = await this.resolveAddress(storeId);
    } catch (err) {
      throw new TransportError('Unreachable', `address of store ${storeId} did not resolve: ${(err as Error).message}`, err);
    }
    if (!address) throw new TransportError('Unreachable', `store ${storeId} has no known address`);
    return address;
  }

  // ---------------------------------------------------------------- accepting

  /** admit refuses an authenticated inbound connection that this store will not serve now. */
  private admit(from: number, channel: Channel): void {
    if (this.blocked.has(from)) throw new HandshakeError(`store ${from} is blocked by fault injection`, CloseCode.Blocked);
    if (channel === 'snap' && this.inboundSnapshots >= this.opts.maxInboundSnapshots) {
      throw new HandshakeError(`too many inbound snapshots (${this.inboundSnapshots})`, CloseCode.Busy);
    }
  }

  /** accepted takes an inbound connection whose handshake completed: a raft link's or a snapshot's. */
  private accepted(conn: Conn): void {
    if (conn.channel === 'raft') {
      let link = this.links.get(conn.remoteStoreId);
      if (!link) {
        link = new Link(conn.remoteStoreId);
        this.links.set(conn.remoteStoreId, link);
      }
      this.adoptRaftConn(link, conn);
    } else {
      this.receiveSnapshot(conn);
    }
  }

  // ---------------------------------------------------------------- raft connections

  /**
   * adoptRaftConn makes `conn` the link's connection, or closes it if the
   * link already has the tie-break winner: the connection dialed by the
   * lower store ID. Both ends apply the same rule, so they agree. A store
   * dials only when it has no connection, so a new dial from the same side
   * as the current connection means that side saw the old one die (say, it
   * restarted while we missed the FIN): the new one replaces it.
   */
  private adoptRaftConn(link: Link, conn: Conn): void {
    this.counters.connectionsOpened++;
    conn.onFrame = (data) => this.receiveRaftFrame(conn, data);
    conn.onClosed = (code, reason) => this.onRaftConnClosed(link, conn, code, reason);
    const winner = Math.min(this.storeId, link.storeId);
    const current = link.conn;
    if (current && !current.closed) {
      if (conn.dialer === current.dialer || (conn.dialer === winner && current.dialer !== winner)) {
        link.conn = conn;
        this.log.debug({ peerStore: link.storeId, kept: conn.id, closed: current.id }, 'second connection to a store: keeping the newer or lower store ID dial');
        this.conns.closeConn(current, CloseCode.Duplicate, 'duplicate connection');
      } else {
        // Frames already in flight on it are still received until it closes.
        this.conns.closeConn(conn, CloseCode.Duplicate, 'duplicate connection');
        return;
      }
    } else {
      link.conn = conn;
      if (link.everConnected) this.counters.reconnects++;
    }
    link.everConnected = true;
    link.attempts = 0;
    link.backoffUntil = 0;
    this.log.info({ peerStore: link.storeId, remote: conn.remote, dialer: conn.dialer }, 'raft connection established');
    if (link.pending.length > 0) this.writeFrames(link);
  }

  private onRaftConnClosed(link: Link, conn: Conn, code: number, reason: string): void {
    if (link.conn !== conn) return;
    link.conn = undefined;
    link.waitingForDrain = false;
    if (this.state !== 'running') return;
    if (code === CloseCode.Duplicate) {
      // The peer kept the other connection; our view catches up when its handshake completes here.
      if (link.pending.length > 0 && !link.dialing) void this.dial(link);
      return;
    }
    this.log.info({ peerStore: link.storeId, code, reason }, 'raft connection lost');
    this.countDrop(link.pending.length, 'unreachable');
    link.pending = [];
    link.pendingBytes = 0;
    this.dirty.delete(link);
    this.reportUnreachable(link);
  }

  private receiveRaftFrame(conn: Conn, data: Buffer): void {
    const from = conn.remoteStoreId;
    if (this.state !== 'running') return;
    if (data.length > this.opts.maxFrameBytes) {
      // ws's maxPayload is per server (it must admit snapshot chunks); raft frames have their own limit.
      this.conns.protocolError(conn, `raft frame of ${data.length} bytes exceeds the limit of ${this.opts.maxFrameBytes}`);
      return;
    }
    let msgs: RaftMessage[];
    try {
      msgs = decodeRaftFrame(data);
    } catch (err) {
      this.conns.protocolError(conn, (err as Error).message);
      return;
    }
    if (this.blocked.has(from)) {
      this.counters.droppedFault += msgs.length;
      this.counters.messagesDropped += msgs.length;
      return;
    }
    this.counters.framesReceived++;
    this.counters.messagesReceived += msgs.length;
    this.counters.bytesReceived += data.length;
    if (msgs.length > 0) this.messagesHandler?.(msgs, from);
  }

  // ---------------------------------------------------------------- snapshots

  async sendSnapshot(toStoreId: number, header: SnapshotHeader, chunks: SnapshotChunks): Promise<void> {
    if (this.state !== 'running') throw new TransportError('Closed', 'transport is not running');
    if (this.blocked.has(toStoreId)) {
      this.counters.snapshotsFailed++;
      throw new TransportError('Blocked', `store ${toStoreId} is blocked by fault injection`);
    }
    const sender = new SnapshotSender(this.snapshotContext, toStoreId, header);
    this.outboundSnapshots.add(sender);
    try {
      await sender.run(chunks);
    } finally {
      this.outboundSnapshots.delete(sender);
    }
  }

  private receiveSnapshot(conn: Conn): void {
    this.inboundSnapshots++;
    new SnapshotReceiver(this.snapshotContext, conn, () => this.inboundSnapshots--);
  }

  // ---------------------------------------------------------------- misc

  onMessages(handler: MessagesHandler): void {
    this.messagesHandler = handler;
  }

  onUnreachable(handler: UnreachableHandler): void {
    this.unreachableHandler = handler;
  }

  onSnapshot(handler: SnapshotHandler): void {
    this.snapshotHandler = handler;
  }

  stats(): TransportStats {
    let queued = 0;
    let queuedBytes = 0;
    for (const link of this.links.values()) {
      queued += link.pending.length;
      queuedBytes += link.pendingBytes;
    }
    return { ...this.counters, queuedMessages: queued, queuedBytes };
  }

  private maxPayload(): number {
    return Math.max(this.opts.maxFrameBytes, this.opts.snapshotChunkBytes + 64, 64 * 1024);
  }

  private countDrop(n: number, reason: 'queue' | 'unreachable' | 'tooLarge' | 'fault'): void {
    if (n === 0) return;
    this.counters.messagesDropped += n;
    if (reason === 'queue') this.counters.droppedQueueFull += n;
    else if (reason === 'unreachable') this.counters.droppedUnreachable += n;
    else if (reason === 'tooLarge') this.counters.droppedTooLarge += n;
    else this.counters.droppedFault += n;
  }

  private reportUnreachable(link: Link): void {
    const now = performance.now();
    if (now - link.lastUnreachableAt < this.opts.unreachableReportIntervalMs) return;
    link.lastUnreachableAt = now;
    this.counters.unreachableReports++;
    this.unreachableHandler?.(link.storeId);
  }

  private makeFaults(): WsFaults {
    return {
      blockStore: (storeId) => {
        this.blocked.add(storeId);
        const link = this.links.get(storeId);
        if (link) {
          this.countDrop(link.pending.length, 'fault');
          link.pending = [];
          link.pendingBytes = 0;
        }
        for (const c of this.conns) {
          if (c.remoteStoreId !== storeId || !c.open) continue;
          c.discardInbound = true;
          this.conns.closeConn(c, CloseCode.Blocked, 'blocked by fault injection');
        }
        this.log.warn({ peerStore: storeId }, 'fault injection: store blocked');
      },
      unblock: (storeId) => {
        this.blocked.delete(storeId);
        this.log.warn({ peerStore: storeId }, 'fault injection: store unblocked');
      },
      unblockAll: () => this.blocked.clear(),
      isBlocked: (storeId) => this.blocked.has(storeId),
    };
  }
}
