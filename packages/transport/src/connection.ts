// Connections: the listener and WebSocket connections of one WsTransport,
// and both halves of the HMAC handshake (docs/transport.md, "Handshake").
//
// A Conn starts unauthenticated; `connect` (client half) and
// `acceptConnection` (server half) run the challenge / hello / welcome
// exchange under a timeout and, once it checks out, hand the open Conn to
// its owner: a Link for raft traffic, a snapshot sender or receiver for
// 'snap'. Until then no frame reaches the store. Every socket is wired the
// same way (`wireSocket`) and closed the same way (`closeConn`), and raft
// connections are kept honest by `keepalive`.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ConnectionGuard, RateLimitedLog, httpTimeoutOptions, type Logger } from '@flotilla/proto';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
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
  type Hello,
} from './handshake';
import { TransportError, type TransportStats } from './transport';
import type { TlsMaterial } from './ws-options';

/** ConnectionOptions is the part of WsTransport's options the connections need (defaults applied). */
export interface ConnectionOptions {
  storeId: number;
  clusterId: string;
  secret: Buffer;
  handshakeTimeoutMs: number;
  keepaliveIntervalMs: number;
  maxPendingHandshakes: number;
  /** maxInboundConnections bounds open inbound sockets; one more is answered 503 before its upgrade. */
  maxInboundConnections: number;
  /** maxPayload is ws's frame limit for every socket: the larger of a raft frame and a snapshot chunk. */
  maxPayload: number;
  /** tls, when set, serves wss:// with cert/key and dials wss:// trusting `ca` (default: the system roots), presenting cert/key; requireClientCert makes the listener demand a certificate `ca` signed. */
  tls: TlsMaterial | undefined;
}

/** AcceptHooks give the transport its say over inbound connections. */
export interface AcceptHooks {
  isRunning(): boolean;
  /** admit refuses an authenticated peer by throwing a HandshakeError (blocked, too busy). */
  admit(from: number, channel: Channel): void;
  /** accepted runs synchronously once the welcome is sent, so it sees every later frame. */
  accepted(conn: Conn): void;
}

const zeroMask = (mask: Uint8Array): void => {
  // Masking defends browsers' proxies against cache poisoning; between two
  // authenticated stores it only costs an XOR pass over every byte, and ws
  // skips that pass on both ends when the mask is all zeros.
  mask.fill(0);
};

let nextConnId = 1;

/** Conn is one WebSocket connection, before and after its handshake. */
export class Conn {
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

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Connections owns the listener and every Conn of one transport, raft and snapshot, in and out. */
export class Connections implements Iterable<Conn> {
  private readonly conns = new Set<Conn>();
  private pendingHandshakes = 0;
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  /** refusals logs refused and rejected inbound connections once per address, reason and window (RateLimitedLog). */
  private readonly refusals: RateLimitedLog;

  constructor(
    private readonly opts: ConnectionOptions,
    private readonly counters: TransportStats,
    private readonly log: Logger,
    private readonly hooks: AcceptHooks,
  ) {
    this.refusals = new RateLimitedLog(log);
  }

  /** refused logs one refused inbound connection, rate-limited by source address and reason. */
  private refused(remote: string, reason: string, msg: string, fields: object = {}): void {
    const host = remote.slice(0, remote.lastIndexOf(':'));
    this.refusals.warn(`${host}|${reason}`, { remote, reason, ...fields }, msg);
  }

  [Symbol.iterator](): Iterator<Conn> {
    return this.conns.values();
  }

  // ---------------------------------------------------------------- listener

  /** listen serves the handshake on host:port and resolves with the bound address. */
  async listen(host: string, port: number): Promise<AddressInfo> {
    const upgradeRequired = (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain' });
      res.end('flotilla transport: WebSocket upgrade required\n');
    };
    const tls = this.opts.tls;
    // The upgrade request's head and the TLS handshake get the handshake timeout too, checked often enough to hold.
    const timeouts = httpTimeoutOptions(this.opts.handshakeTimeoutMs, this.opts.handshakeTimeoutMs);
    const server: Server = tls
      ? createTlsServer({ ...timeouts, cert: tls.cert, key: tls.key, ...(tls.requireClientCert ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }, upgradeRequired)
      : createServer(timeouts, upgradeRequired);
    // A dialer without a certificate the cluster CA signed (mutual TLS) never gets to the challenge.
    server.on('tlsClientError', (err, socket) => {
      this.counters.handshakesRejected++;
      this.refused(`${socket.remoteAddress}:${socket.remotePort}`, err.message, 'inbound TLS handshake rejected');
    });
    const guard = new ConnectionGuard(server, { maxConnections: this.opts.maxInboundConnections, secure: tls !== undefined, what: 'raft', hint: 'maxInboundConnections (store: maxRaftConnections)', log: this.refusals });
    const wss = new WebSocketServer({
      server,
      maxPayload: this.opts.maxPayload,
      perMessageDeflate: false,
      clientTracking: false,
      // Past the connection limit: HTTP 503 with the reason, before the upgrade.
      verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
        const overLimit = guard.refusal(info.req.socket);
        if (overLimit === undefined) return done(true);
        this.counters.handshakesRejected++;
        done(false, 503, `flotilla transport: ${overLimit}\n`);
      },
    });
    wss.on('connection', (ws, req) => this.acceptConnection(ws, req));
    wss.on('error', (err) => this.log.error({ err: err.message }, 'websocket server error'));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(new TransportError('Unreachable', `cannot listen on ${host}:${port}: ${err.message}`, err));
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    this.server = server;
    this.wss = wss;
    return server.address() as AddressInfo;
  }

