import { readFileSync } from 'node:fs';
import {
  LIMITS,
  compareKeys,
  type ClientResponse,
  type KvPair,
  type KvWrite,
  type Peer,
  type Region,
  type CasResult,
  type Logger,
  silentLogger,
} from '@flotilla/proto';
import type { RegionWithLeader } from '@flotilla/placement/client';
import { ConnectionPool, type ClientRequestBody } from './connection';
import { ClientError, ConnectionError } from './errors';
import { RegionCache, type CachedRegion } from './region-cache';
import type { RouteProvider } from './route-provider';
import { RETRY_ACTIONS, RetryPolicy, askedBackoffMs, peersExhausted, raceDeadline, regionErrorCase, shouldBackOff, type Failure, type RetryAction, type RetryState } from './retry';
import { checkKey, checkRange, checkValue, type Bytes } from './bytes';
import { ClientTxnTransport } from './txn/client-transport';
import { LockResolver } from './txn/resolver';
import { Pacer } from './txn/pacer';
import { Snapshot } from './txn/snapshot';
import { TxnIf, type Compare } from './txn/txn-if';
import { runTxn, type Transaction, type TxnOptions } from './txn/txn';
import type { TxnTransport } from './txn/transport';
import { resolveRange, type WatchRange } from './watch/range';
import { Watch, openFeedSocket, type WatchOptions } from './watch/watch';
import { WatchShared } from './watch/shared';
import { onePerLock, resolveHeldLock, type ResolveHeldLock } from './watch/lock-resolve';
import type { FeedSocket } from './watch/socket';
import { LeaseClient, type LeaseApi } from './lease/lease';
import { lock, type LockHolder, type LockOptions } from './recipes/mutex';
import { Election, type ElectionOptions } from './recipes/election';

export interface FlotillaClientOptions {
  /** placement lists placement servers as 'host:port[,host:port]'. Required unless `routes` is given. */
  placement?: string;
  /** routes replaces placement as the routing source (tests, embedding); the client does not close it. */
  routes?: RouteProvider;
  /** timeoutMs is the deadline of one client call, retries included (default 10000). */
  timeoutMs?: number;
  /** maxRetries bounds the attempts of one call beyond the first (default 32). */
  maxRetries?: number;
  /** attemptTimeoutMs bounds one attempt against one store before trying elsewhere (default 3000). */
  attemptTimeoutMs?: number;
  /** backoff: exponential with equal jitter, from baseMs doubling up to maxMs (default 10 / 1000). */
  backoff?: { baseMs: number; maxMs: number };
  /** maxPendingPerStore bounds requests in flight on one store connection (default 8192). */
  maxPendingPerStore?: number;
  /** maxRequestBytes: batches are cut into requests of at most this many key+value bytes (default 4 MiB). */
  maxRequestBytes?: number;
  logger?: Logger;
  /** token is sent as `Authorization: Bearer <token>` to placement and to every store (clusters started with a token require it). */
  token?: string;
  /** tls dials placement and stores with wss://, trusting caPath (default: the system roots); rejectUnauthorized=false skips certificate checks (tests only). */
  tls?: { caPath?: string; rejectUnauthorized?: boolean };
  /**
   * retryWritesInFlight: retry put/delete/batchPut/deleteRange after the
   * connection failed with the request in flight (default false). A write
   * that may already have applied can apply a second time after later
   * writes, which breaks linearizability (found by the chaos run); by
   * default such a write ends in ClientError('Undetermined') instead, like
   * cas. Set it to trade strictness for fewer errors during failures.
   */
  retryWritesInFlight?: boolean;
}

/**
 * BatchOptions: oneRequest makes a batch one request to one Region, or
 * nothing: it fails with ClientError('SpansRegions'), having sent nothing
 * that applied, when its keys belong to more than one Region (also after a
 * split found while retrying) or do not fit one request. One Region's
 * request is one read at one point, or one write applied at once: what a
 * caller needs that must not let the keys be read or written at different
 * instants (the Redis front batching a pipeline's GETs or SETs).
 */
export interface BatchOptions {
  oneRequest?: boolean;
}

type OkResponse = Extract<ClientResponse, { ok: true }>;
type RequestBody = ClientRequestBody extends infer B ? (B extends unknown ? Omit<B, 'header'> : never) : never;

type AttemptResult = { ok: true; resp: OkResponse } | { ok: false };

const EMPTY = new Uint8Array(0);
/** DOWN_STORE_MS: after a socket failure a store is tried last for this long, so routing does not keep hitting a dead leader placement still reports. */
const DOWN_STORE_MS = 2000;
const REGION_PAGE = 1000;

