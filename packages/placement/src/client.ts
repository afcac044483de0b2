import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import type { Region } from '@flotilla/proto';
import { DecodeError, decode, encode, silentLogger, type Logger } from '@flotilla/proto';
import { PlacementError, PlacementErrorCode } from './errors';
import type { LeaseAttachResult } from './lease/types';
import { expandResults, packHeartbeat, packable } from './packed-heartbeat';
import { TsoBatcher } from './tso/batcher';
import { firstOf, isValidRange, lastOf, type TimestampRange } from './tso/timestamp';
import type {
  ClusterInfo,
  GcStatus,
  LeaseInfo,
  Operator,
  ParamsOf,
  PlacementMethod,
  RegionHeartbeat,
  RegionHeartbeatResponse,
  RegionHeartbeatResult,
  RegionWithLeader,
  ResultOf,
  SplitId,
  StoreGcProgress,
  StoreInfo,
  StoreMeta,
  StoreStats,
} from './types';

export interface PlacementClientOptions {
  /** addresses of placement servers: host:port (or ws:// URLs); the client fails over between them in order. */
  addresses: string[];
  /** requestTimeoutMs bounds each call, including time spent waiting for a connection (default 5000). */
  requestTimeoutMs?: number;
  /** maxPendingRequests bounds calls in flight plus calls waiting for a connection (default 4096). */
  maxPendingRequests?: number;
  /** reconnect backoff: starts at initialMs, doubles up to maxMs, with jitter (defaults 50 / 2000). */
  reconnectBackoffMs?: { initialMs: number; maxMs: number };
  /** maxFrameBytes bounds one response frame (default 64 MiB). */
  maxFrameBytes?: number;
  logger?: Logger;
  /** token is sent as `Authorization: Bearer <token>` on every connection (placement started with a token requires it). */
  token?: string;
  /**
   * tls dials wss:// (host:port addresses become wss://host:port/ws),
   * trusting caPath (default: the system roots); rejectUnauthorized=false
   * skips certificate checks (tests only).
   */
  tls?: ClientTlsOptions;
  /**
   * packedHeartbeats: regionHeartbeats sends stats-only heartbeats packed
   * (method regionHeartbeatsPacked, packed-heartbeat.ts; default true),
   * falling back to the map per heartbeat once a placement answers
   * UnknownMethod. false always sends the maps (the previous wire, kept
   * selectable to measure old against new).
   */
  packedHeartbeats?: boolean;
}

/** ClientTlsOptions: how a client checks the server's certificate. */
export interface ClientTlsOptions {
  caPath?: string;
  /** rejectUnauthorized: verify the certificate chain and name (default true). */
  rejectUnauthorized?: boolean;
}

interface Pending {
  id: number;
  frame: Uint8Array;
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  sent: boolean;
}

/**
 * RESENDABLE lists the methods that may be applied twice without harm, so
 * the client resends them after a reconnect: reads, heartbeats, putStore
 * and reportBatchSplit are idempotent; allocId and askBatchSplit at worst
 * skip IDs. bootstrap is not: a repeat would report AlreadyBootstrapped
 * for a bootstrap that succeeded.
 */
const RESENDABLE: ReadonlySet<string> = new Set([
  'isBootstrapped',
  'allocId',
  'putStore',
  'storeHeartbeat',
  'regionHeartbeat',
  'regionHeartbeats',
  'regionHeartbeatsPacked',
  'askBatchSplit',
  'reportBatchSplit',
  'getRegion',
  'getRegionById',
  'scanRegions',
  'getStore',
  'getAllStores',
  'getClusterInfo',
  'getOperator',
  // A lost answer only skips timestamps: the next range is above it anyway.
  'getTimestamps',
  // Setting a service safe point again only moves its expiry; the GC reads are reads.
  'updateServiceSafePoint',
  'getGcSafePoint',
  'getGcStatus',
  // A keepalive or attach sent twice only moves an expiry or finds the key attached; revoke again
  // finishes the same revocation (or answers LeaseNotFound when the first one finished). leaseGrant
  // is not here: a repeat would grant a second lease.
  'leaseKeepAlive',
  'leaseKeepAlives',
  'leaseRevoke',
  'leaseTimeToLive',
  'leaseList',
  'leaseAttach',
  'leaseAttachBatch',
]);