  /** closeListener stops the listener and drops the sockets it still holds; call it after closing the Conns. */
  async closeListener(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.refusals.close();
    this.wss?.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  // ---------------------------------------------------------------- dialing

  /**
   * connect dials `address` and runs the client side of the handshake.
   * `onOpen` runs synchronously when the handshake completes, before any
   * later frame of the same read is dispatched; then the promise resolves.
   */
  connect(storeId: number, address: string, channel: Channel, onOpen: (conn: Conn) => void): Promise<Conn> {
    return new Promise<Conn>((resolve, reject) => {
      const tls = this.opts.tls;
      const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://${address}/flotilla/${channel}`, {
        perMessageDeflate: false,
        maxPayload: this.opts.maxPayload,
        handshakeTimeout: this.opts.handshakeTimeoutMs,
        generateMask: zeroMask,
        followRedirects: false,
        // The certificate goes along on every dial: a peer with requireClientCert asks for it, others ignore it.
        ...(tls ? { rejectUnauthorized: tls.rejectUnauthorized, cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) } : {}),
      });
      const conn = new Conn(ws, this.opts.storeId, address);
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
            if (c.clusterId !== this.opts.clusterId) throw new HandshakeError(`cluster ID mismatch: peer is in cluster ${JSON.stringify(c.clusterId)}`);
            if (c.storeId !== storeId) throw new HandshakeError(`store ID mismatch: ${address} is store ${c.storeId}, expected ${storeId}`);
            serverNonce = c.nonce;
            const mac = computeMac(this.opts.secret, 'client', this.opts.clusterId, channel, this.opts.storeId, storeId, serverNonce, clientNonce);
            ws.send(encodeHello({ clusterId: this.opts.clusterId, from: this.opts.storeId, to: storeId, channel, nonce: clientNonce, mac }));
            return;
          }
          const w = parseWelcome(data);
          const expected = computeMac(this.opts.secret, 'server', this.opts.clusterId, channel, this.opts.storeId, storeId, serverNonce, clientNonce);
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

  /** acceptConnection runs the server side of the handshake on a socket the listener upgraded. */
  acceptConnection(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const conn = new Conn(ws, 0, remote);
    if (!this.hooks.isRunning()) {
      ws.on('error', () => {});
      ws.close(CloseCode.GoingAway, 'store shutting down');
      return;
    }
    this.conns.add(conn);
    if (this.pendingHandshakes >= this.opts.maxPendingHandshakes) {
      this.counters.handshakesRejected++;
      this.refused(remote, 'too many pending handshakes', 'inbound handshake rejected', { limit: this.opts.maxPendingHandshakes });
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
      this.refused(remote, reason, 'inbound handshake rejected');
      this.closeConn(conn, code, reason);
    };
    conn.timer = setTimeout(() => reject('handshake timeout', CloseCode.HandshakeTimeout), this.opts.handshakeTimeoutMs);
    conn.onFrame = (data) => {
      try {
        const h = this.verifyHello(data, serverNonce);
        this.hooks.admit(h.from, h.channel);
        clearTimeout(conn.timer);
        settle();
        conn.open = true;
        conn.remoteStoreId = h.from;
        conn.dialer = h.from;
        conn.channel = h.channel;
        conn.onFrame = () => {};
        const mac = computeMac(this.opts.secret, 'server', this.opts.clusterId, h.channel, h.from, h.to, serverNonce, h.nonce);
        ws.send(encodeWelcome(mac));
        this.hooks.accepted(conn);
      } catch (err) {
        reject((err as Error).message, err instanceof HandshakeError ? err.closeCode : CloseCode.HandshakeRejected);
      }
    };
    conn.onClosed = (code, reason) => {
      if (!conn.open) reject(`connection closed during handshake (${code}${reason ? `: ${reason}` : ''})`);
    };
    conn.onHandshakeError = (reason) => reject(reason);
    this.wireSocket(conn);
    ws.send(encodeChallenge({ clusterId: this.opts.clusterId, storeId: this.opts.storeId, nonce: serverNonce }));
  }

  /** verifyHello parses a client's hello and checks its cluster, its target store and its MAC; it throws HandshakeError. */
  private verifyHello(data: Buffer, serverNonce: Uint8Array): Hello {
    const h = parseHello(data);
    if (h.clusterId !== this.opts.clusterId) throw new HandshakeError(`cluster ID mismatch: peer claims cluster ${JSON.stringify(h.clusterId)}`);
    if (h.to !== this.opts.storeId) throw new HandshakeError(`store ID mismatch: peer wants store ${h.to}, this is store ${this.opts.storeId}`);
    const expected = computeMac(this.opts.secret, 'client', this.opts.clusterId, h.channel, h.from, h.to, serverNonce, h.nonce);
    if (!macEquals(h.mac, expected)) throw new HandshakeError(`store ${h.from} failed authentication (bad MAC)`);
    return h;
  }

  // ---------------------------------------------------------------- sockets

  /** keepalive closes raft connections that stayed silent for a whole interval, then pings the rest. */
  keepalive(): void {
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

  closeConn(conn: Conn, code: number, reason: string, terminateAfterMs = 1_000): void {
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

  protocolError(conn: Conn, reason: string): void {
    conn.discardInbound = true;
    this.counters.protocolErrors++;
    this.log.warn({ peerStore: conn.remoteStoreId, remote: conn.remote, channel: conn.channel, reason }, 'protocol error, closing connection');
    this.closeConn(conn, CloseCode.ProtocolError, reason);
  }
}