/**
 * FlotillaClient is the routing client (TiKV's raw client): it finds the
 * Region of each key through a cached routing table, sends the request to
 * the Region's leader over one WebSocket per store, and retries on the
 * errors Raft and splits make routine (NotLeader, EpochNotMatch,
 * RegionNotFound, KeyNotInRegion, ServerIsBusy, unreachable stores) with
 * exponential backoff and jitter, within a per-call deadline and retry
 * budget. Every expected failure ends in a ClientError.
 */
export class FlotillaClient {
  private readonly cache = new RegionCache();
  private readonly storeAddresses = new Map<number, string>();
  private readonly downStores = new Map<number, number>();
  private readonly pool: ConnectionPool;
  private readonly retry: RetryPolicy;
  private readonly attemptTimeoutMs: number;
  private readonly maxRequestBytes: number;
  private readonly logger: Logger;
  /** writeRetry: whether writes are retried after an in-flight connection failure (see retryWritesInFlight). */
  private readonly writeRetry: boolean;
  private closed = false;
  private txnT: TxnTransport | undefined;
  /** watchShared: the sockets and GC service safe point all of this client's watches share (made by the first watch). */
  private watchShared: WatchShared<FeedSocket> | undefined;
  /** resolveHeld: how this client's watches resolve a lock that holds them back (one resolution per lock in flight for all of them). */
  private resolveHeld: ResolveHeldLock | undefined;
  /** watchDial: how watch sockets dial stores (the same token and TLS as requests). */
  private readonly watchDial: { token?: string; tls?: { ca?: string; rejectUnauthorized?: boolean }; connectTimeoutMs: number };
  private leaseC: LeaseClient | undefined;

