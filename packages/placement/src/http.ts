import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Peer } from '@flotilla/proto';
import { PLACEMENT_LIMITS } from './schema';
import { handleAdminHttp } from './admin-http';
import { handleDashboard } from './dashboard/route';
import type { PlacementCluster } from './cluster';
import { PlacementError, PlacementErrorCode } from './errors';
import type { Operator, RegionWithLeader, RegionInfo } from './types';

// Read-only HTTP JSON for people and scripts, on the same port as the
// WebSocket API:
//   GET /health              {ok, clusterId, bootstrapped}
//   GET /status              cluster info, ID allocator, operators, schedulers, store states
//   GET /stores              every store with liveness and counts
//   GET /stores/:id
//   GET /regions?start=&end=&limit=   Regions in key order (keys as UTF-8 or 0x-hex)
//   GET /regions/id/:id
//   GET /regions/key/:key    the Region holding key (UTF-8 or 0x-hex)
//   GET /operators           operators in flight
//   GET /dashboard, /dashboard/snapshot, /dashboard/events, /regions/hot   the cluster dashboard (dashboard/route.ts)
// POST and DELETE go to the admin routes (admin-http.ts).

/** renderKey shows printable ASCII as is and anything else as 0x-hex; the empty key is "". */
export function renderKey(k: Uint8Array): string {
  if (k.length === 0) return '';
  for (const c of k) if (c < 0x20 || c > 0x7e) return '0x' + Buffer.from(k).toString('hex');
  // A printable key that itself starts with 0x would read as hex; show it as hex to stay unambiguous.
  if (k.length >= 2 && k[0] === 0x30 && k[1] === 0x78) return '0x' + Buffer.from(k).toString('hex');
  return Buffer.from(k).toString('latin1');
}

/** parseKey reads a key given as UTF-8 text or as 0x-prefixed hex. */
export function parseKey(text: string): Uint8Array {
  if (/^0x/i.test(text)) {
    const hex = text.slice(2);
    if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new PlacementError(PlacementErrorCode.InvalidArgument, `key: ${JSON.stringify(text)} is not valid 0x-hex`);
    return Buffer.from(hex, 'hex');
  }
  return Buffer.from(text, 'utf8');
}

const renderPeer = (p: Peer) => ({ id: p.id, storeId: p.storeId, role: p.role });

export function renderRegion(r: RegionWithLeader | RegionInfo) {
  const info = r as Partial<RegionInfo>;
  return {
    id: r.region.id,
    startKey: renderKey(r.region.startKey),
    endKey: renderKey(r.region.endKey),
    epoch: r.region.epoch,
    peers: r.region.peers.map(renderPeer),
    leader: r.leader ? renderPeer(r.leader) : null,
    ...(info.approximateSizeBytes !== undefined ? { approximateSizeBytes: info.approximateSizeBytes, approximateKeys: info.approximateKeys } : {}),
    ...(info.downPeers && info.downPeers.length > 0 ? { downPeers: info.downPeers.map((d) => ({ peer: renderPeer(d.peer), downSeconds: d.downSeconds })) } : {}),
    ...(info.pendingPeers && info.pendingPeers.length > 0 ? { pendingPeers: info.pendingPeers.map(renderPeer) } : {}),
    ...(info.flow ? { flow: info.flow } : {}),
  };
}

export function renderOperator(op: Operator) {
  return {
    id: op.id,
    regionId: op.regionId,
    kind: op.kind,
    scheduler: op.scheduler,
    currentStep: op.currentStep,
    steps: op.steps.map((s) => (s.type === 'merge' ? { type: s.type, targetRegionId: s.target.id } : s)),
    createdAtMs: op.createdAtMs,
    deadlineMs: op.deadlineMs,
    description: op.description,
  };
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { ok: false, error: { code, message } });
}

export function parseId(text: string, what: string): number {
  const n = Number(text);
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(n) || n <= 0) throw new PlacementError(PlacementErrorCode.InvalidArgument, `${what}: ${JSON.stringify(text)} is not a positive integer`);
  return n;
}