function toUrl(address: string, tls: boolean): string {
  if (/^wss?:\/\//.test(address)) return address;
  return `${tls ? 'wss' : 'ws'}://${address}/ws`;
}

/**
 * PlacementClient is how stores, clients and the CLI talk to placement
 * (TiKV's pd_client). One WebSocket at a time, failing over between the
 * given addresses with exponential backoff; calls made while disconnected
 * wait for the connection within their timeout, and calls that are safe to
 * repeat are resent if the connection drops under them. Every failure is a
 * PlacementError: server-side codes as sent, plus Timeout, Unavailable
 * (connection lost with a non-repeatable call - bootstrap, removeStore -
 * in flight: it may or may not have been applied), TooManyPending and Closed.
 */
export class PlacementClient {
  private readonly urls: string[];
  private readonly requestTimeoutMs: number;
  private readonly maxPending: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly maxFrameBytes: number;
  private readonly logger: Logger;
  /** dialOptions: the token header and TLS trust every connection is opened with. */
  private readonly dialOptions: WebSocket.ClientOptions;
  private readonly pending = new Map<number, Pending>();
  private ws: WebSocket | null = null;
  private open = false;
  private nextRequestId = 1;
  private urlIndex = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly tls: boolean;
  /**
   * redirect: where to connect once the current connection has drained
   * (a member answered NotLeader: with the leader's address, or to try
   * another member). No new call is sent on a draining connection.
   */
  private redirect: { index: number; immediate: boolean } | undefined;
  private drainTimer: NodeJS.Timeout | null = null;
  /** redirects: NotLeader answers since the last successful answer (past a few rounds over the members, reconnects back off). */
  private redirects = 0;
  /** tso batches concurrent timestamp() calls into one getTimestamps round trip. */
  private readonly tso: TsoBatcher;
  /** packedHeartbeats: see PlacementClientOptions; turns false once a placement answered UnknownMethod. */
  private packedHeartbeats: boolean;

  constructor(opts: PlacementClientOptions) {
    if (opts.addresses.length === 0) throw new Error('PlacementClient: addresses must name at least one placement server');
    this.tls = opts.tls !== undefined;
    this.urls = opts.addresses.map((a) => toUrl(a, this.tls));
    this.dialOptions = {
      ...(opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : {}),
      ...(opts.tls ? { rejectUnauthorized: opts.tls.rejectUnauthorized ?? true, ...(opts.tls.caPath ? { ca: readFileSync(opts.tls.caPath) } : {}) } : {}),
    };
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    this.packedHeartbeats = opts.packedHeartbeats ?? true;
    this.maxPending = opts.maxPendingRequests ?? 4096;
    this.backoff = opts.reconnectBackoffMs ?? { initialMs: 50, maxMs: 2000 };
    this.maxFrameBytes = opts.maxFrameBytes ?? 64 * 1024 * 1024;
    this.logger = opts.logger ?? silentLogger;
    this.tso = new TsoBatcher((count) => this.getTimestampRange(count), this.maxPending * 16, 65_536);
    this.connect();
  }

  /** connected: a WebSocket to some placement server is open right now. */
  get connected(): boolean {
    return this.open;
  }

  /** tsoRoundTrips: getTimestamps round trips the timestamp() batcher has made (benchmarks, tests). */
  get tsoRoundTrips(): number {
    return this.tso.batches;
  }

  /** pendingCount: calls in flight or waiting for a connection. */
  get pendingCount(): number {
    return this.pending.size;
  }

  private connect(): void {
    if (this.closed || this.ws) return;
    const url = this.urls[this.urlIndex % this.urls.length]!;
    const ws = new WebSocket(url, { ...this.dialOptions, maxPayload: this.maxFrameBytes, handshakeTimeout: Math.max(1000, this.requestTimeoutMs) });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => {
      if (this.ws !== ws) return;
      this.open = true;
      this.attempt = 0;
      this.logger.debug({ url }, 'placement connected');
      for (const p of this.pending.values()) if (!p.sent) this.sendPending(ws, p);
    });
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      if (status === 401) {
        // A wrong token will not become right by waiting: fail what is pending now (later calls fail on the next attempt).
        this.logger.warn({ url }, 'placement refused the connection: missing or wrong API token');
        for (const p of [...this.pending.values()]) this.settle(p, new PlacementError(PlacementErrorCode.Unauthorized, `placement ${url} refused the connection: missing or wrong API token`));
      } else {
        this.logger.debug({ url, status }, 'placement answered the upgrade with an HTTP error');
      }
      ws.terminate();
    });
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('error', (err) => this.logger.debug({ url, err: err.message }, 'placement socket error'));
    ws.on('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.open = false;
      if (this.drainTimer) clearTimeout(this.drainTimer);
      this.drainTimer = null;
      // Calls on the wire have an unknown outcome. Those safe to apply twice are sent again on the next
      // connection (within their timeout); the others fail with Unavailable. Unsent calls keep waiting.
      for (const p of [...this.pending.values()]) {
        if (!p.sent) continue;
        if (RESENDABLE.has(p.method)) p.sent = false;
        else this.settle(p, new PlacementError(PlacementErrorCode.Unavailable, `placement connection to ${url} lost during ${p.method}; it may or may not have been applied`));
      }
      if (this.closed) return;
      const redirect = this.redirect;
      this.redirect = undefined;
      this.urlIndex = redirect ? redirect.index : this.urlIndex + 1;
      const rounds = Math.floor(this.redirects / this.urls.length);
      const base = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** Math.min(Math.max(this.attempt, rounds), 20));
      this.attempt++;
      const delay = redirect?.immediate ? 0 : Math.round(base / 2 + (Math.random() * base) / 2);
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.connect();
      }, delay);
    });
  }

  private sendPending(ws: WebSocket, p: Pending): void {
    p.sent = true;
    ws.send(p.frame, (err) => {
      if (err) this.logger.debug({ err: err.message }, 'placement send failed');
    });
  }

  private onFrame(data: Buffer): void {
    let msg: { id?: unknown; ok?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown; leader?: unknown } };
    try {
      msg = decode(data, this.maxFrameBytes) as typeof msg;
    } catch (err) {
      if (err instanceof DecodeError) {
        this.logger.warn({ err: err.message }, 'undecodable frame from placement; reconnecting');
        this.ws?.terminate();
        return;
      }
      throw err;
    }
    if (typeof msg !== 'object' || msg === null || typeof msg.id !== 'number') return;
    const p = this.pending.get(msg.id);
    if (!p) return; // timed out already
    if (msg.ok === true) {
      this.redirects = 0;
      this.settle(p, undefined, msg.result);
    } else {
      const code = typeof msg.error?.code === 'string' ? msg.error.code : PlacementErrorCode.Internal;
      const message = typeof msg.error?.message === 'string' ? msg.error.message : 'placement returned an error without a message';
      const leader = typeof msg.error?.leader === 'string' ? msg.error.leader : undefined;
      // NotLeader: the member did nothing, so any call may go to the leader. Unavailable from a leader that
      // stepped down: the call may or may not have been applied, so only calls safe to repeat go again.
      if (code === PlacementErrorCode.NotLeader || (code === PlacementErrorCode.Unavailable && RESENDABLE.has(p.method))) {
        p.sent = false;
        this.followLeader(leader);
      } else this.settle(p, new PlacementError(code, message, leader));
    }
    this.maybeFinishDrain();
  }

  /** followLeader drains the current connection and then connects to the leader named, or to the next member. */
  private followLeader(leader: string | undefined): void {
    this.redirects++;
    if (this.redirect !== undefined || !this.ws) return;
    const current = this.urlIndex % this.urls.length;
    let index = current + 1;
    if (leader !== undefined) {
      const url = toUrl(leader, this.tls);
      let i = this.urls.indexOf(url);
      if (i < 0 && this.urls.length < 64) i = this.urls.push(url) - 1;
      // A member naming itself is stale: try the next one.
      if (i >= 0 && i !== current) index = i;
    }
    this.logger.debug({ from: this.urls[current], to: this.urls[index % this.urls.length], leader }, 'placement member is not the leader; switching');
    this.redirect = { index, immediate: leader !== undefined && this.redirects <= 2 * this.urls.length };
    // Calls already on the wire to this member get their answers first (bounded).
    const ws = this.ws;
    this.drainTimer = setTimeout(() => ws.terminate(), 1000);
  }

  private maybeFinishDrain(): void {
    if (this.redirect === undefined || !this.ws) return;
    for (const p of this.pending.values()) if (p.sent) return;
    this.ws.terminate();
  }

  private settle(p: Pending, err: Error | undefined, value?: unknown): void {
    if (this.pending.get(p.id) !== p) return;
    this.pending.delete(p.id);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(value);
  }

  /** call sends one request; the typed methods below are thin wrappers. */
  call<M extends PlacementMethod>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    if (this.closed) return Promise.reject(new PlacementError(PlacementErrorCode.Closed, 'placement client is closed'));
    if (this.pending.size >= this.maxPending) {
      return Promise.reject(new PlacementError(PlacementErrorCode.TooManyPending, `${this.pending.size} placement requests already pending (limit ${this.maxPending})`));
    }
    const id = this.nextRequestId++;
    const frame = encode({ id, method, params });
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const p: Pending = {
        id,
        frame,
        method,
        resolve: resolve as (v: unknown) => void,
        reject,
        sent: false,
        timer: setTimeout(() => {
          this.settle(p, new PlacementError(PlacementErrorCode.Timeout, `placement ${method} timed out after ${this.requestTimeoutMs} ms${this.open ? '' : ' (not connected)'}`));
        }, this.requestTimeoutMs),
      };
      this.pending.set(id, p);
      if (this.open && this.ws && this.redirect === undefined) this.sendPending(this.ws, p);
      else this.connect();
    });
  }

  async bootstrap(store: StoreMeta, region: Region): Promise<void> {
    await this.call('bootstrap', { store, region });
  }
  async isBootstrapped(): Promise<boolean> {
    return (await this.call('isBootstrapped', {})).bootstrapped;
  }
  /** allocId returns `count` fresh cluster-unique IDs (never repeated, even across placement restarts). */
  async allocId(count = 1): Promise<number[]> {
    return (await this.call('allocId', { count })).ids;
  }
  async putStore(store: StoreMeta): Promise<StoreInfo> {
    return (await this.call('putStore', { store })).store;
  }
  async removeStore(storeId: number): Promise<StoreInfo> {
    return (await this.call('removeStore', { storeId })).store;
  }
  async storeHeartbeat(stats: StoreStats): Promise<StoreInfo> {
    return (await this.call('storeHeartbeat', { stats })).store;
  }
  /** regionHeartbeat reports a Region (from its leader); the response may carry an operator step to execute. */
  async regionHeartbeat(hb: RegionHeartbeat): Promise<RegionHeartbeatResponse> {
    return this.call('regionHeartbeat', hb);
  }
  /**
   * regionHeartbeats reports many Regions in one request (a store's batch,
   * 1..PLACEMENT_LIMITS.maxRegionHeartbeats): one result per heartbeat, in
   * order, each the answer regionHeartbeat gives or that heartbeat's own
   * error. A placement too old to know the method answers UnknownMethod.
   */
  async regionHeartbeats(heartbeats: RegionHeartbeat[]): Promise<RegionHeartbeatResult[]> {
    const { results } = await this.sendHeartbeats(heartbeats);
    const expanded = expandResults(results);
    if (expanded !== undefined && expanded.length === heartbeats.length) return expanded;
    throw new PlacementError(PlacementErrorCode.Internal, `placement answered a batch of ${heartbeats.length} region heartbeats with ${JSON.stringify(results)?.slice(0, 200)}`);
  }
  /** sendHeartbeats: packed while placement knows the method (an older one answers UnknownMethod once, then maps). */
  private async sendHeartbeats(heartbeats: RegionHeartbeat[]): Promise<{ results: unknown }> {
    if (this.packedHeartbeats) {
      try {
        return await this.call('regionHeartbeatsPacked', { heartbeats: heartbeats.map((hb) => (packable(hb) ? packHeartbeat(hb) : hb)) });
      } catch (err) {
        if (!(err instanceof PlacementError && err.code === PlacementErrorCode.UnknownMethod)) throw err;
        this.packedHeartbeats = false;
        this.logger.info({}, 'placement does not know regionHeartbeatsPacked (an older version): sending region heartbeats as maps');
      }
    }
    return this.call('regionHeartbeats', { heartbeats });
  }
  async askBatchSplit(region: Region, count: number): Promise<SplitId[]> {
    return (await this.call('askBatchSplit', { region, count })).ids;
  }
  async reportBatchSplit(regions: Region[]): Promise<number> {
    return (await this.call('reportBatchSplit', { regions })).accepted;
  }
  async getRegion(key: Uint8Array): Promise<RegionWithLeader | null> {
    return (await this.call('getRegion', { key })).region;
  }
  async getRegionById(regionId: number): Promise<RegionWithLeader | null> {
    return (await this.call('getRegionById', { regionId })).region;
  }
  async scanRegions(startKey: Uint8Array, endKey: Uint8Array, limit: number): Promise<RegionWithLeader[]> {
    return (await this.call('scanRegions', { startKey, endKey, limit })).regions;
  }
  async getStore(storeId: number): Promise<StoreInfo | null> {
    return (await this.call('getStore', { storeId })).store;
  }
  async getAllStores(): Promise<StoreInfo[]> {
    return (await this.call('getAllStores', {})).stores;
  }
  async getClusterInfo(): Promise<ClusterInfo> {
    return this.call('getClusterInfo', {});
  }
  async getOperator(regionId: number): Promise<Operator | null> {
    return (await this.call('getOperator', { regionId })).operator;
  }

  /**
   * getTimestampRange asks the leader's oracle for `count` timestamps
   * (1..65536) in one round trip; they share one physical millisecond.
   */
  async getTimestampRange(count: number): Promise<TimestampRange> {
    const r = await this.call('getTimestamps', { count });
    if (!isValidRange(r) || r.count !== count) throw new PlacementError(PlacementErrorCode.Internal, `placement answered getTimestamps(${count}) with ${JSON.stringify(r)}`);
    return r;
  }

  /** getTimestamps returns the first and last of `count` fresh consecutive timestamps (bigint, physicalMs << 18 | logical). */
  async getTimestamps(count: number): Promise<{ first: bigint; last: bigint; count: number }> {
    const r = await this.getTimestampRange(count);
    return { first: firstOf(r), last: lastOf(r), count: r.count };
  }

  /**
   * timestamp returns one fresh timestamp, greater than every timestamp any
   * placement member returned before this call was made. Concurrent calls
   * share round trips (at most one getTimestamps request in flight).
   */
  timestamp(): Promise<bigint> {
    if (this.closed) return Promise.reject(new PlacementError(PlacementErrorCode.Closed, 'placement client is closed'));
    return this.tso.next();
  }

  /**
   * updateServiceSafePoint keeps every version a read at ts needs for ttlMs
   * (PD's UpdateServiceGCSafePoint; ttlMs 0 removes it). accepted is false
   * when ts is below the cluster safe point: nothing was registered, and
   * versions below gcSafePoint may already be gone.
   */
  async updateServiceSafePoint(serviceId: string, ts: bigint, ttlMs: number): Promise<{ accepted: boolean; gcSafePoint: bigint; minServiceSafePoint: bigint | null }> {
    const r = await this.call('updateServiceSafePoint', { serviceId, ts, ttlMs });
    return { accepted: r.accepted, gcSafePoint: BigInt(r.gcSafePoint), minServiceSafePoint: r.minServiceSafePoint === null ? null : BigInt(r.minServiceSafePoint) };
  }

  /** getGcSafePoint returns the effective GC safe point (committed); a store passes its GC progress along. */
  async getGcSafePoint(progress?: StoreGcProgress): Promise<bigint> {
    return BigInt((await this.call('getGcSafePoint', progress ? { progress } : {})).safePoint);
  }

  /** getGcStatus: safe points, service safe points with their TTL left, and each store's reported progress. */
  async getGcStatus(): Promise<GcStatus> {
    const r = await this.call('getGcStatus', {});
    return {
      ...r,
      safePoint: BigInt(r.safePoint),
      clusterSafePoint: BigInt(r.clusterSafePoint),
      services: r.services.map((x) => ({ ...x, ts: BigInt(x.ts) })),
      stores: r.stores.map((x) => ({ ...x, safePoint: BigInt(x.safePoint) })),
    };
  }

  /** leaseGrant grants a lease that lives ttlMs unless kept alive (etcd's LeaseGrant); its ID is cluster-unique. */
  async leaseGrant(ttlMs: number): Promise<{ id: number; ttlMs: number }> {
    return this.call('leaseGrant', { ttlMs });
  }

  /** leaseKeepAlive gives the lease ttlMs from now; PlacementError(LeaseNotFound) once it expired or was revoked. */
  async leaseKeepAlive(id: number): Promise<{ id: number; ttlMs: number }> {
    return this.call('leaseKeepAlive', { id });
  }

  /** leaseKeepAlives refreshes many leases in one request: one result per ID, in order (error 'LeaseNotFound' for a lease that is gone). */
  async leaseKeepAlives(ids: number[]): Promise<({ id: number; ttlMs: number } | { id: number; error: 'LeaseNotFound' })[]> {
    return (await this.call('leaseKeepAlives', { ids })).results;
  }

  /** leaseRevoke revokes the lease and resolves once every key attached to it is deleted (one transaction). */
  async leaseRevoke(id: number): Promise<void> {
    await this.call('leaseRevoke', { id });
  }

  /** leaseTimeToLive: the lease's TTL and what is left of it (and its keys with keys=true). */
  async leaseTimeToLive(id: number, keys = false): Promise<LeaseInfo> {
    return this.call('leaseTimeToLive', keys ? { id, keys } : { id });
  }

  /** leaseList: every live lease. */
  async leaseList(): Promise<LeaseInfo[]> {
    return (await this.call('leaseList', {})).leases;
  }

  /** leaseAttach records key as attached to the lease (before a put with it); LeaseNotFound once its revocation is committed. */
  async leaseAttach(id: number, key: Uint8Array): Promise<void> {
    await this.call('leaseAttach', { id, key });
  }

  /** leaseAttachBatch attaches many (lease, key) pairs in one request and one log entry: one result per item, in order (a refused item carries its error). */
  async leaseAttachBatch(items: { id: number; key: Uint8Array }[]): Promise<LeaseAttachResult[]> {
    return (await this.call('leaseAttachBatch', { items })).results;
  }

  /** close fails every pending call with Closed and stops reconnecting. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.tso.failAll(new PlacementError(PlacementErrorCode.Closed, 'placement client closed'));
    for (const p of [...this.pending.values()]) this.settle(p, new PlacementError(PlacementErrorCode.Closed, 'placement client closed'));
    const ws = this.ws;
    this.ws = null;
    this.open = false;
    if (ws) ws.terminate();
  }
}