  private constructor(
    private readonly routes: RouteProvider,
    private readonly ownsRoutes: boolean,
    opts: FlotillaClientOptions,
  ) {
    const timeoutMs = positive(opts.timeoutMs ?? 10_000, 'timeoutMs');
    const maxRetries = nonNegative(opts.maxRetries ?? 32, 'maxRetries');
    this.attemptTimeoutMs = positive(opts.attemptTimeoutMs ?? 3000, 'attemptTimeoutMs');
    this.retry = new RetryPolicy({ timeoutMs, maxRetries, backoff: opts.backoff ?? { baseMs: 10, maxMs: 1000 } }, () => this.closed);
    this.maxRequestBytes = positive(opts.maxRequestBytes ?? 4 * 1024 * 1024, 'maxRequestBytes');
    this.logger = opts.logger ?? silentLogger;
    this.writeRetry = opts.retryWritesInFlight ?? false;
    this.watchDial = {
      connectTimeoutMs: Math.min(this.attemptTimeoutMs, 5000),
      ...(opts.token ? { token: opts.token } : {}),
      ...(opts.tls ? { tls: { rejectUnauthorized: opts.tls.rejectUnauthorized ?? true, ...(opts.tls.caPath ? { ca: readFileSync(opts.tls.caPath, 'utf8') } : {}) } } : {}),
    };
    this.pool = new ConnectionPool({
      maxPending: positive(opts.maxPendingPerStore ?? 8192, 'maxPendingPerStore'),
      maxFrameBytes: 128 * 1024 * 1024,
      connectTimeoutMs: Math.min(this.attemptTimeoutMs, 5000),
      logger: this.logger,
      ...(opts.token ? { token: opts.token } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
  }

  /**
   * connect builds a client and checks that placement answers within
   * timeoutMs, so a wrong address fails here rather than on the first get.
   */
  static async connect(opts: FlotillaClientOptions): Promise<FlotillaClient> {
    let routes = opts.routes;
    const owns = routes === undefined;
    if (!routes) {
      const addresses = (opts.placement ?? '').split(',').map((a) => a.trim()).filter((a) => a !== '');
      if (addresses.length === 0) throw new ClientError('InvalidArgument', 'placement: expected host:port[,host:port]');
      // Loaded on demand, and through the client face (no SQLite, no server): a client given `routes` never loads placement.
      const { PlacementClient } = await import('@flotilla/placement/client');
      routes = new PlacementClient({
        addresses,
        requestTimeoutMs: Math.min(opts.timeoutMs ?? 10_000, 5000),
        ...(opts.token ? { token: opts.token } : {}),
        ...(opts.tls ? { tls: opts.tls } : {}),
      });
    }
    const client = new FlotillaClient(routes, owns, opts);
    try {
      await client.withPlacement('connect', () => routes.scanRegions(EMPTY, EMPTY, 1), client.retry.newState('connect'));
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  // ---- public API -------------------------------------------------------

  /** get returns the value of key, or null when absent. */
  async get(key: Bytes): Promise<Uint8Array | null> {
    const k = checkKey(key, 'key');
    const { resp } = await this.callKey(k, () => ({ op: 'read', read: { type: 'get', key: k } }), this.retry.newState('get'), true);
    return resp.value ?? null;
  }

  /** batchGet returns the values of keys in the same order (null = absent); keys are split by Region and fetched in parallel. */
  async batchGet(keys: readonly Bytes[], opts: BatchOptions = {}): Promise<(Uint8Array | null)[]> {
    const ks = keys.map((k, i) => checkKey(k, `keys[${i}]`));
    const out: (Uint8Array | null)[] = new Array(ks.length).fill(null);
    if (ks.length === 0) return out;
    await this.runGrouped(
      ks.map((_, i) => i),
      (i) => ks[i]!,
      (_region, idxs) => ({ op: 'read', read: { type: 'batchGet', keys: idxs.map((i) => ks[i]!) } }),
      (resp, idxs) => {
        const values = resp.values ?? [];
        if (values.length !== idxs.length) throw new Error(`store answered batchGet of ${idxs.length} keys with ${values.length} values`);
        idxs.forEach((i, j) => (out[i] = values[j] ?? null));
      },
      this.retry.newState('batchGet'),
      true,
      undefined,
      opts.oneRequest === true,
    );
    return out;
  }

  /**
   * put writes key = value in the raw keyspace; with `{ lease }` it writes
   * the TRANSACTIONAL keyspace instead, attached to the lease
   * (client.lease.put: read it with txn or snapshot; deleted with the lease).
   */
  async put(key: Bytes, value: Bytes, opts?: { lease?: number }): Promise<void> {
    if (opts?.lease !== undefined) {
      await this.lease.put(key, value, opts.lease);
      return;
    }
    const k = checkKey(key, 'key');
    const v = checkValue(value, 'value');
    await this.callKey(k, () => ({ op: 'write', writes: [{ type: 'put', key: k, value: v }] }), this.retry.newState('put'), this.writeRetry);
  }

  /** batchPut writes every pair; pairs are split by Region and sent in parallel (each Region's share applies atomically, the whole batch does not). */
  async batchPut(pairs: readonly { key: Bytes; value: Bytes }[] | readonly [Bytes, Bytes][], opts: BatchOptions = {}): Promise<void> {
    const kvs = (pairs as readonly ({ key: Bytes; value: Bytes } | [Bytes, Bytes])[]).map((p, i) => {
      const [key, value] = Array.isArray(p) ? p : [p.key, p.value];
      return { key: checkKey(key, `pairs[${i}].key`), value: checkValue(value, `pairs[${i}].value`) };
    });
    if (kvs.length === 0) return;
    await this.runGrouped(
      kvs.map((_, i) => i),
      (i) => kvs[i]!.key,
      (_region, idxs) => ({ op: 'write', writes: idxs.map((i): KvWrite => ({ type: 'put', key: kvs[i]!.key, value: kvs[i]!.value })) }),
      () => {},
      this.retry.newState('batchPut'),
      this.writeRetry,
      (i) => kvs[i]!.key.length + kvs[i]!.value.length,
      opts.oneRequest === true,
    );
  }

  async delete(key: Bytes): Promise<void> {
    const k = checkKey(key, 'key');
    await this.callKey(k, () => ({ op: 'write', writes: [{ type: 'delete', key: k }] }), this.retry.newState('delete'), this.writeRetry);
  }

  /** deleteRange deletes every key in [start, end) (empty end = to the end of the key space), one request per Region. */
  async deleteRange(start: Bytes, end: Bytes): Promise<void> {
    const { start: s, end: e } = checkRange(start, end);
    const st = this.retry.newState('deleteRange');
    let cur = s;
    for (;;) {
      const { region } = await this.callKey(
        cur,
        (r) => ({ op: 'write', writes: [{ type: 'deleteRange', startKey: maxKey(cur, r.startKey), endKey: minEnd(e, r.endKey) }] }),
        st,
        this.writeRetry,
      );
      if (region.endKey.length === 0 || (e.length > 0 && compareKeys(region.endKey, e) >= 0)) return;
      cur = region.endKey;
    }
  }

  /**
   * scan returns up to limit pairs with start <= key < end in key order
   * (empty end = to the end), walking Regions left to right: each Region is
   * asked for what remains of the limit, and the next one starts at the
   * previous Region's endKey.
   */
  async scan(start: Bytes, end: Bytes, limit: number = LIMITS.maxScanLimit): Promise<KvPair[]> {
    const { start: s, end: e } = checkRange(start, end);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new ClientError('InvalidArgument', `limit: expected a positive integer, got ${limit}`);
    const st = this.retry.newState('scan');
    const out: KvPair[] = [];
    let cur = s;
    while (out.length < limit) {
      const want = Math.min(limit - out.length, LIMITS.maxScanLimit);
      const from = cur;
      const { resp, region } = await this.callKey(
        from,
        (r) => ({ op: 'read', read: { type: 'scan', startKey: maxKey(from, r.startKey), endKey: minEnd(e, r.endKey), limit: want } }),
        st,
        true,
      );
      const pairs = resp.pairs ?? [];
      for (const p of pairs) out.push(p);
      // Each Region hop that succeeded is progress: the retry budget bounds
      // one hop (a scan over many Regions meets many leader changes); the
      // deadline still bounds the whole scan.
      st.attempts = 0;
      if (pairs.length >= want) {
        // This Region may hold more: continue right after the last key returned.
        const last = pairs[pairs.length - 1]!.key;
        cur = successor(last);
        continue;
      }
      if (region.endKey.length === 0 || (e.length > 0 && compareKeys(region.endKey, e) >= 0)) break;
      cur = region.endKey;
    }
    return out;
  }

  /**
   * cas sets key to value (null = delete) only if its current value equals
   * expected (null = absent), atomically in the Region's Raft log. A cas whose
   * connection fails after sending ends in ClientError('Undetermined') rather
   * than being retried, since a retry could observe its own write.
   */
  async cas(key: Bytes, expected: Bytes | null, value: Bytes | null): Promise<CasResult> {
    const k = checkKey(key, 'key');
    const exp = expected === null ? null : checkValue(expected, 'expected');
    const val = value === null ? null : checkValue(value, 'value');
    const { resp } = await this.callKey(k, () => ({ op: 'write', writes: [{ type: 'cas', key: k, expected: exp, value: val }] }), this.retry.newState('cas'), false);
    const r = resp.cas?.[0];
    if (!r) throw new Error('store answered cas without a cas result');
    return { succeeded: r.succeeded, previous: r.previous ?? null };
  }

  /**
   * timestamp returns a fresh hybrid timestamp from placement's timestamp
   * oracle (TiKV's layout as a bigint: physicalMs << 18 | logical). It is
   * greater than every timestamp placement handed out before this call, on
   * any member and across leader changes; placement failures are retried
   * like routing lookups. Concurrent calls share round trips.
   */
  async timestamp(): Promise<bigint> {
    const routes = this.routes;
    if (routes.timestamp === undefined) throw new ClientError('Unavailable', 'timestamp: the route provider this client was given has no timestamp oracle');
    return this.withPlacement('timestamp', () => routes.timestamp!(), this.retry.newState('timestamp'));
  }

  // ---- transactions (txn/: the Percolator driver over txnTransport()) ----

  /** txn runs fn as a cross-Region snapshot-isolation transaction and resolves with its value once committed (txn/txn.ts runTxn; docs/transactions.md). */
  async txn<T>(fn: (tx: Transaction) => Promise<T> | T, opts?: TxnOptions): Promise<T> {
    return (await runTxn(this.txnTransport(), fn, opts)).value;
  }

  /** snapshot reads the transactional keyspace at ts (default: a fresh timestamp), resolving locks like a transaction's reads; each read has the client's timeoutMs. */
  async snapshot(ts?: bigint): Promise<Snapshot> {
    const t = this.txnTransport();
    const at = ts ?? (await t.timestamp());
    if (typeof at !== 'bigint' || at <= 0n) throw new ClientError('InvalidArgument', `ts: expected a positive bigint timestamp, got ${String(at)}`);
    return new Snapshot(t, at, new LockResolver(t), () => new Pacer(this.retry.newState('snapshot').deadline));
  }

  /** txnIf starts an etcd-style conditional transaction: txnIf(compares).then(ops).else(ops).commit(). */
  txnIf(compares: readonly Compare[]): TxnIf {
    const t = this.txnTransport();
    return new TxnIf((fn, opts) => runTxn(t, fn, opts), compares);
  }

  /** txnTransport is the routing face the transaction driver runs on (runTxn(client.txnTransport(), fn) also gives the commit ts). */
  txnTransport(): TxnTransport {
    return (this.txnT ??= new ClientTxnTransport({
      newState: (op) => this.retry.newState(op),
      call: (key, build, st, idempotent) => this.callKey(key, (r) => build(r) as RequestBody, st, idempotent),
      locate: async (key, st) => (await this.locate(key, st)).region,
      timestamp: () => this.timestamp(),
    }));
  }

  // ---- leases and recipes (lease/, recipes/: issue #18) -----------------

  /** lease: grant, keepAlive, revoke, timeToLive, list, put with a lease (lease/lease.ts; docs/watch-and-leases.md). */
  get lease(): LeaseClient {
    const routes = this.routes as Partial<LeaseApi>;
    return (this.leaseC ??= new LeaseClient({
      api: typeof routes.leaseGrant === 'function' ? (routes as LeaseApi) : undefined,
      placement: (what, fn) => this.withPlacement(what, fn, this.retry.newState(what)),
      runTxn: (fn, opts) => runTxn(this.txnTransport(), fn, opts),
    }));
  }

  /** lock holds the mutex NAME (etcd's concurrency.Mutex: ordered by revision, fenced, released on lease expiry; recipes/mutex.ts). */
  lock(name: Bytes, opts?: LockOptions): Promise<LockHolder> {
    return lock({ lease: this.lease, snapshot: () => this.snapshot() }, name, opts);
  }

  /** election NAME: campaign, resign, leader, observe (etcd's concurrency.Election; recipes/election.ts). */
  election(name: Bytes, opts?: ElectionOptions): Election {
    return new Election({ lease: this.lease, snapshot: () => this.snapshot() }, name, opts);
  }

  /**
   * watch streams the committed changes of the transactional keyspace under
   * a prefix (or in { start, end }) in revision order, after
   * opts.fromRevision (default: now); it resolves once the start revision
   * is checked (FutureRevision, Compacted) and a GC service safe point
   * holds it (watch/watch.ts; docs/watch-and-leases.md).
   */
  async watch(range: WatchRange, opts: WatchOptions = {}): Promise<Watch> {
    const { start, end } = resolveRange(range);
    const routes = this.routes as RouteProvider & { updateServiceSafePoint?: (id: string, ts: bigint, ttlMs: number) => Promise<{ accepted: boolean; gcSafePoint: bigint }> };
    const update = routes.updateServiceSafePoint;
    // One socket per store and one GC service safe point for all of this client's watches (watch/shared.ts).
    this.watchShared ??= new WatchShared<FeedSocket>((address) => openFeedSocket({ dial: { ...this.watchDial, logger: this.logger } }, address), update ? (id, ts, ttlMs) => update.call(routes, id, ts, ttlMs) : undefined, this.logger);
    return Watch.open(
      {
        shared: this.watchShared,
        scanRegions: (s, e, limit) => this.withPlacement('scanRegions', () => this.routes.scanRegions(s, e, limit), this.retry.newState('watch')),
        storeAddress: (storeId) => this.storeAddress(storeId, this.retry.newState('watch')),
        timestamp: () => this.timestamp(),
        ...(update ? { updateServiceSafePoint: (id: string, ts: bigint, ttlMs: number) => update.call(routes, id, ts, ttlMs) } : {}),
        dial: { ...this.watchDial, logger: this.logger },
        logger: this.logger,
        resolveLock: (this.resolveHeld ??= onePerLock((lock) => resolveHeldLock(new LockResolver(this.txnTransport()), lock))),
      },
      start,
      end,
      opts,
    );
  }

  /** split asks the leader of the Region holding key to split it at key; returns the Regions after the split, left to right. */
  async split(key: Bytes): Promise<Region[]> {
    const k = checkKey(key, 'key');
    const { resp, region } = await this.callKey(k, () => ({ op: 'split', splitKeys: [k] }), this.retry.newState('split', Infinity), true);
    const regions = resp.regions ?? [];
    if (regions.length > 0) {
      this.cache.invalidate(region.id);
      for (const r of regions) this.cache.insert(r);
    }
    return regions;
  }

  /**
   * merge merges the Region holding sourceKey into the adjacent Region
   * holding targetKey (TiKV's PrepareMerge/CommitMerge; both need voters on
   * the same stores) and resolves once the merge has committed. Like cas it
   * is not retried once it was on the wire of a failed connection
   * (ClientError 'Undetermined'): a second attempt could race the first.
   */
  async merge(sourceKey: Bytes, targetKey: Bytes): Promise<{ sourceRegionId: number; targetRegionId: number }> {
    const sk = checkKey(sourceKey, 'sourceKey');
    const tk = checkKey(targetKey, 'targetKey');
    const st = this.retry.newState('merge', Infinity);
    // Route a rare admin command on fresh information: a cache filled before recent splits could put both keys in one Region.
    for (const k of [sk, tk]) {
      const cached = this.cache.locate(k);
      if (cached) this.cache.invalidate(cached.region.id);
    }
    const target = await this.locate(tk, st);
    const { region } = await this.callKey(
      sk,
      (r) => {
        if (r.id === target.region.id) throw new ClientError('InvalidArgument', `sourceKey and targetKey are both in region ${r.id}`);
        return { op: 'merge', targetRegionId: target.region.id };
      },
      st,
      false,
    );
    this.cache.invalidate(region.id);
    this.cache.invalidate(target.region.id);
    return { sourceRegionId: region.id, targetRegionId: target.region.id };
  }

  /** regions lists every Region in key order with its leader, as placement knows them. */
  async regions(): Promise<RegionWithLeader[]> {
    const st = this.retry.newState('regions');
    const out: RegionWithLeader[] = [];
    let cur: Uint8Array = EMPTY;
    for (;;) {
      const from = cur;
      const page = await this.withPlacement('scanRegions', () => this.routes.scanRegions(from, EMPTY, REGION_PAGE), st);
      for (const r of page) if (out.length === 0 || compareKeys(r.region.startKey, out[out.length - 1]!.region.startKey) > 0) out.push(r);
      const last = page[page.length - 1];
      if (page.length < REGION_PAGE || !last || last.region.endKey.length === 0) return out;
      cur = last.region.endKey;
    }
  }

  /** cachedRegions exposes the routing cache (tests, diagnostics). */
  cachedRegions(): readonly CachedRegion[] {
    return this.cache.all();
  }

  /** close fails calls in flight with a connection error and stops using the sockets; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool.closeAll();
    if (this.ownsRoutes) this.routes.close();
  }

  // ---- routing and retries ----------------------------------------------

  /** withPlacement runs a placement call, retrying retryable failures within the call's budget (only the retries count as attempts). */
  private async withPlacement<T>(what: string, fn: () => Promise<T>, st: RetryState): Promise<T> {
    for (let failures = 0; ; failures++) {
      this.retry.spend(st, failures > 0);
      try {
        return await raceDeadline(fn(), st.deadline, what);
      } catch (err) {
        if (err instanceof ClientError) throw err;
        st.lastCause = err;
        if ((err as { code?: unknown }).code === 'Unauthorized') {
          throw new ClientError('Unauthorized', `${st.op}: placement ${what} failed: ${(err as Error).message}`, st.lastRegionError, err);
        }
        if ((err as { retryable?: unknown }).retryable === false) {
          throw new ClientError('Unavailable', `${st.op}: placement ${what} failed: ${(err as Error).message}`, st.lastRegionError, err);
        }
        this.logger.debug({ op: st.op, what, err: (err as Error).message }, 'placement call failed; retrying');
        await this.retry.sleepBackoff(st);
      }
    }
  }

  /** locate finds the Region of key: from the cache, else from placement (caching the answer unless the cache knows newer). */
  private async locate(key: Uint8Array, st: RetryState): Promise<CachedRegion> {
    for (;;) {
      const hit = this.cache.locate(key);
      if (hit) return hit;
      const found = await this.withPlacement('getRegion', () => this.routes.getRegion(key), st);
      if (found) {
        if (this.cache.insert(found.region, found.leader)) return this.cache.getById(found.region.id)!;
        // Placement lags behind what a store told us; use its answer once and let the store correct us.
        return found.leader ? { region: found.region, leader: found.leader } : { region: found.region };
      }
      st.lastCause = new Error('placement knows no Region for the key (cluster not bootstrapped yet?)');
      await this.retry.sleepBackoff(st);
    }
  }

  private async storeAddress(storeId: number, st: RetryState): Promise<string | null> {
    const cached = this.storeAddresses.get(storeId);
    if (cached) return cached;
    const store = await this.withPlacement('getStore', () => this.routes.getStore(storeId), st);
    if (!store || store.state === 'tombstone') return null;
    this.storeAddresses.set(storeId, store.address);
    return store.address;
  }

  /** pickPeer: the cached leader unless its store just failed, else the peers in turn, stores that failed recently last. */
  private pickPeer(entry: CachedRegion, st: RetryState): Peer | undefined {
    const now = Date.now();
    const isDown = (storeId: number): boolean => (this.downStores.get(storeId) ?? 0) > now;
    if (entry.leader && !isDown(entry.leader.storeId)) return entry.leader;
    const peers = entry.region.peers.filter((p) => p.role === 'voter');
    const candidates = peers.length > 0 ? peers : entry.region.peers;
    const up = candidates.filter((p) => !isDown(p.storeId));
    const list = up.length > 0 ? up : candidates;
    if (list.length === 0) return undefined;
    return list[st.rotate++ % list.length];
  }

  /**
   * attempt sends one request to one Region and interprets the answer. A
   * failure goes to recover(), which acts on it as RETRY_ACTIONS says:
   * fatal failures throw, retryable ones update the caches, wait as the
   * error asks, and return {ok:false} so the caller re-routes.
   */
  private async attempt(entry: CachedRegion, body: RequestBody, st: RetryState, idempotent: boolean): Promise<AttemptResult> {
    this.retry.spend(st);
    const region = entry.region;
    const peer = this.pickPeer(entry, st);
    if (!peer) {
      st.lastCause = new Error(`region ${region.id} has no peers`);
      return this.recover({ case: 'NoPeer', region }, st, idempotent);
    }
    const address = await this.storeAddress(peer.storeId, st);
    if (!address) {
      st.lastCause = new Error(`store ${peer.storeId} is unknown to placement or removed`);
      return this.recover({ case: 'StoreUnknown', region, peer }, st, idempotent);
    }
    const request = { ...body, header: { regionId: region.id, regionEpoch: region.epoch, peer } } as ClientRequestBody;
    let resp: ClientResponse;
    try {
      const timeout = Math.max(1, Math.min(st.attemptTimeoutMs ?? this.attemptTimeoutMs, st.deadline - Date.now()));
      resp = await this.pool.get(address).send(request, timeout);
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      st.lastCause = err;
      // A request that never left the client cannot have applied, so even a write may be sent again.
      return this.recover({ case: err.unauthorized ? 'Unauthorized' : 'Unreachable', region, peer, address, cause: err }, st, idempotent || !err.sent);
    }
    if (resp.ok) {
      if (!entry.leader || entry.leader.id !== peer.id) this.cache.setLeader(region.id, peer);
      this.downStores.delete(peer.storeId);
      return { ok: true, resp };
    }
    const e = resp.error;
    st.lastRegionError = e;
    this.logger.debug({ op: st.op, regionId: region.id, storeId: peer.storeId, error: e.type }, 'region error; retrying');
    // The store answered, so the request reached it: only an idempotent one may be sent again.
    return this.recover({ case: regionErrorCase(e, peer), region, peer, address, regionError: e }, st, idempotent);
  }

  /**
   * recover applies the RETRY_ACTIONS row of a failed attempt, in the
   * table's order: fail, store, invalidate, clear the leader, learn, back
   * off. `resendable` says whether the request may be sent again.
   */
  private async recover(f: Failure, st: RetryState, resendable: boolean): Promise<AttemptResult> {
    const action = RETRY_ACTIONS[f.case];
    if (action.fail && (action.fail.when === 'always' || !resendable)) {
      throw new ClientError(action.fail.code, action.fail.message(st.op, f), st.lastRegionError, f.cause);
    }
    if (action.store) this.forgetStore(action.store, f, st);
    if (action.invalidateRegion === true || (action.invalidateRegion === 'whenPeersExhausted' && peersExhausted(f, st))) this.cache.invalidate(f.region.id);
    if (action.clearLeader) this.cache.clearLeader(f.region.id);
    const learned = action.learn ? this.learn(action.learn, f) : false;
    if (shouldBackOff(action.backoff, st, learned)) await this.retry.sleepBackoff(st, askedBackoffMs(f));
    return { ok: false };
  }

  /** forgetStore: what recover() forgets about the store an attempt went to (see RetryAction.store). */
  private forgetStore(how: NonNullable<RetryAction['store']>, f: Failure, st: RetryState): void {
    const peer = f.peer;
    if (!peer) return;
    if (how === 'unreachable') {
      this.logger.debug({ op: st.op, regionId: f.region.id, storeId: peer.storeId, address: f.address, err: f.cause?.message }, 'store unreachable; re-routing');
    }
    if (how !== 'down') {
      if (f.address) this.pool.drop(f.address);
      this.storeAddresses.delete(peer.storeId);
    }
    if (how !== 'reconnect') this.downStores.set(peer.storeId, Date.now() + DOWN_STORE_MS);
    if (how === 'unreachable') this.cache.invalidateStore(peer.storeId);
  }

  /** learn puts into the cache what a RegionError teaches (see RetryAction.learn); returns whether the cache took any of it. */
  private learn(what: NonNullable<RetryAction['learn']>, f: Failure): boolean {
    const e = f.regionError;
    if (what === 'leaderHint' && e?.type === 'NotLeader' && e.leader) {
      const taken = this.cache.setLeader(f.region.id, e.leader);
      if (!taken) this.cache.invalidate(f.region.id);
      else this.downStores.delete(e.leader.storeId);
      return taken;
    }
    let learned = false;
    if (what === 'currentRegions' && e?.type === 'EpochNotMatch') for (const r of e.currentRegions) learned = this.cache.insert(r) || learned;
    return learned;
  }

  /** callKey sends a request to the Region holding key until it succeeds; returns the response and the Region it succeeded on. */
  private async callKey(key: Uint8Array, build: (region: Region) => RequestBody, st: RetryState, idempotent: boolean): Promise<{ resp: OkResponse; region: Region }> {
    for (;;) {
      const entry = await this.locate(key, st);
      const r = await this.attempt(entry, build(entry.region), st, idempotent);
      if (r.ok) return { resp: r.resp, region: entry.region };
    }
  }

  /**
   * runGrouped splits items by Region (and each Region's share into requests
   * of at most LIMITS.maxBatchKeys items and maxRequestBytes), sends them in
   * parallel, and re-groups a failed share against the refreshed cache, since
   * after a split its keys may now belong to several Regions. Each share
   * retries within its own copy of the budget. With oneRequest, a grouping
   * into more than one request throws SpansRegions before sending any.
   */
  private async runGrouped(
    items: number[],
    keyOf: (i: number) => Uint8Array,
    build: (region: Region, idxs: number[]) => RequestBody,
    onOk: (resp: OkResponse, idxs: number[]) => void,
    st: RetryState,
    idempotent: boolean,
    sizeOf: (i: number) => number = (i) => keyOf(i).length,
    oneRequest = false,
  ): Promise<void> {
    const groups = new Map<number, { entry: CachedRegion; idxs: number[] }>();
    for (const i of items) {
      const entry = await this.locate(keyOf(i), st);
      let g = groups.get(entry.region.id);
      if (!g) groups.set(entry.region.id, (g = { entry, idxs: [] }));
      g.idxs.push(i);
    }
    const chunked = [...groups.values()].map((g) => ({ g, chunks: chunkBy(g.idxs, LIMITS.maxBatchKeys, this.maxRequestBytes, sizeOf) }));
    if (oneRequest && (chunked.length > 1 || (chunked[0]?.chunks.length ?? 0) > 1)) {
      throw new ClientError('SpansRegions', `${st.op}: the keys belong to ${chunked.length} Regions or exceed one request; nothing was sent (oneRequest)`);
    }
    const tasks: Promise<void>[] = [];
    for (const { g, chunks } of chunked) {
      for (const chunk of chunks) {
        const branch: RetryState = { ...st };
        tasks.push(
          (async () => {
            const r = await this.attempt(g.entry, build(g.entry.region, chunk), branch, idempotent);
            if (r.ok) onOk(r.resp, chunk);
            else await this.runGrouped(chunk, keyOf, build, onOk, branch, idempotent, sizeOf, oneRequest);
          })(),
        );
      }
    }
    const results = await Promise.allSettled(tasks);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

function chunkBy(idxs: number[], maxItems: number, maxBytes: number, sizeOf: (i: number) => number): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  let bytes = 0;
  for (const i of idxs) {
    const n = sizeOf(i);
    if (cur.length > 0 && (cur.length >= maxItems || bytes + n > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(i);
    bytes += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

function maxKey(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compareKeys(a, b) >= 0 ? a : b;
}

/** minEnd is the smaller of two end keys, where empty means +infinity. */
function minEnd(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  return compareKeys(a, b) <= 0 ? a : b;
}

/** successor is the smallest key greater than k (k followed by a zero byte). */
function successor(k: Uint8Array): Uint8Array {
  const out = new Uint8Array(k.length + 1);
  out.set(k);
  return out;
}

function positive(n: number, name: string): number {
  if (!(Number.isFinite(n) && n > 0)) throw new ClientError('InvalidArgument', `${name}: expected a positive number, got ${n}`);
  return n;
}

function nonNegative(n: number, name: string): number {
  if (!(Number.isSafeInteger(n) && n >= 0)) throw new ClientError('InvalidArgument', `${name}: expected a non-negative integer, got ${n}`);
  return n;
}


