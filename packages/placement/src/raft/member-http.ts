import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Logger } from '@flotilla/proto';
import type { Registry } from 'prom-client';
import { handleHttp } from '../http';
import type { PlacementCluster } from '../cluster';
import type { MembersView } from '../types';

/** PROXIED_HEADER marks a request a follower passed on, so a stale view of the leader cannot make two members pass it around. */
const PROXIED_HEADER = 'x-flotilla-proxied-by';

export interface MemberHttpContext {
  health: () => Record<string, unknown>;
  members: () => MembersView;
  /** metrics: this member's Prometheus registry (GET /metrics, answered by every member). */
  metrics: Registry;
  /** cluster: the leader's cluster while this member serves as leader. */
  cluster: () => PlacementCluster | undefined;
  leaderAddress: () => string | undefined;
  selfName: string;
  tls?: { caPath?: string };
  logger: Logger;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * handleMemberHttp answers a member's HTTP request. Every member answers
 * /health and /members itself; the leader answers the rest from its
 * cluster, and a follower passes them on to the leader and relays its
 * answer (so `flotilla regions`, `stores` and scripts work against any
 * member). With no leader known, a follower answers 503 NotLeader.
 */
export function handleMemberHttp(ctx: MemberHttpContext, req: IncomingMessage, res: ServerResponse): void {
  const path = new URL(req.url ?? '/', 'http://placement').pathname.replace(/\/+$/, '');
  if ((req.method === 'GET' || req.method === 'HEAD') && path === '/health') return sendJson(res, 200, ctx.health());
  if ((req.method === 'GET' || req.method === 'HEAD') && path === '/members') return sendJson(res, 200, ctx.members());
  if ((req.method === 'GET' || req.method === 'HEAD') && path === '/metrics') return void sendMetrics(ctx, res);
  const cluster = ctx.cluster();
  if (cluster) return handleHttp(cluster, req, res);
  const leader = ctx.leaderAddress();
  if (leader === undefined || req.headers[PROXIED_HEADER] !== undefined) {
    return sendJson(res, 503, { ok: false, error: { code: 'NotLeader', message: `placement member ${ctx.selfName} is not the leader and knows none yet; retry shortly`, ...(leader ? { leader } : {}) } });
  }
  proxy(ctx, leader, req, res);
}

/** proxy relays one request to the leader (method, path, headers including the token) and its answer back. */
function proxy(ctx: MemberHttpContext, leader: string, req: IncomingMessage, res: ServerResponse): void {
  const [host, port] = splitHostPort(leader);
  const options = { host, port, method: req.method, path: req.url ?? '/', headers: { ...req.headers, host: leader, [PROXIED_HEADER]: ctx.selfName }, timeout: 10_000 };
  const send = ctx.tls ? httpsRequest({ ...options, ...(ctx.tls.caPath ? { ca: readFileSync(ctx.tls.caPath) } : {}) }) : httpRequest(options);
  send.on('response', (up) => {
    res.writeHead(up.statusCode ?? 502, up.headers);
    up.pipe(res);
  });
  send.on('timeout', () => send.destroy(new Error('timed out')));
  send.on('error', (err) => {
    ctx.logger.debug({ leader, err: err.message }, 'placement http proxy to the leader failed');
    if (!res.headersSent) sendJson(res, 502, { ok: false, error: { code: 'Unavailable', message: `placement leader ${leader} did not answer: ${err.message}`, leader } });
    else res.destroy();
  });
  req.pipe(send);
}

async function sendMetrics(ctx: MemberHttpContext, res: ServerResponse): Promise<void> {
  try {
    const text = await ctx.metrics.metrics();
    res.writeHead(200, { 'content-type': ctx.metrics.contentType, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  } catch (err) {
    ctx.logger.error({ err: (err as Error).message }, 'placement metrics failed');
    if (!res.headersSent) sendJson(res, 500, { ok: false, error: { code: 'Internal', message: (err as Error).message } });
  }
}

function splitHostPort(address: string): [string, number] {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(address);
  return m ? [m[1]!, Number(m[2])] : [address, 80];
}
