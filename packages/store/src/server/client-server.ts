import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  AnswerWindow,
  ConnectionGuard,
  DecodeError,
  RateLimitedLog,
  ValidationError,
  clientRequestSchema,
  decode,
  encode,
  httpTimeoutOptions,
  parseWith,
  type ClientRequest,
  type ClientResponse,
} from '@flotilla/proto';
import type { Store, StoreLogger } from '../store';
import type { CommandResult } from '../raft/proposal';
import type { PeerView } from '../inspect';
import { RaftError } from '@flotilla/raft-core';
import { WATCH_PATH } from '@flotilla/proto';
import { closeGracefully } from './close';
import { WatchServer } from './watch-server';

export const CLIENT_PATH = '/client';
/** MAX_CLIENT_FRAME_BYTES bounds one client request frame (values up to 8 MiB plus headers). */
export const MAX_CLIENT_FRAME_BYTES = 16 * 1024 * 1024;

/** ServerTlsOptions: PEM files of the certificate this server presents (https/wss). */
export interface ServerTlsOptions {
  certPath: string;
  keyPath: string;
  /** caPath: the CA this process trusts when it dials others (placement, peers); not used for client certificates. */
  caPath?: string;
}

export interface ClientServerOptions {
  /**
   * maxConnections bounds open connections to the port, WebSocket clients
   * and HTTP alike (default 1024, StoreConfig.maxClientConnections); one
   * more is answered HTTP 503 with the reason, before any upgrade, and closed.
   */
  maxConnections?: number;
  /** maxPendingPerConnection bounds requests in flight on one client connection (default 4096); one more is answered ServerIsBusy. */
  maxPendingPerConnection?: number;
  /**
   * maxBufferedBytesPerConnection: while a connection's answers not yet
   * written to its socket (the client is not reading them) reach this, the
   * server stops reading its requests, until half are written (default
   * 16 MiB, StoreConfig.maxBufferedBytesPerConnection).
   */
  maxBufferedBytesPerConnection?: number;
  /** headersTimeoutMs: a connection that has not sent a whole request head within this is answered 408 and closed (default 10,000). */
  headersTimeoutMs?: number;
  /** refusalLogWindowMs: repeated refusals (401, 503) from one address are logged once, then once per window (default 10,000). */
  refusalLogWindowMs?: number;
  /**
   * token: when set, every WebSocket upgrade and every HTTP request except
   * /health must carry `Authorization: Bearer <token>`; others get 401.
   */
  token?: string;
  /** enableAdminApi lets `op: 'admin'` requests through (raw conf changes, log compaction...); default false. */
  enableAdminApi?: boolean;
  /** tls serves https/wss with this certificate instead of plain http/ws. */
  tls?: ServerTlsOptions;
}

/** REGION_PATH: GET /regions/ID shows this store's peer of one Region (TiKV's status server /region/ID). */
const REGION_PATH = /^\/regions\/([1-9][0-9]{0,15})$/;

/** regionDebugInfo is what /regions/ID shows of a peer: its raft role and term, its indexes and its Region meta. */
function regionDebugInfo(v: PeerView): object {
  const { regionId, peerId, raftState, term, leaderId, isLeader, commitIndex, lastIndex, appliedIndex, truncatedIndex, hibernating, region } = v;
  return { regionId, peerId, raftState, term, leaderId, isLeader, commitIndex, lastIndex, appliedIndex, truncatedIndex, hibernating, region: { ...region, startKey: Buffer.from(region.startKey).toString('hex'), endKey: Buffer.from(region.endKey).toString('hex') } };
}

/**
 * bearerTokenMatches says whether the request carries `Authorization: Bearer
 * <token>`. Both sides are hashed first so timingSafeEqual compares equal
 * lengths and the time taken says nothing about the token, not even its length.
 */
export function bearerTokenMatches(req: http.IncomingMessage, token: string): boolean {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer +(.+)$/i.exec(header.trim()) : null;
  const given = createHash('sha256').update(m ? m[1]! : '').digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null;
}


/** refuseUpgrade answers a WebSocket upgrade with an HTTP error status and closes the socket: no frame is ever read. */
export function refuseUpgrade(socket: Duplex, status: 401 | 404 | 503, message: string): void {
  const body = JSON.stringify({ error: message });
  const reason = status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Service Unavailable';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      (status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '') +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.destroy();
}

/**
 * ClientServer serves the store's client API (WebSocket at /client, one
 * msgpack ClientRequest per frame, answered by a ClientResponse with the
 * same id) and the HTTP endpoints /metrics (Prometheus text) and /status.
 * Every frame is decoded and validated before it reaches the store; bad
 * input gets a typed InvalidRequest error and the connection stays usable.
 * With a token configured, connections and HTTP requests (but /health) must
 * present it; `op: 'admin'` is refused unless enableAdminApi (docs/security.md).
 */