/** handleHttp answers one HTTP request from the cluster's in-memory state. */
export function handleHttp(cluster: PlacementCluster, req: IncomingMessage, res: ServerResponse): void {
  try {
    if (req.method === 'POST' || req.method === 'DELETE') return handleAdminHttp(cluster, req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'MethodNotAllowed', 'GET reads; POST and DELETE are the admin routes');
    const url = new URL(req.url ?? '/', 'http://placement');
    const parts = url.pathname.split('/').filter((x) => x !== '');
    let segs: string[];
    try {
      segs = parts.map((x) => decodeURIComponent(x));
    } catch {
      throw new PlacementError(PlacementErrorCode.InvalidArgument, `path ${JSON.stringify(url.pathname)} has invalid percent-encoding`);
    }
    if (segs[0] === 'dashboard' || (segs[0] === 'regions' && segs[1] === 'hot' && segs.length === 2)) return handleDashboard(cluster, req, res, segs, url);
    const [a, b, c, ...rest] = segs;
    if (rest.length > 0) return sendError(res, 404, 'NotFound', `no route ${url.pathname}`);
    if (a === 'health' && b === undefined) {
      return send(res, 200, { ok: true, clusterId: cluster.clusterId, bootstrapped: cluster.isBootstrapped() });
    }
    if (a === 'status' && b === undefined) {
      const states: Record<string, number> = { up: 0, disconnected: 0, offline: 0, down: 0, tombstone: 0 };
      for (const s of cluster.allStores()) states[s.state] = (states[s.state] ?? 0) + 1;
      return send(res, 200, {
        ...cluster.clusterInfo(),
        nextId: cluster.nextId(),
        pendingWrites: cluster.pendingWrites,
        storeStates: states,
        operators: cluster.operators.stats,
        schedulers: cluster.schedulers.map((s) => ({ name: s.name, limit: s.limit, operatorTimeoutMs: s.operatorTimeoutMs, inFlight: cluster.operators.countOf(s.name) })),
      });
    }
    if (a === 'stores' && c === undefined) {
      if (b === undefined) return send(res, 200, { stores: cluster.allStores() });
      const store = cluster.storeInfo(parseId(b, 'store id'));
      return store ? send(res, 200, { store }) : sendError(res, 404, PlacementErrorCode.StoreNotFound, `store ${b} not found`);
    }
    if (a === 'operators' && b === undefined) return send(res, 200, { operators: cluster.operators.all().map(renderOperator) });
    if (a === 'regions') {
      if (b === undefined) {
        const start = parseKey(url.searchParams.get('start') ?? '');
        const end = parseKey(url.searchParams.get('end') ?? '');
        const limitText = url.searchParams.get('limit') ?? '100';
        const limit = parseId(limitText, 'limit');
        if (limit > PLACEMENT_LIMITS.maxScanLimit) throw new PlacementError(PlacementErrorCode.InvalidArgument, `limit: at most ${PLACEMENT_LIMITS.maxScanLimit}`);
        const regions = cluster.tree.scan(start, end, limit);
        return send(res, 200, { count: regions.length, total: cluster.regionCount(), regions: regions.map(renderRegion) });
      }
      if (b === 'key' && c !== undefined) {
        const info = cluster.tree.search(parseKey(c));
        return info ? send(res, 200, { region: renderRegion(info) }) : sendError(res, 404, 'RegionNotFound', `no region holds key ${JSON.stringify(c)}`);
      }
      if (b === 'id' && c !== undefined) {
        const info = cluster.tree.getById(parseId(c, 'region id'));
        const heartbeatMs = info ? cluster.lastHeartbeatMs(info.region.id) : undefined;
        return info ? send(res, 200, { region: { ...renderRegion(info), ...(heartbeatMs !== undefined ? { lastHeartbeatMs: heartbeatMs } : {}) } }) : sendError(res, 404, 'RegionNotFound', `region ${c} not found`);
      }
    }
    return sendError(res, 404, 'NotFound', `no route ${url.pathname}; try /health, /status, /stores, /regions, /regions/key/:key, /regions/id/:id, /regions/hot, /operators, /dashboard`);
  } catch (err) {
    if (err instanceof PlacementError) return sendError(res, 400, err.code, err.message);
    throw err;
  }
}
