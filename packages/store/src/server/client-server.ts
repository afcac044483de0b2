import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  DecodeError,
  ValidationError,
  clientRequestSchema,
  decode,
  encode,
  parseWith,
  type ClientRequest,
  type ClientResponse,
} from '@flotilla/proto';
import type { Store, StoreLogger } from '../store';
import type { CommandResult } from '../raft/proposal';
import type { PeerView } from '../inspect';
import { RaftError } from '@flotilla/raft-core';

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
  /** maxConnections bounds open client connections (default 1024, StoreConfig.maxClientConnections); one more is refused with 503. */
  maxConnections?: number;
  /** maxPendingPerConnection bounds requests in flight on one client connection (default 4096). */
  maxPendingPerConnection?: number;
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

/** CLOSE_GRACE_MS bounds how long close() waits for a client to answer its close frame. */
const CLOSE_GRACE_MS = 1000;

function closeGracefully(c: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (c.readyState === c.CLOSED) return resolve();
    const timer = setTimeout(() => {
      c.terminate();
      resolve();
    }, CLOSE_GRACE_MS);
    c.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    c.close(1001, 'store stopping');
  });
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
  private readonly maxConnections: number;

  constructor(getStore: () => Store | undefined, private readonly logger: StoreLogger, opts: ClientServerOptions = {}) {
    this.getStore = getStore;
    this.maxPendingPerConnection = opts.maxPendingPerConnection ?? 4096;
    this.token = opts.token !== undefined && opts.token !== '' ? opts.token : undefined;
    this.enableAdminApi = opts.enableAdminApi ?? false;
    this.maxConnections = opts.maxConnections ?? 1024;
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => this.onHttp(req, res);
    this.http = opts.tls ? https.createServer({ cert: readFileSync(opts.tls.certPath), key: readFileSync(opts.tls.keyPath) }, onRequest) : http.createServer(onRequest);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME_BYTES });
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (this.token !== undefined && !bearerTokenMatches(req, this.token)) {
        // The token itself is never logged; only that a connection was refused.
        this.logger.warn({ remote: req.socket.remoteAddress, path }, 'client connection refused: missing or wrong API token');
        refuseUpgrade(socket, 401, 'missing or wrong API token (send Authorization: Bearer <token>)');
        return;
      }
      if (path === CLIENT_PATH) {
        if (this.wss.clients.size >= this.maxConnections) {
          this.logger.warn({ remote: req.socket.remoteAddress, limit: this.maxConnections }, 'client connection refused: connection limit reached');
          refuseUpgrade(socket, 503, `too many client connections (limit ${this.maxConnections}); retry later or raise maxClientConnections`);
          return;
        }
        this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
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
    await Promise.all([...this.wss.clients].map(closeGracefully));
    await new Promise<void>((r) => this.wss.close(() => r()));
    await new Promise<void>((r) => this.http.close(() => r()));
  }

  private onHttp(req: http.IncomingMessage, res: http.ServerResponse): void {
    const store = this.getStore();
    const path = (req.url ?? '').split('?')[0];
    if (this.token !== undefined && path !== '/health' && !bearerTokenMatches(req, this.token)) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end(JSON.stringify({ error: 'missing or wrong API token (send Authorization: Bearer <token>)' }));
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'method not allowed' }));
      return;
    }
    if (path === '/metrics' && store) {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(store.metrics.render());
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

  private onConnection(ws: WebSocket): void {
    let pending = 0;
    // Responses answered in one poll round leave in one write: the socket is
    // corked on the first reply of a tick and uncorked on the next tick.
    const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    let corked = false;
    const uncork = () => {
      corked = false;
      socket?.uncork();
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const store = this.getStore();
      const reply = (r: ClientResponse) => {
        if (ws.readyState !== ws.OPEN) return;
        if (socket && !corked) {
          corked = true;
          socket.cork();
          process.nextTick(uncork);
        }
        ws.send(encode(r));
      };
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
      if (pending >= this.maxPendingPerConnection) {
        return reply({ id: req.id, ok: false, error: { type: 'ServerIsBusy', reason: 'too many requests in flight on this connection', backoffMs: 20 } });
      }
      pending++;
      let answered = false;
      try {
        store.handleClientRequest(req, (result: CommandResult) => {
          if (answered) return;
          answered = true;
          pending--;
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
          pending--;
          reply({ id: req.id, ok: false, error: { type: 'Unavailable', message: e.message } });
        }
      }
    });
    ws.on('error', () => {});
  }
}