export class ClientServer {
  readonly http: http.Server | https.Server;
  private readonly wss: WebSocketServer;
  private readonly getStore: () => Store | undefined;
  private readonly maxPendingPerConnection: number;
  private readonly token: string | undefined;
  private readonly enableAdminApi: boolean;
  private readonly guard: ConnectionGuard;
  private readonly refusals: RateLimitedLog;
  private readonly maxBufferedBytesPerConnection: number;
  /** watch serves change feeds at /watch on this port (server/watch-server.ts). */
  private readonly watch: WatchServer;

  constructor(getStore: () => Store | undefined, private readonly logger: StoreLogger, opts: ClientServerOptions = {}) {
    this.getStore = getStore;
    this.maxPendingPerConnection = opts.maxPendingPerConnection ?? 4096;
    this.token = opts.token !== undefined && opts.token !== '' ? opts.token : undefined;
    this.enableAdminApi = opts.enableAdminApi ?? false;
    this.maxBufferedBytesPerConnection = opts.maxBufferedBytesPerConnection ?? 16 * 1024 * 1024;
    this.refusals = new RateLimitedLog(logger, opts.refusalLogWindowMs !== undefined ? { windowMs: opts.refusalLogWindowMs } : {});
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => this.onHttp(req, res);
    const timeouts = httpTimeoutOptions(opts.headersTimeoutMs);
    this.http = opts.tls ? https.createServer({ ...timeouts, cert: readFileSync(opts.tls.certPath), key: readFileSync(opts.tls.keyPath) }, onRequest) : http.createServer(timeouts, onRequest);
    this.guard = new ConnectionGuard(this.http, { maxConnections: opts.maxConnections ?? 1024, secure: opts.tls !== undefined, what: 'client', hint: 'maxClientConnections', log: this.refusals });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME_BYTES });
    this.watch = new WatchServer(getStore, logger);
    this.otherUpgrades.set(WATCH_PATH, (req, socket, head) => this.watch.upgrade(req, socket, head));
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      const overLimit = this.guard.refusal(req.socket);
      if (overLimit !== undefined) return refuseUpgrade(socket, 503, overLimit);
      if (this.token !== undefined && !bearerTokenMatches(req, this.token)) {
        // The token itself is never logged; only that a connection was refused (once per address and window).
        this.refusals.warn(`401-ws|${req.socket.remoteAddress}`, { remote: req.socket.remoteAddress, path }, 'client connection refused: missing or wrong API token');
        refuseUpgrade(socket, 401, 'missing or wrong API token (send Authorization: Bearer <token>)');
        return;
      }
      if (path === CLIENT_PATH) {
        this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req.socket.remoteAddress));
      } else if (!this.otherUpgrades.get(path ?? '')?.(req, socket, head)) {
        socket.destroy();
      }
    });
  }

  /** otherUpgrades lets other WebSocket endpoints share the port. */
  readonly otherUpgrades = new Map<string, (req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => boolean>();

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        const a = this.http.address() as { address: string; port: number };
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /**
   * close ends each client connection with a close frame (1001, going away)
   * sent after the answers already queued on it, so a caller of a stopping
   * store reads its answer (Unavailable "store is shutting down", or why a
   * storage failure stopped the store) rather than a dropped socket. A
   * connection whose peer has not closed within CLOSE_GRACE_MS is cut.
   */
  async close(): Promise<void> {
    this.refusals.close();
    await Promise.all([...this.wss.clients].map(closeGracefully));
    await this.watch.close();
    await new Promise<void>((r) => this.wss.close(() => r()));
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  private onHttp(req: http.IncomingMessage, res: http.ServerResponse): void {
    const store = this.getStore();
    const path = (req.url ?? '').split('?')[0];
    const overLimit = this.guard.refusal(req.socket);
    if (overLimit !== undefined) {
      res.writeHead(503, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ error: overLimit }));
      return;
    }
    if (this.token !== undefined && path !== '/health' && !bearerTokenMatches(req, this.token)) {
      this.refusals.warn(`401-http|${req.socket.remoteAddress}`, { remote: req.socket.remoteAddress, path: path?.slice(0, 64) }, 'client HTTP request refused: missing or wrong API token');
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end(JSON.stringify({ error: 'missing or wrong API token (send Authorization: Bearer <token>)' }));
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'method not allowed' }));
      return;
    }
    if (path === '/metrics' && store) {
      // prom-client renders asynchronously (collect callbacks may be async); a failure is a 500, never a crash.
      store.metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': store.metrics.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
      );
    } else if (path === '/health' && this.token !== undefined) {
      // /health is open even with a token, so it says only whether the store serves.
      res.writeHead(store ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: store !== undefined }));
    } else if (path === '/status' || path === '/health') {
      res.writeHead(store ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(store ? store.status() : { starting: true }));
    } else if (store && path !== undefined && REGION_PATH.test(path)) {
      const view = store.inspectRegion(Number(REGION_PATH.exec(path)![1]));
      res.writeHead(view ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(view ? regionDebugInfo(view) : { error: 'this store has no peer of that region' }));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found', paths: ['/metrics', '/status', '/regions/ID', CLIENT_PATH] }));
    }
  }

  /**
   * replier returns the function that sends answers on ws. Answers of one
   * poll round leave in one write: the socket is corked on the first reply
   * of a tick and uncorked on the next tick. Each answer stays counted in
   * the connection's window until it is written.
   */
  private replier(ws: WebSocket, window: AnswerWindow): (r: ClientResponse) => void {
    const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    let corked = false;
    const uncork = () => {
      corked = false;
      socket?.uncork();
    };
    return (r) => {
      if (ws.readyState !== ws.OPEN) return;
      if (socket && !corked) {
        corked = true;
        socket.cork();
        process.nextTick(uncork);
      }
      const bytes = encode(r);
      ws.send(bytes, window.answer(bytes.length));
    };
  }

  private onConnection(ws: WebSocket, remote: string | undefined): void {
    const conn = { pending: 0 };
    // Busy answers bound what waits on raft; the window bounds answers the client has not read.
    const window = new AnswerWindow(ws, { maxInFlight: Infinity, maxBufferedBytes: this.maxBufferedBytesPerConnection }, (state) =>
      this.refusals.warn(`slow|${remote}`, { remote, bufferedBytes: state.bufferedBytes }, 'client is not reading its answers; stopped reading its requests until it catches up'),
    );
    const reply = this.replier(ws, window);
    ws.on('message', (data: Buffer, isBinary: boolean) => window.request(() => this.onFrame(conn, data, isBinary, reply)));
    ws.on('close', () => window.close());
    ws.on('error', () => {});
  }

  /** onFrame answers one client frame: decoded and validated, then handed to the store; every frame gets exactly one reply. */
  private onFrame(conn: { pending: number }, data: Buffer, isBinary: boolean, reply: (r: ClientResponse) => void): void {
    const store = this.getStore();
    if (!isBinary) return reply({ id: 0, ok: false, error: { type: 'InvalidRequest', message: 'frames must be binary msgpack' } });
    let req: ClientRequest;
    let raw: unknown;
    try {
      raw = decode(data);
      req = parseWith(clientRequestSchema, raw, 'client request') as ClientRequest;
    } catch (e) {
      const id = raw && typeof raw === 'object' && typeof (raw as { id?: unknown }).id === 'number' ? ((raw as { id: number }).id) : 0;
      const message = e instanceof DecodeError || e instanceof ValidationError ? e.message : 'malformed request';
      if (store) store.metrics.clientErrors++;
      return reply({ id, ok: false, error: { type: 'InvalidRequest', message } });
    }
    if (req.op === 'admin' && !this.enableAdminApi) {
      if (store) store.metrics.clientErrors++;
      return reply({ id: req.id, ok: false, error: { type: 'InvalidRequest', message: 'admin commands are disabled (start the store with enableAdminApi / --enable-admin-api)' } });
    }
    if (!store) return reply({ id: req.id, ok: false, error: { type: 'Unavailable', message: 'store is starting' } });
    store.metrics.clientRequests++;
    if (conn.pending >= this.maxPendingPerConnection) {
      return reply({ id: req.id, ok: false, error: { type: 'ServerIsBusy', reason: 'too many requests in flight on this connection', backoffMs: 20 } });
    }
    conn.pending++;
    let answered = false;
    try {
      store.handleClientRequest(req, (result: CommandResult) => {
        if (answered) return;
        answered = true;
        conn.pending--;
        if (!result.ok) store.metrics.clientErrors++;
        reply(result.ok ? { id: req.id, ...result } : { id: req.id, ok: false, error: result.error });
      });
    } catch (e) {
      // Only raft's typed errors are expected here; anything else is a
      // broken invariant and must crash the store, not be answered.
      if (!(e instanceof RaftError)) throw e;
      this.logger.error({ err: e.message }, 'client request failed');
      if (!answered) {
        answered = true;
        conn.pending--;
        reply({ id: req.id, ok: false, error: { type: 'Unavailable', message: e.message } });
      }
    }
  }
}
