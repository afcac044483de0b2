import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { AnswerWindow, ConnectionGuard, DecodeError, RateLimitedLog, decode, encode, httpTimeoutOptions, silentLogger, type Logger } from '@flotilla/proto';
import type { ClusterOptions } from './cluster';
import { PlacementError, PlacementErrorCode, PlacementInvariantError } from './errors';
import { dashboardTokenMatches, redactUrl } from './dashboard/route';
import { maybeServeGcHttp } from './gc/http';
import { PlacementMember, type MemberOptions } from './raft/member';
import { PEER_PATH } from './raft/transport';
import { requestEnvelopeSchema } from './schema';
import { routeUpgrades } from './upgrade';
import type { WireResponse } from './types';

/** WS_PATH is where the WebSocket API listens; HTTP JSON is served on every other path of the same port. */
export const WS_PATH = '/ws';

export interface PlacementServerOptions extends Omit<ClusterOptions, 'logger' | 'opened'>, Omit<MemberOptions, 'logger' | 'token' | 'tls'> {
  /** advertise: the address other members and redirected clients reach this member at (default: the bound listen address). */
  advertise?: string;
  /** listen is host:port; port 0 picks a free one (see the returned address). */
  listen: string;
  logger?: Logger;
  /** flushIntervalMs: how often Region/operator changes are written in one transaction (default 50). */
  flushIntervalMs?: number;
  /** scheduleIntervalMs: how often the schedulers run (default 500). */
  scheduleIntervalMs?: number;
  /** maxFrameBytes bounds one request frame (default 4 MiB). */
  maxFrameBytes?: number;
  /**
   * maxConnections bounds open connections, WebSocket and HTTP alike
   * (default 4096); one more is answered HTTP 503 with the reason, before
   * any upgrade, and closed.
   */
  maxConnections?: number;
  /**
   * maxInFlightPerConnection / maxBufferedBytes bound one WebSocket
   * client's unanswered requests and the bytes of answers it has not read
   * yet (defaults 256 and 4 MiB). At either, placement stops reading that
   * client (frames already read wait, in order) until half of them are
   * gone: a client that pipelines faster than it reads is slowed down by
   * TCP, never buffered without bound and never cut off; one stalled over
   * a second is logged. (Answers are computed as each frame is read today, so
   * the byte bound is the one that acts; the count bounds answers that
   * will wait, e.g. on a commit.)
   */
  maxInFlightPerConnection?: number;
  maxBufferedBytes?: number;
  /**
   * headersTimeoutMs: a connection that has not sent a whole request head
   * (an upgrade's too) within this is answered 408 and closed (default
   * 10,000; checked every min(a quarter of it, 1 s)).
   */
  headersTimeoutMs?: number;
  /** refusalLogWindowMs: repeated refusals (401, 503) from one address are logged once, then once per window (default 10,000). */
  refusalLogWindowMs?: number;
  /**
   * token: when set, every WebSocket upgrade and every HTTP request except
   * GET /health must carry `Authorization: Bearer <token>`; others get 401
   * and nothing they send is processed (docs/security.md).
   */
  token?: string;
  /** tls serves https/wss with this certificate (PEM files) instead of plain http/ws. */
  tls?: { certPath: string; keyPath: string; caPath?: string };
}

/**
 * tokenMatches says whether req carries `Authorization: Bearer <token>`.
 * Both sides are hashed so timingSafeEqual compares equal lengths and the
 * comparison time reveals nothing about the token, not even its length.
 */
export function tokenMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer +(.+)$/i.exec(header.trim()) : null;
  const given = createHash('sha256').update(m ? m[1]! : '').digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null;
}

export interface PlacementServer {
  /** address is host:port actually bound. */
  address: string;
  httpUrl: string;
  wsUrl: string;
  clusterId: number;
  /** member is this server's placement member (role, members; tests and tools). */
  member: PlacementMember;
  close(): Promise<void>;
}

/** parseListen splits host:port (IPv6 as [::1]:port). */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || m[1] === '' || !(port >= 0 && port <= 65535)) throw new Error(`listen: ${JSON.stringify(listen)} is not host:port`);
  return { host: m[1]!, port };
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * startPlacementServer opens the placement database in dataDir, then serves
 * the WebSocket API (msgpack frames on /ws) and read-only HTTP JSON on one
 * port. Region changes are flushed every flushIntervalMs; schedulers run
 * every scheduleIntervalMs.
 */
