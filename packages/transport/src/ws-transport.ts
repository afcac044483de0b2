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
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { RaftMessage } from '@flotilla/proto';
import { decodeRaftFrame, encodeRaftFrame, FRAME_HEADER_BYTES, FrameWriter } from './codec';
import {
  CloseCode,
  computeMac,
  encodeChallenge,
  encodeHello,
  encodeWelcome,
  HandshakeError,
  macEquals,
  newNonce,
  parseChallenge,
  parseHello,
  parseWelcome,
  type Channel,
} from './handshake';
import { ackFrame, ChunkStream, SnapFrame, streamInterrupted } from './snapshot';
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

const zeroMask = (mask: Uint8Array): void => {
  // Masking defends browsers' proxies against cache poisoning; between two
  // authenticated stores it only costs an XOR pass over every byte, and ws
  // skips that pass on both ends when the mask is all zeros.
  mask.fill(0);
};

let nextConnId = 1;

/** Conn is one WebSocket connection, before and after its handshake. */
class Conn {
  readonly id = nextConnId++;
  open = false;
  remoteStoreId = 0;
  channel: Channel = 'raft';
  /** onFrame is swapped synchronously when the handshake completes, so no frame is missed. */
  onFrame: (data: Buffer) => void = () => {};
  onClosed: (code: number, reason: string) => void = () => {};
  onHandshakeError: (reason: string) => void = () => {};
  closed = false;
  /**
   * discardInbound stops delivery of frames that arrive after we closed the
   * connection for cause (protocol error, rejection, block). A connection
   * closed as a duplicate or for shutdown keeps delivering what the peer
   * wrote before it saw our close: those messages are not lost.
   */
  discardInbound = false;
  /** alive is set by any frame or pong and cleared by each keepalive round. */
  alive = true;
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly ws: WebSocket,
    /** dialer is the store ID that opened the TCP connection. */
    public dialer: number,
    readonly remote: string,
  ) {}
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

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class WsTransport implements Transport {
  readonly storeId: number;
  /** faults is defined only when fault injection is enabled in the options. */
  readonly faults: WsFaults | undefined;
  private readonly clusterId: string;
  private readonly secret: Buffer;
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
  private readonly conns = new Set<Conn>();
  private readonly blocked = new Set<number>();
  private readonly writer = new FrameWriter();
  private readonly counters: TransportStats = emptyStats();
  private messagesHandler: MessagesHandler | undefined;
  private unreachableHandler: UnreachableHandler | undefined;
  private snapshotHandler: SnapshotHandler | undefined;
  private inboundSnapshots = 0;
  private pendingHandshakes = 0;
  private readonly outboundSnapshots = new Set<{ fail(err: Error): void }>();
  private state: 'new' | 'running' | 'closed' = 'new';
  private keepaliveTimer: NodeJS.Timeout | undefined;

  constructor(options: WsTransportOptions) {
    if (!Number.isSafeInteger(options.storeId) || options.storeId <= 0) throw new RangeError(`storeId must be a positive integer, got ${options.storeId}`);
    const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : Buffer.from(options.secret);
    if (secret.length === 0) throw new RangeError('secret must not be empty');
    this.storeId = options.storeId;
    this.clusterId = String(options.clusterId);
    this.secret = secret;
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
    wss.on('connection', (ws, req) => this.acceptConnection(ws, req));
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
      this.keepaliveTimer = setInterval(() => this.keepalive(), this.opts.keepaliveIntervalMs);
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
          this.closeConn(c, CloseCode.GoingAway, 'store shutting down', 200);
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
      await this.connect(link.storeId, address, 'raft', (conn) => {
        if (this.state !== 'running') this.closeConn(conn, CloseCode.GoingAway, 'store shutting down');
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

  /**
   * connect dials `address` and runs the client side of the handshake.
   * `onOpen` runs synchronously when the handshake completes, before any
   * later frame of the same read is dispatched; then the promise resolves.
   */
  private connect(storeId: number, address: string, channel: Channel, onOpen: (conn: Conn) => void): Promise<Conn> {
    return new Promise<Conn>((resolve, reject) => {
      const tls = this.tls;
      const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://${address}/flotilla/${channel}`, {
        perMessageDeflate: false,
        maxPayload: this.maxPayload(),
        handshakeTimeout: this.opts.handshakeTimeoutMs,
        generateMask: zeroMask,
        followRedirects: false,
        ...(tls ? { rejectUnauthorized: tls.rejectUnauthorized, ...(tls.ca ? { ca: tls.ca } : {}) } : {}),
      });
      const conn = new Conn(ws, this.storeId, address);
      conn.remoteStoreId = storeId;
      conn.channel = channel;
      this.conns.add(conn);
      let settled = false;
      const fail = (reason: string, code: number = CloseCode.HandshakeRejected) => {
        if (settled) return;
        settled = true;
        clearTimeout(conn.timer);
        this.log.warn({ peerStore: storeId, address, channel, reason }, 'outbound handshake failed');
        this.closeConn(conn, code, reason);
        reject(new TransportError('Unreachable', `connect to store ${storeId} at ${address}: ${reason}`));
      };
      conn.timer = setTimeout(() => fail('handshake timeout', CloseCode.HandshakeTimeout), this.opts.handshakeTimeoutMs);
      const clientNonce = newNonce();
      let serverNonce: Uint8Array | undefined;
      conn.onFrame = (data) => {
        try {
          if (!serverNonce) {
            const c = parseChallenge(data);
            if (c.clusterId !== this.clusterId) throw new HandshakeError(`cluster ID mismatch: peer is in cluster ${JSON.stringify(c.clusterId)}`);
            if (c.storeId !== storeId) throw new HandshakeError(`store ID mismatch: ${address} is store ${c.storeId}, expected ${storeId}`);
            serverNonce = c.nonce;
            const mac = computeMac(this.secret, 'client', this.clusterId, channel, this.storeId, storeId, serverNonce, clientNonce);
            ws.send(encodeHello({ clusterId: this.clusterId, from: this.storeId, to: storeId, channel, nonce: clientNonce, mac }));
            return;
          }
          const w = parseWelcome(data);
          const expected = computeMac(this.secret, 'server', this.clusterId, channel, this.storeId, storeId, serverNonce, clientNonce);
          if (!macEquals(w.mac, expected)) throw new HandshakeError('server failed authentication (bad MAC)');
          settled = true;
          clearTimeout(conn.timer);
          conn.open = true;
          conn.onFrame = () => {};
          conn.onClosed = () => {};
          onOpen(conn);
          resolve(conn);
        } catch (err) {
          this.counters.handshakesRejected++;
          fail((err as Error).message);
        }
      };
      conn.onClosed = (code, reason) => fail(`connection closed during handshake (${code}${reason ? `: ${reason}` : ''})`);
      conn.onHandshakeError = (reason) => fail(reason);
      this.wireSocket(conn);
    });
  }

  // ---------------------------------------------------------------- accepting

  private acceptConnection(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const conn = new Conn(ws, 0, remote);
    if (this.state !== 'running') {
      ws.on('error', () => {});
      ws.close(CloseCode.GoingAway, 'store shutting down');
      return;
    }
    this.conns.add(conn);
    if (this.pendingHandshakes >= this.opts.maxPendingHandshakes) {
      this.counters.handshakesRejected++;
      this.log.warn({ remote, reason: 'too many pending handshakes', limit: this.opts.maxPendingHandshakes }, 'inbound handshake rejected');
      this.wireSocket(conn);
      this.closeConn(conn, CloseCode.Busy, 'too many pending handshakes');
      return;
    }
    this.pendingHandshakes++;
    let pending = true;
    const settle = () => {
      if (pending) this.pendingHandshakes--;
      pending = false;
    };
    const serverNonce = newNonce();
    const reject = (reason: string, code: number = CloseCode.HandshakeRejected) => {
      settle();
      if (conn.open || conn.closed) return;
      clearTimeout(conn.timer);
      this.counters.handshakesRejected++;
      this.log.warn({ remote, reason }, 'inbound handshake rejected');
      this.closeConn(conn, code, reason);
    };
    conn.timer = setTimeout(() => reject('handshake timeout', CloseCode.HandshakeTimeout), this.opts.handshakeTimeoutMs);
    conn.onFrame = (data) => {
      try {
        const h = parseHello(data);
        if (h.clusterId !== this.clusterId) throw new HandshakeError(`cluster ID mismatch: peer claims cluster ${JSON.stringify(h.clusterId)}`);
        if (h.to !== this.storeId) throw new HandshakeError(`store ID mismatch: peer wants store ${h.to}, this is store ${this.storeId}`);
        const expected = computeMac(this.secret, 'client', this.clusterId, h.channel, h.from, h.to, serverNonce, h.nonce);
        if (!macEquals(h.mac, expected)) throw new HandshakeError(`store ${h.from} failed authentication (bad MAC)`);
        if (this.blocked.has(h.from)) throw new HandshakeError(`store ${h.from} is blocked by fault injection`, CloseCode.Blocked);
        if (h.channel === 'snap' && this.inboundSnapshots >= this.opts.maxInboundSnapshots) {
          throw new HandshakeError(`too many inbound snapshots (${this.inboundSnapshots})`, CloseCode.Busy);
        }
        clearTimeout(conn.timer);
        settle();
        conn.open = true;
        conn.remoteStoreId = h.from;
        conn.dialer = h.from;
        conn.channel = h.channel;
        conn.onFrame = () => {};
        const mac = computeMac(this.secret, 'server', this.clusterId, h.channel, h.from, h.to, serverNonce, h.nonce);
        ws.send(encodeWelcome(mac));
        if (h.channel === 'raft') {
          let link = this.links.get(h.from);
          if (!link) {
            link = new Link(h.from);
            this.links.set(h.from, link);
          }
          this.adoptRaftConn(link, conn);
        } else {
          this.receiveSnapshot(conn);
        }
      } catch (err) {
        reject((err as Error).message, err instanceof HandshakeError ? err.closeCode : CloseCode.HandshakeRejected);
      }
    };
    conn.onClosed = (code, reason) => {
      if (!conn.open) reject(`connection closed during handshake (${code}${reason ? `: ${reason}` : ''})`);
    };
    conn.onHandshakeError = (reason) => reject(reason);
    this.wireSocket(conn);
    ws.send(encodeChallenge({ clusterId: this.clusterId, storeId: this.storeId, nonce: serverNonce }));
  }

  /** keepalive closes raft connections that stayed silent for a whole interval, then pings the rest. */
  private keepalive(): void {
    for (const c of this.conns) {
      if (!c.open || c.closed || c.channel !== 'raft') continue;
      if (!c.alive) {
        this.log.warn({ peerStore: c.remoteStoreId, remote: c.remote, intervalMs: this.opts.keepaliveIntervalMs }, 'keepalive timeout, closing connection');
        this.closeConn(c, CloseCode.GoingAway, 'keepalive timeout', 0);
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  /** wireSocket routes a socket's frames and close to whatever the Conn currently expects. */
  private wireSocket(conn: Conn): void {
    conn.ws.on('pong', () => (conn.alive = true));
    conn.ws.on('message', (data, isBinary) => {
      conn.alive = true;
      if (conn.discardInbound || (conn.closed && !conn.open)) return;
      if (!isBinary) {
        if (conn.open) this.protocolError(conn, 'text frame on a binary protocol');
        else conn.onFrame(Buffer.alloc(0));
        return;
      }
      conn.onFrame(toBuffer(data));
    });
    conn.ws.on('error', (err) => {
      // ws closes the socket itself after an error (oversized frame, bad opcode, ...).
      if (conn.open) {
        conn.discardInbound = true;
        this.counters.protocolErrors++;
        this.log.warn({ peerStore: conn.remoteStoreId, remote: conn.remote, channel: conn.channel, reason: err.message }, 'connection error, closing');
      } else {
        conn.onHandshakeError(err.message);
      }
    });
    conn.ws.on('close', (code, reasonBuf) => {
      this.conns.delete(conn);
      clearTimeout(conn.timer);
      const wasClosed = conn.closed;
      conn.closed = true;
      conn.onClosed(code, reasonBuf.toString());
      if (!wasClosed) this.log.debug({ peerStore: conn.remoteStoreId, remote: conn.remote, code, reason: reasonBuf.toString() }, 'connection closed by peer');
    });
  }

  private closeConn(conn: Conn, code: number, reason: string, terminateAfterMs = 1_000): void {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.timer);
    const ws = conn.ws;
    try {
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(code, reason.slice(0, 120));
    } catch {
      ws.terminate();
    }
    // A peer that ignores the close handshake does not hold the socket open.
    setTimeout(() => ws.terminate(), terminateAfterMs).unref();
  }

  private protocolError(conn: Conn, reason: string): void {
    conn.discardInbound = true;
    this.counters.protocolErrors++;
    this.log.warn({ peerStore: conn.remoteStoreId, remote: conn.remote, channel: conn.channel, reason }, 'protocol error, closing connection');
    this.closeConn(conn, CloseCode.ProtocolError, reason);
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
        this.closeConn(current, CloseCode.Duplicate, 'duplicate connection');
      } else {
        // Frames already in flight on it are still received until it closes.
        this.closeConn(conn, CloseCode.Duplicate, 'duplicate connection');
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
      this.protocolError(conn, `raft frame of ${data.length} bytes exceeds the limit of ${this.opts.maxFrameBytes}`);
      return;
    }
    let msgs: RaftMessage[];
    try {
      msgs = decodeRaftFrame(data);
    } catch (err) {
      this.protocolError(conn, (err as Error).message);
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
    let conn: Conn | undefined;
    let failWith: ((err: Error) => void) | undefined;
    const failed = new Promise<never>((_, reject) => (failWith = reject));
    failed.catch(() => {});
    const handle = { fail: (err: Error) => failWith!(err) };
    this.outboundSnapshots.add(handle);
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => handle.fail(new TransportError('Timeout', `snapshot to store ${toStoreId}: no progress for ${this.opts.snapshotIdleTimeoutMs} ms`)), this.opts.snapshotIdleTimeoutMs);
    };
    let acked = 0;
    let ackWaiter: (() => void) | undefined;
    let done: (() => void) | undefined;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const onFrame = (data: Buffer) => {
        const kind = data[0];
        if (kind === SnapFrame.Ack && data.length === 5) {
          acked = data.readUInt32LE(1);
          armIdle();
          const w = ackWaiter;
          ackWaiter = undefined;
          w?.();
        } else if (kind === SnapFrame.Done) {
          done!();
        } else if (kind === SnapFrame.Fail) {
          handle.fail(new TransportError('Rejected', `store ${toStoreId} rejected the snapshot: ${data.subarray(1).toString('utf8')}`));
        } else {
          handle.fail(new TransportError('Protocol', `unexpected frame ${kind} on snapshot connection`));
        }
      };
    try {
      armIdle();
      const address = await Promise.race([this.resolve(toStoreId), failed]);
      conn = await Promise.race([
        this.connect(toStoreId, address, 'snap', (c) => {
          c.onFrame = onFrame;
          c.onClosed = (code, reason) => handle.fail(new TransportError('Closed', `snapshot connection to store ${toStoreId} closed (${code}${reason ? `: ${reason}` : ''})`));
        }),
        failed,
      ]);
      const c = conn;
      const headerFrame = encodeRaftFrame([header]);
      c.ws.send(Buffer.concat([Buffer.of(SnapFrame.Header), headerFrame]));
      let sent = 0;
      const chunkLimit = this.opts.snapshotChunkBytes;
      const window = this.opts.snapshotWindow;
      const sendPiece = async (piece: Uint8Array) => {
        while (sent - acked >= window) {
          await Promise.race([new Promise<void>((resolve) => (ackWaiter = resolve)), failed]);
        }
        const frame = Buffer.allocUnsafe(piece.length + 1);
        frame[0] = SnapFrame.Chunk;
        frame.set(piece, 1);
        c.ws.send(frame);
        sent++;
        this.counters.snapshotChunksSent++;
        this.counters.snapshotBytesSent += piece.length;
      };
      for await (const chunk of chunks as AsyncIterable<Uint8Array>) {
        if (this.state !== 'running') throw new TransportError('Closed', 'transport closed');
        for (let off = 0; off < chunk.length; off += chunkLimit) await sendPiece(chunk.subarray(off, Math.min(chunk.length, off + chunkLimit)));
      }
      c.ws.send(Buffer.of(SnapFrame.End));
      await Promise.race([finished, failed]);
      this.counters.snapshotsSent++;
      this.log.info({ peerStore: toStoreId, regionId: header.regionId, chunks: sent }, 'snapshot sent');
      this.closeConn(c, 1000, 'snapshot done');
    } catch (err) {
      this.counters.snapshotsFailed++;
      this.log.warn({ peerStore: toStoreId, regionId: header.regionId, reason: (err as Error).message }, 'snapshot send failed');
      if (conn) this.closeConn(conn, CloseCode.GoingAway, 'snapshot aborted');
      // Transport failures are TransportErrors already; an error of the chunk source is the caller's own and passes through.
      throw err;
    } finally {
      clearTimeout(idleTimer);
      this.outboundSnapshots.delete(handle);
    }
  }

  private receiveSnapshot(conn: Conn): void {
    this.inboundSnapshots++;
    const from = conn.remoteStoreId;
    let stream: ChunkStream | undefined;
    let finished = false;
    let handlerDone = false;
    let handlerError: string | undefined;
    const release = () => {
      if (finished) return;
      finished = true;
      this.inboundSnapshots--;
    };
    const sendDone = () => {
      if (conn.closed) return;
      if (handlerError !== undefined) conn.ws.send(Buffer.concat([Buffer.of(SnapFrame.Fail), Buffer.from(handlerError.slice(0, 1000), 'utf8')]));
      else conn.ws.send(Buffer.of(SnapFrame.Done));
    };
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        if (handlerDone && stream?.isEnded) return;
        this.protocolError(conn, `snapshot from store ${from}: no frame for ${this.opts.snapshotIdleTimeoutMs} ms`);
      }, this.opts.snapshotIdleTimeoutMs);
      idle.unref();
    };
    armIdle();
    conn.onClosed = (code, reason) => {
      clearTimeout(idle);
      stream?.fail(streamInterrupted(`connection closed (${code}${reason ? `: ${reason}` : ''})`));
      release();
    };
    conn.onFrame = (data) => {
      const kind = data[0];
      armIdle();
      if (!stream) {
        if (kind !== SnapFrame.Header) return this.protocolError(conn, 'snapshot stream must start with a header');
        let header: SnapshotHeader;
        try {
          const msgs = decodeRaftFrame(data.subarray(1));
          if (msgs.length !== 1) throw new Error(`header frame holds ${msgs.length} messages`);
          header = msgs[0]!;
        } catch (err) {
          return this.protocolError(conn, `bad snapshot header: ${(err as Error).message}`);
        }
        stream = new ChunkStream(this.opts.snapshotWindow, (consumed) => {
          if (!conn.closed) conn.ws.send(ackFrame(consumed));
        });
        const handler = this.snapshotHandler;
        if (!handler) {
          handlerError = 'store accepts no snapshots';
          handlerDone = true;
          this.counters.snapshotsFailed++;
          sendDone();
          return;
        }
        const s = stream;
        handler(header, s, from).then(
          () => {
            handlerDone = true;
            // Chunks the handler left unread are acknowledged so the sender reaches its End.
            const skipped = s.discard();
            if (skipped > 0 && !conn.closed) conn.ws.send(ackFrame(s.consumed));
            if (s.isEnded) {
              this.counters.snapshotsReceived++;
              sendDone();
            }
          },
          (err: unknown) => {
            handlerDone = true;
            handlerError = (err as Error)?.message ?? String(err);
            this.counters.snapshotsFailed++;
            this.log.warn({ peerStore: from, regionId: header.regionId, reason: handlerError }, 'snapshot handler failed');
            sendDone();
          },
        );
        return;
      }
      if (kind === SnapFrame.Chunk) {
        this.counters.snapshotChunksReceived++;
        this.counters.snapshotBytesReceived += data.length - 1;
        if (handlerDone) {
          // The handler finished early; keep the sender moving until its End.
          if (!conn.closed) conn.ws.send(ackFrame(++stream.consumed));
          return;
        }
        if (!stream.push(data.subarray(1))) this.protocolError(conn, `sender overran the window of ${this.opts.snapshotWindow} chunks`);
        return;
      }
      if (kind === SnapFrame.End) {
        stream.end();
        if (handlerDone && handlerError === undefined) {
          this.counters.snapshotsReceived++;
          sendDone();
        }
        return;
      }
      this.protocolError(conn, `unexpected frame ${kind} on snapshot connection`);
    };
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
          this.closeConn(c, CloseCode.Blocked, 'blocked by fault injection');
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
