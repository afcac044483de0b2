import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { addTransferLeader, cancelOperator } from './admin';
import type { PlacementCluster } from './cluster';
import { PlacementError, PlacementErrorCode, PlacementInvariantError } from './errors';
import { parseId, renderOperator, send, sendError } from './http';

// admin-http.ts: the HTTP routes that change placement's state, for
// `flotilla store remove`, `transfer-leader` and `operator cancel` (and
// curl). They sit behind the same API token as every other route.
//   DELETE /stores/:id             take the store offline: move its peers away, then tombstone it
//   POST   /operators              {"type":"transfer-leader","regionId":R,"storeId":S} (application/json)
//   DELETE /operators/:regionId    cancel the Region's operator in flight
// A POST must carry Content-Type: application/json, which a web page can
// only send after a CORS preflight placement never grants: a page open in
// a browser on an operator's machine cannot forge one.

/** MAX_ADMIN_BODY_BYTES bounds a POST body (the only one is a small JSON object). */
const MAX_ADMIN_BODY_BYTES = 64 * 1024;

const id = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const operatorRequestSchema = z.object({ type: z.literal('transfer-leader'), regionId: id, storeId: id });

const STATUS: Record<string, number> = {
  [PlacementErrorCode.StoreNotFound]: 404,
  [PlacementErrorCode.RegionNotFound]: 404,
  [PlacementErrorCode.OperatorNotFound]: 404,
  [PlacementErrorCode.OperatorRefused]: 409,
  [PlacementErrorCode.NotBootstrapped]: 409,
};

/** readBody collects a request body up to `limit` bytes (a larger one is an InvalidArgument). */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new PlacementError(PlacementErrorCode.InvalidArgument, `request body over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** parseOperatorRequest checks a POST /operators body. */
function parseOperatorRequest(req: IncomingMessage, body: string): z.infer<typeof operatorRequestSchema> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new PlacementError(PlacementErrorCode.InvalidArgument, 'POST /operators: send Content-Type: application/json');
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new PlacementError(PlacementErrorCode.InvalidArgument, 'POST /operators: the body is not JSON');
  }
  const r = operatorRequestSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new PlacementError(PlacementErrorCode.InvalidArgument, `POST /operators: ${issue?.path.join('.') || '(body)'}: ${issue?.message ?? 'invalid'} (expected {"type":"transfer-leader","regionId":N,"storeId":N})`);
  }
  return r.data;
}

/** route answers one admin request whose body (if any) has been read. */
function route(cluster: PlacementCluster, req: IncomingMessage, res: ServerResponse, body: string): void {
  const url = new URL(req.url ?? '/', 'http://placement');
  const [a, b, ...rest] = url.pathname.split('/').filter((x) => x !== '');
  if (rest.length === 0 && req.method === 'DELETE' && a === 'stores' && b !== undefined) {
    return send(res, 200, { store: cluster.offlineStore(parseId(b, 'store id')) });
  }
  if (rest.length === 0 && req.method === 'DELETE' && a === 'operators' && b !== undefined) {
    return send(res, 200, { canceled: renderOperator(cancelOperator(cluster, parseId(b, 'region id'))) });
  }
  if (rest.length === 0 && req.method === 'POST' && a === 'operators' && b === undefined) {
    const r = parseOperatorRequest(req, body);
    const out = addTransferLeader(cluster, r.regionId, r.storeId);
    return 'operator' in out ? send(res, 200, { operator: renderOperator(out.operator) }) : send(res, 200, { alreadyLeader: true });
  }
  sendError(res, 405, 'MethodNotAllowed', `${req.method ?? ''} ${url.pathname}: not an admin route (DELETE /stores/:id, POST /operators, DELETE /operators/:regionId); everything else is GET`);
}

/**
 * handleAdminHttp answers a POST or DELETE. Expected failures are JSON
 * errors with a status by code (404 not found, 409 refused, 400 otherwise);
 * anything else is a 500, except a broken invariant, which is rethrown
 * outside the request so the process stops as it would on the WebSocket API.
 */
export function handleAdminHttp(cluster: PlacementCluster, req: IncomingMessage, res: ServerResponse): void {
  const fail = (err: unknown): void => {
    if (err instanceof PlacementInvariantError) {
      setImmediate(() => {
        throw err;
      });
      return;
    }
    if (res.headersSent) return void res.end();
    if (err instanceof PlacementError) return sendError(res, STATUS[err.code] ?? 400, err.code, err.message);
    sendError(res, 500, PlacementErrorCode.Internal, (err as Error).message);
  };
  const body = req.method === 'POST' ? readBody(req, MAX_ADMIN_BODY_BYTES) : Promise.resolve('');
  body.then((text) => route(cluster, req, res, text)).catch(fail);
}