export async function startPlacementServer(opts: PlacementServerOptions): Promise<PlacementServer> {
  const logger = opts.logger ?? silentLogger;
  const { host, port } = parseListen(opts.listen);
  const member = new PlacementMember({ ...opts, logger, ...(opts.token ? { token: opts.token } : {}), ...(opts.tls ? { tls: opts.tls.caPath ? { caPath: opts.tls.caPath } : {} } : {}) });
  const maxFrameBytes = opts.maxFrameBytes ?? 4 * 1024 * 1024;
  const answerLimits = { maxInFlight: opts.maxInFlightPerConnection ?? 256, maxBufferedBytes: opts.maxBufferedBytes ?? 4 * 1024 * 1024 };
  const refusals = new RateLimitedLog(logger, opts.refusalLogWindowMs !== undefined ? { windowMs: opts.refusalLogWindowMs } : {});

  const token = opts.token !== undefined && opts.token !== '' ? opts.token : undefined;
  const onRequest = (req: IncomingMessage, res: import('node:http').ServerResponse): void => {
    const overLimit = guard.refusal(req.socket);
    if (overLimit !== undefined) {
      res.writeHead(503, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ ok: false, error: { code: PlacementErrorCode.Unavailable, message: overLimit } }));
      return;
    }
    if (token !== undefined && !tokenMatches(req, token) && !dashboardTokenMatches(req, token) && new URL(req.url ?? '/', 'http://placement').pathname !== '/health') {
      refusals.warn(`401-http|${req.socket.remoteAddress}`, { remote: req.socket.remoteAddress, path: redactUrl(req.url)?.slice(0, 64) }, 'placement HTTP request refused: missing or wrong API token');
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
      res.end(JSON.stringify({ ok: false, error: { code: 'Unauthorized', message: 'missing or wrong API token (send Authorization: Bearer <token>)' } }));
      return;
    }
    try {
      if (maybeServeGcHttp(member, req, res)) return;
      member.handleHttp(req, res);
    } catch (err) {
      if (err instanceof PlacementInvariantError) throw err;
      logger.error({ err: (err as Error).message, url: redactUrl(req.url) }, 'http request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: false, error: { code: PlacementErrorCode.Internal, message: (err as Error).message } }));
    }
  };
  const timeouts = httpTimeoutOptions(opts.headersTimeoutMs);
  const http: Server = opts.tls ? (createTlsServer({ ...timeouts, cert: readFileSync(opts.tls.certPath), key: readFileSync(opts.tls.keyPath) }, onRequest) as unknown as Server) : createServer(timeouts, onRequest);
  const guard = new ConnectionGuard(http, { maxConnections: opts.maxConnections ?? 4096, secure: opts.tls !== undefined, what: 'placement', hint: 'maxConnections', log: refusals });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: maxFrameBytes,
    // A refused upgrade gets an HTTP 503 (connection limit) or 401 before any frame is read. The token itself is never logged.
    verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string, headers?: Record<string, string>) => void) => {
      const overLimit = guard.refusal(info.req.socket);
      if (overLimit !== undefined) return done(false, 503, JSON.stringify({ ok: false, error: { code: PlacementErrorCode.Unavailable, message: overLimit } }), { 'Content-Type': 'application/json' });
      if (token === undefined || tokenMatches(info.req, token)) return done(true);
      const remote = info.req.socket.remoteAddress;
      refusals.warn(`401-ws|${remote}`, { remote }, 'placement connection refused: missing or wrong API token');
      done(false, 401, 'Unauthorized', { 'WWW-Authenticate': 'Bearer' });
    },
  });

  const respond = (ws: WebSocket, window: AnswerWindow, resp: WireResponse): void => {
    if (ws.readyState !== ws.OPEN) return;
    const bytes = encode(resp);
    ws.send(bytes, window.answer(bytes.length));
  };

  const handleFrame = (ws: WebSocket, window: AnswerWindow, data: RawData, isBinary: boolean): void => {
    let id = 0;
    try {
      if (!isBinary) throw new PlacementError(PlacementErrorCode.MalformedFrame, 'text frames are not supported; send msgpack in a binary frame');
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      let raw: unknown;
      try {
        raw = decode(bytes, maxFrameBytes);
      } catch (err) {
        if (err instanceof DecodeError) throw new PlacementError(PlacementErrorCode.MalformedFrame, err.message);
        throw err;
      }
      if (typeof raw === 'object' && raw !== null && typeof (raw as { id?: unknown }).id === 'number' && Number.isSafeInteger((raw as { id: number }).id)) id = (raw as { id: number }).id;
      const env = requestEnvelopeSchema.safeParse(raw);
      if (!env.success) {
        const issue = env.error.issues[0];
        const field = issue && issue.path.length > 0 ? issue.path.join('.') : '(root)';
        throw new PlacementError(PlacementErrorCode.MalformedFrame, `request ${field}: ${issue?.message ?? 'not a request object {id, method, params}'}`);
      }
      id = env.data.id;
      const result = member.dispatch(env.data.method, env.data.params ?? {});
      const requestId = id;
      // A request that waits for something durable (its changes committed, a timestamp window) answers when it is: still exactly one answer per frame (the AnswerWindow counts them).
      if (result instanceof Promise) result.then((r: unknown) => respond(ws, window, { id: requestId, ok: true, result: r }), (err: unknown) => respondError(ws, window, requestId, err));
      else respond(ws, window, { id, ok: true, result });
    } catch (err) {
      respondError(ws, window, id, err);
    }
  };

  const respondError = (ws: WebSocket, window: AnswerWindow, id: number, err: unknown): void => {
    if (err instanceof PlacementError) {
      respond(ws, window, { id, ok: false, error: { code: err.code, message: err.message, ...(err.leader !== undefined ? { leader: err.leader } : {}) } });
      return;
    }
    if (err instanceof PlacementInvariantError) throw err;
    logger.error({ err: (err as Error).message, stack: (err as Error).stack }, 'placement request failed');
    respond(ws, window, { id, ok: false, error: { code: PlacementErrorCode.Internal, message: (err as Error).message } });
  };

  wss.on('connection', (ws, req) => {
    const remote = req.socket.remoteAddress;
    logger.debug({ remote }, 'placement client connected');
    const window = new AnswerWindow(ws, answerLimits, (state) =>
      refusals.warn(`slow|${remote}`, { remote, ...state }, 'placement client is not reading its answers; stopped reading its requests until it catches up'),
    );
    ws.on('message', (data, isBinary) => window.request(() => handleFrame(ws, window, data, isBinary)));
    ws.on('close', () => window.close());
    ws.on('error', (err) => logger.warn({ err: err.message }, 'placement client socket error'));
  });

  // The client API on /ws, the placement group's raft traffic on /raft: one port, two WebSocket paths.
  // /ws checks the token in its verifyClient (and logs refusals); /raft is checked here.
  routeUpgrades(http, { [WS_PATH]: wss, [PEER_PATH]: member.peerServer }, (req, path) => path === WS_PATH || token === undefined || tokenMatches(req, token));

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, () => {
      http.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    await member.close();
    throw err;
  });
  const bound = http.address() as AddressInfo;
  const address = formatHostPort(host, bound.port);
  try {
    await member.start(opts.advertise ?? address);
  } catch (err) {
    await member.stop();
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
    await member.close();
    throw err;
  }

  const flushTimer = setInterval(() => {
    try {
      member.flush();
    } catch (err) {
      // The batch stays dirty and is retried on the next tick.
      logger.error({ err: (err as Error).message }, 'placement flush failed');
    }
  }, opts.flushIntervalMs ?? 50);
  const scheduleTimer = setInterval(() => {
    try {
      member.runSchedulers();
    } catch (err) {
      if (err instanceof PlacementInvariantError) throw err;
      logger.error({ err: (err as Error).message }, 'scheduling round failed');
    }
  }, opts.scheduleIntervalMs ?? 500);

  logger.info({ address, clusterId: member.clusterId, member: member.name }, 'placement server listening');
  let closing: Promise<void> | undefined;
  return {
    address,
    httpUrl: `${opts.tls ? 'https' : 'http'}://${address}`,
    wsUrl: `${opts.tls ? 'wss' : 'ws'}://${address}${WS_PATH}`,
    get clusterId() {
      return member.clusterId;
    },
    member,
    close: () =>
      (closing ??= (async () => {
        clearInterval(flushTimer);
        clearInterval(scheduleTimer);
        refusals.close();
        // Raft first (a leader hands over; peer connections close, or the HTTP server would wait for them).
        await member.stop();
        for (const c of wss.clients) c.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        http.closeAllConnections();
        await new Promise<void>((resolve) => http.close(() => resolve()));
        await member.close();
        logger.info({ address }, 'placement server closed');
      })()),
  };
}
