import type { IncomingMessage, ServerResponse } from 'node:http';
import { PlacementError } from '../errors';
import type { GcStatus } from './types';

/** GcDispatcher: the member's dispatch and whether it serves as the leader (a follower relays /gc like every leader route). */
export interface GcDispatcher {
  readonly isServing: boolean;
  dispatch(method: string, params: unknown): unknown;
}

/** renderGcStatus: GcStatus as JSON (timestamps as decimal strings: they exceed a JSON number's exact range). */
export function renderGcStatus(s: GcStatus): Record<string, unknown> {
  return {
    safePoint: s.safePoint.toString(),
    clusterSafePoint: s.clusterSafePoint.toString(),
    gcLifeTimeMs: s.gcLifeTimeMs,
    gcIntervalMs: s.gcIntervalMs,
    services: s.services.map((x) => ({ serviceId: x.serviceId, ts: x.ts.toString(), ttlLeftMs: x.ttlLeftMs })),
    stores: s.stores.map((x) => ({ ...x, safePoint: x.safePoint.toString() })),
  };
}

/**
 * maybeServeGcHttp answers GET /gc on the serving leader (safe points,
 * service safe points, per-store progress) and says whether it did; on a
 * follower the request goes the usual way (relayed to the leader).
 */
export function maybeServeGcHttp(member: GcDispatcher, req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' || !member.isServing) return false;
  if (new URL(req.url ?? '/', 'http://placement').pathname.replace(/\/+$/, '') !== '/gc') return false;
  const send = (status: number, body: unknown): void => {
    const text = JSON.stringify(body, null, 2) + '\n';
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  Promise.resolve()
    .then(() => member.dispatch('getGcStatus', {}) as GcStatus | Promise<GcStatus>)
    .then(
      (s) => send(200, renderGcStatus(s)),
      (err: unknown) => send(err instanceof PlacementError ? 503 : 500, { ok: false, error: { code: err instanceof PlacementError ? err.code : 'Internal', message: (err as Error).message } }),
    );
  return true;
}
