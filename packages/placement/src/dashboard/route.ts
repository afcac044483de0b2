import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PlacementCluster } from '../cluster';
import { PlacementError, PlacementErrorCode } from '../errors';
import { send, sendError } from '../http';
import type { RegionFlow } from '../types';
import { DashboardHub } from './events';
import { groupViewOf } from './group';
import { heatmapView, parseHeatmapMetric } from './heatmap-view';
import { DASHBOARD_PAGE } from './page';
import { hotRegions } from './snapshot';

// The cluster dashboard, on placement's HTTP port:
//   GET /dashboard            the page (self-contained HTML; ?token=… when placement has a token)
//   GET /dashboard/snapshot   what the page draws, as JSON
//   GET /dashboard/events     the same as server-sent events, one snapshot a second
//   GET /dashboard/heatmap?metric=write_bytes|read_bytes|write_keys|read_keys   the key visualizer (heatmap-view.ts)
//   GET /regions/hot?by=writeBytes|writeKeys|readBytes|readKeys&limit=N   Regions by flow

const hubs = new WeakMap<PlacementCluster, DashboardHub>();

function hubOf(cluster: PlacementCluster): DashboardHub {
  let hub = hubs.get(cluster);
  if (hub === undefined) hubs.set(cluster, (hub = new DashboardHub(cluster)));
  return hub;
}

/** isDashboardPath: the paths that also accept the token as `?token=` (a browser's EventSource cannot set headers). */
export function isDashboardPath(pathname: string): boolean {
  return pathname === '/dashboard' || pathname.startsWith('/dashboard/');
}

/**
 * dashboardTokenMatches says whether a dashboard request carries the token
 * as `?token=`; only dashboard paths accept it there (docs/security.md: it
 * is a credential in a URL). Hashed on both sides, as tokenMatches does.
 */
export function dashboardTokenMatches(req: IncomingMessage, token: string): boolean {
  const url = new URL(req.url ?? '/', 'http://placement');
  const given = url.searchParams.get('token');
  if (given === null || !isDashboardPath(url.pathname)) return false;
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(token).digest());
}

/** redactUrl hides a `token=` query value before a URL is logged. */
export function redactUrl(url: string | undefined): string | undefined {
  return url?.replace(/([?&]token=)[^&]*/gi, '$1REDACTED');
}

const HOT_BY: Record<string, keyof RegionFlow> = { writeBytes: 'writeBytesPerSec', writeKeys: 'writeKeysPerSec', readBytes: 'readBytesPerSec', readKeys: 'readKeysPerSec' };

/** handleDashboard answers /dashboard, /dashboard/snapshot, /dashboard/events and /regions/hot (segs are the decoded path parts). */
export function handleDashboard(cluster: PlacementCluster, req: IncomingMessage, res: ServerResponse, segs: string[], url: URL): void {
  const [a, b, c] = segs;
  if (a === 'regions' && b === 'hot' && c === undefined) {
    const byName = url.searchParams.get('by') ?? 'writeBytes';
    const by = HOT_BY[byName];
    if (by === undefined) throw new PlacementError(PlacementErrorCode.InvalidArgument, `by: ${JSON.stringify(byName)} is not one of ${Object.keys(HOT_BY).join(', ')}`);
    const limitText = url.searchParams.get('limit') ?? '20';
    const limit = Number(limitText);
    if (!/^[0-9]{1,5}$/.test(limitText) || limit < 1 || limit > 1000) throw new PlacementError(PlacementErrorCode.InvalidArgument, `limit: ${JSON.stringify(limitText)} is not an integer in 1..1000`);
    return send(res, 200, { by: byName, regions: hotRegions(cluster, by, limit) });
  }
  if (a !== 'dashboard' || c !== undefined) return sendError(res, 404, 'NotFound', `no route ${url.pathname}; try /dashboard, /dashboard/snapshot, /dashboard/events, /dashboard/heatmap`);
  if (b === undefined) {
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(DASHBOARD_PAGE),
      'cache-control': 'no-store',
      // The URL may carry the token: never send it on as a Referer; the page loads nothing from elsewhere.
      'referrer-policy': 'no-referrer',
      'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : DASHBOARD_PAGE);
    return;
  }
  if (b === 'snapshot') return send(res, 200, hubOf(cluster).snapshot());
  if (b === 'events') return hubOf(cluster).attach(req, res);
  if (b === 'heatmap') return sendHeatmap(cluster, res, url);
  return sendError(res, 404, 'NotFound', `no route ${url.pathname}; try /dashboard, /dashboard/snapshot, /dashboard/events, /dashboard/heatmap`);
}

/**
 * sendHeatmap answers /dashboard/heatmap: the leader's recorded columns for
 * one metric, and which member recorded them (a follower relays the
 * leader's answer; the map lives in the leader's memory only). Written
 * without indentation: up to 360 × 256 rows.
 */
function sendHeatmap(cluster: PlacementCluster, res: ServerResponse, url: URL): void {
  const metric = parseHeatmapMetric(url.searchParams.get('metric'));
  const rec = cluster.heatmap;
  const group = groupViewOf(cluster);
  const leader = group?.members.find((m) => m.id === group.leaderId);
  const view = heatmapView(rec.columns(), metric, { intervalMs: rec.intervalMs, maxColumns: rec.maxColumns, maxRows: rec.maxRows, sinceMs: rec.sinceMs });
  const text = JSON.stringify({ ...view, recordedBy: leader ? { name: leader.name, id: leader.id, term: group!.term } : null, persisted: false });
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
