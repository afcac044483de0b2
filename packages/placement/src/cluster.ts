import { randomInt } from 'node:crypto';
import type { Peer, Region, StoreState } from '@flotilla/proto';
import { compareKeys, silentLogger, type Logger } from '@flotilla/proto';
import { PlacementError, PlacementErrorCode, assert } from './errors';
import type { GcOptions } from './gc/leader';
import type { LeaseOptions } from './lease/leader';
import { IdAllocator } from './id-allocator';
import { RegionTree } from './region-tree';
import { applyPackedHeartbeats, applyRegionHeartbeats } from './region-heartbeats';
import { MetaBytesCache } from './packed-heartbeat';
import type { ClusterPersistence } from './persistence';
import { PlacementStorage, type LoadedState, type PersistedStore } from './storage';
import { isPlacementMethod, parseParams } from './schema';
import type {
  ClusterInfo,
  ClusterMethod,
  DownPeer,
  Operator,
  ParamsOf,
  RegionHeartbeat,
  RegionHeartbeatResponse,
  RegionInfo,
  RegionWithLeader,
  ResultOf,
  SplitId,
  StoreInfo,
  StoreMeta,
  StoreStats,
} from './types';
import { OperatorController, type StoreInfluence } from './schedule/operator-controller';
import { isLiveState, type ClusterView, type Scheduler } from './schedule/scheduler';
import { defaultSchedulers, type BuiltInSchedulerOptions } from './schedule/defaults';
import { HeatmapRecorder, heatmapSizes, type HeatmapOptions } from './dashboard/heatmap';

/** Shared empty lists for the common heartbeat without down or pending peers (never mutated). */
const NO_DOWN_PEERS = Object.freeze([]) as unknown as DownPeer[];
const NO_PEERS = Object.freeze([]) as unknown as Peer[];
/** NO_STATS: the statistics a flush passes when it holds them back (never written to). */
const NO_STATS: Map<number, RegionInfo> = new Map();
/** MAX_DIRTY_STATS: statistics-only rows queued before a flush writes them regardless of the interval (about 80 ms of SQLite work per member). */
const MAX_DIRTY_STATS = 8192;

/**
 * PreparedRegions: the Regions of a PlacementCluster built outside it, in
 * slices between event-loop turns (cluster-load.ts, a new placement
 * leader): the loaded and checked tree, the per-store indexes (as
 * indexRegion builds them) and the persisted Regions the load dropped.
 */
export interface PreparedRegions {
  tree: RegionTree;
  regionsByStore: Map<number, Set<number>>;
  leadersByStore: Map<number, Set<number>>;
  dropped: RegionInfo[];
}

/** indexRegion adds a Region to the per-store indexes (every store with a peer; the leader's store). */
export function indexRegion(regionsByStore: Map<number, Set<number>>, leadersByStore: Map<number, Set<number>>, info: RegionInfo): void {
  const id = info.region.id;
  for (const p of info.region.peers) {
    let s = regionsByStore.get(p.storeId);
    if (!s) regionsByStore.set(p.storeId, (s = new Set()));
    s.add(id);
  }
  if (info.leader) {
    let s = leadersByStore.get(info.leader.storeId);
    if (!s) leadersByStore.set(info.leader.storeId, (s = new Set()));
    s.add(id);
  }
}

/** PlacementHandlers is the shape of PlacementCluster's dispatch table: one handler per method, typed by PlacementMethods. */
type PlacementHandlers = { [M in ClusterMethod]: (p: ParamsOf<M>) => ResultOf<M> };

/** ClusterOptions configures the placement state machine (shared by the server and in-process tests/benchmarks). */
export interface ClusterOptions extends BuiltInSchedulerOptions {
  dataDir: string;
  /** maxReplicas: voters per Region the replica checker keeps (default 3; persisted; a given value replaces the stored one). */
  maxReplicas?: number;
  /** maxStoreDownTimeMs: a store silent this long is down and its peers are replaced (default 30 min). */
  maxStoreDownTimeMs?: number;
  /** storeDisconnectMs: a store silent this long is shown as disconnected (default 20 s). */
  storeDisconnectMs?: number;
  /**
   * lowSpaceRatio (TiKV PD's low-space-ratio, default 0.8): a store whose
   * last heartbeat reports less than (1 - lowSpaceRatio) of its capacity
   * available is low on space, and no scheduler places a new replica on it.
   * A store that reports no capacity (0) is never low.
   */
  lowSpaceRatio?: number;
  /**
   * opened: state already loaded and where to write changes (a placement
   * leader: its member's database, written through the Raft group). Without
   * it the cluster opens `<dataDir>/placement.db` itself and writes it.
   */
  opened?: { persistence: ClusterPersistence; state: LoadedState; prepared?: PreparedRegions };
  /** clusterId for a NEW database (default random); an existing database keeps its own. Deterministic simulations set it. */
  clusterId?: number;
  /** clock returns wall-clock ms (default Date.now); simulations inject a virtual one. */
  clock?: () => number;
  /** logger receives placement's events (a pino logger fits; default silent). */
  logger?: Logger;
  /** gc: the GC safe point worker's life time and interval (gc/leader.ts; the placement leader reads it). */
  gc?: GcOptions;
  /** lease: the lease reaper and its retry backoff (lease/leader.ts; without a reaper leaseGrant is refused). */
  lease?: LeaseOptions;
  /** maxDirtyRegions: flush the Region write batch inline once it holds this many Regions (default 4096). */
  maxDirtyRegions?: number;
  /** idStep: how far each durable high-water bump reaches (default 1000). */
  idStep?: number;
  /**
   * statsPersistIntervalMs: a Region whose heartbeat changes only its size
   * and key counts is written at most this often (default 10 s); meta and
   * leader changes are always written by the next flush. 0 writes every one.
   */
  statsPersistIntervalMs?: number;
  /** heatmap sizes the dashboard's key visualizer (dashboard/heatmap.ts; default one 10 s column per interval, 360 columns, 256 rows). */
  heatmap?: HeatmapOptions;
}

interface StoreRecord {
  meta: StoreMeta;
  tombstone: boolean;
  /** offline: being removed (offlineStore); its peers move away, then it becomes a tombstone. Persisted. */
  offline: boolean;
  lastHeartbeatMs: number;
  stats?: StoreStats;
}

/**
 * PlacementCluster is the placement service's state machine: bootstrap,
 * IDs, stores, the Region tree, operators and schedulers, persisted to
 * SQLite. It does no network I/O and starts no timers: the server calls
 * dispatch() for every request and flush()/runSchedulers() on intervals,
 * and tests and benchmarks drive the very same object in process.
 */
export class PlacementCluster implements ClusterView {
  readonly storage: ClusterPersistence;
  readonly clusterId: number;
  maxReplicas: number;
  readonly maxStoreDownTimeMs: number;
  readonly storeDisconnectMs: number;
  readonly lowSpaceRatio: number;
  readonly tree: RegionTree;
  /** heatmap: the key visualizer's columns, made of the flow in Region heartbeats (memory only; a new leader starts empty). */
  readonly heatmap: HeatmapRecorder;
  readonly operators: OperatorController;
  readonly schedulers: Scheduler[];
  private bootstrapped: boolean;
  private readonly ids: IdAllocator;
  private readonly stores = new Map<number, StoreRecord>();
  private readonly regionsByStore: Map<number, Set<number>>;
  private readonly leadersByStore: Map<number, Set<number>>;
  /** splitAtMs: when each Region was last seen coming out of a split (the merge checker leaves it alone for a while). Not persisted. */
  private readonly splitAtMs = new Map<number, number>();
  /** regionHeartbeatAtMs: when each Region's leader last reported (`flotilla region ID`). Not persisted. */
  private readonly regionHeartbeatAtMs = new Map<number, number>();
  /** metaBytes: the packed meta of the Regions held, compared with packed heartbeats' (regionHeartbeatsPacked); FLOTILLA_META_CACHE=weakmap: the previous cache, to measure against. */
  private readonly metaBytes = new MetaBytesCache(process.env['FLOTILLA_META_CACHE'] === 'weakmap');
  /** reportedSinceStart: Regions whose leader (or a split/bootstrap) reported since this process started. */
  private readonly reportedSinceStart = new Set<number>();
  /** dirtyRegions: Regions whose meta changed (or that are gone: null) since the last flush. */
  private readonly dirtyRegions = new Map<number, RegionInfo | null>();
  /** dirtyStats: Regions whose statistics only (leader, size, keys) changed since the last flush. */
  private readonly dirtyStats = new Map<number, RegionInfo>();
  private readonly dirtyOperators = new Map<number, Operator | null>();
  private readonly maxDirtyRegions: number;
  /** statsPersistIntervalMs: see ClusterOptions; may be changed at runtime. */
  statsPersistIntervalMs: number;
  /** statsPersistedAtMs: when each Region's statistics were last queued for writing. */
  private readonly statsPersistedAtMs = new Map<number, number>();
  /** unwrittenStats: Regions whose latest statistics were held back by the interval; written on close. */
  private readonly unwrittenStats = new Map<number, RegionInfo>();
  /**
   * statsFlushedAtMs, statsDue: statistics-only rows (dirtyStats) are written
   * by the flush at most every statsPersistIntervalMs / 10 (1 s by default),
   * by the first flush after a leader change, or once MAX_DIRTY_STATS are
   * queued. Heartbeats touch random Regions, so a 50 ms flush updated about
   * one row per SQLite page, on every member; a 1 s batch shares each page
   * among many rows (issue #16: 17 µs CPU per row at 2,500 rows per
   * transaction, 5 µs at 50,000, 100,000 Regions).
   */
  private statsFlushedAtMs = Number.NEGATIVE_INFINITY;
  private statsDue = false;
  private readonly clock: () => number;
  private readonly logger: Logger;
  private closed = false;

  constructor(opts: ClusterOptions) {
    this.clock = opts.clock ?? Date.now;
    this.logger = opts.logger ?? silentLogger;
    this.maxStoreDownTimeMs = opts.maxStoreDownTimeMs ?? 30 * 60_000;
    this.storeDisconnectMs = Math.min(opts.storeDisconnectMs ?? 20_000, this.maxStoreDownTimeMs);
    this.maxDirtyRegions = opts.maxDirtyRegions ?? 4096;
    this.statsPersistIntervalMs = opts.statsPersistIntervalMs ?? 10_000;
    this.lowSpaceRatio = opts.lowSpaceRatio ?? 0.8;
    if (!(this.lowSpaceRatio > 0 && this.lowSpaceRatio <= 1)) throw new Error(`lowSpaceRatio: ${this.lowSpaceRatio} is not in (0, 1]`);
    // Configuration errors are reported before the database is opened (and locked).
    if (opts.maxReplicas !== undefined && !(Number.isInteger(opts.maxReplicas) && opts.maxReplicas >= 1 && opts.maxReplicas <= 15)) {
      throw new Error(`maxReplicas: ${opts.maxReplicas} is not an integer from 1 to 15`);
    }
    for (const [name, v] of [['maxStoreDownTimeMs', this.maxStoreDownTimeMs], ['storeDisconnectMs', this.storeDisconnectMs], ['maxDirtyRegions', this.maxDirtyRegions]] as const) {
      if (!(Number.isSafeInteger(v) && v > 0)) throw new Error(`${name}: ${v} is not a positive integer`);
    }
    if (opts.clusterId !== undefined && !(Number.isSafeInteger(opts.clusterId) && opts.clusterId > 0)) throw new Error(`clusterId: ${opts.clusterId} is not a positive integer`);
    if (!(Number.isSafeInteger(this.statsPersistIntervalMs) && this.statsPersistIntervalMs >= 0)) throw new Error(`statsPersistIntervalMs: ${this.statsPersistIntervalMs} is not a non-negative integer`);
    heatmapSizes(opts.heatmap);
    const { storage, state } = opts.opened
      ? { storage: opts.opened.persistence, state: opts.opened.state }
      : PlacementStorage.open(opts.dataDir, { clusterId: opts.clusterId ?? randomInt(1, 2 ** 47), maxReplicas: opts.maxReplicas ?? 3 });
    this.storage = storage;
    this.clusterId = state.meta.clusterId;
    this.maxReplicas = state.meta.maxReplicas;
    if (opts.maxReplicas !== undefined && opts.maxReplicas !== this.maxReplicas) {
      storage.saveMaxReplicas(opts.maxReplicas);
      this.maxReplicas = opts.maxReplicas;
    }
    this.bootstrapped = state.meta.bootstrapped;
    this.ids = new IdAllocator(state.meta.idHighWater, (hw) => storage.saveIdHighWater(hw), opts.idStep ?? 1000);
    const now = this.clock();
    for (const s of state.stores) {
      const { tombstone, offline, ...rest } = s;
      // Liveness is not persisted: a store is given a fresh grace period after a placement restart.
      this.stores.set(s.id, { meta: { id: rest.id, address: rest.address, ...(rest.labels ? { labels: rest.labels } : {}) }, tombstone, offline: offline === true, lastHeartbeatMs: now, ...(rest.stats ? { stats: rest.stats } : {}) });
    }
    // A new placement leader hands over its Regions already in a checked tree and indexed (built in slices:
    // cluster-load.ts); otherwise they are loaded here, at once.
    const prepared = opts.opened?.prepared;
    this.tree = prepared?.tree ?? new RegionTree();
    this.heatmap = new HeatmapRecorder(this.tree, this.clock, opts.heatmap);
    this.regionsByStore = prepared?.regionsByStore ?? new Map();
    this.leadersByStore = prepared?.leadersByStore ?? new Map();
    for (const lost of prepared ? prepared.dropped : this.tree.load(state.regions)) {
      this.logger.warn({ regionId: lost.region.id }, 'persisted region overlaps a newer one; dropped');
      this.dirtyRegions.set(lost.region.id, null);
    }
    if (!prepared) {
      this.tree.checkInvariants();
      for (let i = 0; i < this.tree.size; i++) this.index(this.tree.at(i)!);
    }
    this.operators = new OperatorController({
      persist: (regionId, op) => this.dirtyOperators.set(regionId, op),
      onEvent: (event, op, reason) => this.logger.info({ event, operatorId: op.id, regionId: op.regionId, kind: op.kind, reason }, `operator ${event}`),
    });
    this.operators.restore(state.operators.filter((op) => this.tree.getById(op.regionId) !== undefined));
    this.schedulers = defaultSchedulers(opts);
    this.logger.info({ path: storage.path, clusterId: this.clusterId, bootstrapped: this.bootstrapped, stores: this.stores.size, regions: this.tree.size }, 'placement state loaded');
  }

  // ---- ClusterView (what schedulers read) ----

  nowMs(): number {
    return this.clock();
  }
  storeIds(): number[] {
    return [...this.stores.keys()];
  }
  storeState(storeId: number): StoreState | undefined {
    const s = this.stores.get(storeId);
    if (!s) return undefined;
    if (s.tombstone) return 'tombstone';
    const age = this.clock() - s.lastHeartbeatMs;
    if (age >= this.maxStoreDownTimeMs) return 'down';
    if (s.offline) return 'offline';
    return age < this.storeDisconnectMs ? 'up' : 'disconnected';
  }
  isLowSpace(storeId: number): boolean {
    const st = this.stores.get(storeId)?.stats;
    if (st === undefined || st.capacityBytes <= 0) return false;
    return st.availableBytes < st.capacityBytes * (1 - this.lowSpaceRatio);
  }
  regionCountOf(storeId: number): number {
    return this.regionsByStore.get(storeId)?.size ?? 0;
  }
  leaderCountOf(storeId: number): number {
    return this.leadersByStore.get(storeId)?.size ?? 0;
  }
  regionIdsOf(storeId: number): Iterable<number> {
    return this.regionsByStore.get(storeId) ?? [];
  }
  leaderRegionIdsOf(storeId: number): Iterable<number> {
    return this.leadersByStore.get(storeId) ?? [];
  }
  region(regionId: number): RegionInfo | undefined {
    return this.tree.getById(regionId);
  }
  regionCount(): number {
    return this.tree.size;
  }
  regionAt(index: number): RegionInfo | undefined {
    return this.tree.at(index);
  }
  hasOperator(regionId: number): boolean {
    // A Region loaded from disk may predate its last (unflushed) reports:
    // schedulers leave it alone until its leader has reported since this
    // process started (STORE_BUGS #4), as if an operator were in flight.
    return this.operators.isBusy(regionId) || !this.reportedSinceStart.has(regionId);
  }
  adjacentRegions(regionId: number): { prev?: RegionInfo; next?: RegionInfo } {
    return this.tree.neighbours(regionId);
  }
  lastSplitMs(regionId: number): number | undefined {
    return this.splitAtMs.get(regionId);
  }
  /** lastHeartbeatMs: when the Region's leader last reported since placement started (undefined: not since). */
  lastHeartbeatMs(regionId: number): number | undefined {
    return this.regionHeartbeatAtMs.get(regionId);
  }
  influence(): Map<number, StoreInfluence> {
    return this.operators.influence();
  }
  allocId(count: number): number[] {
    return this.ids.alloc(count);
  }

  /** isStoreLive: the store still serves its peers (up or disconnected). */
  private readonly isStoreLive = (storeId: number): boolean => isLiveState(this.storeState(storeId));
  /**
   * isStoreLiveForQuorum: liveness is not persisted, so after a restart every
   * store gets a grace period; one not heard from since then must not count
   * toward a quorum when deciding whether a NEW operator is safe to plan
   * (STORE_BUGS #4). Operators already in flight keep the plain rule.
   */
  private readonly isStoreLiveForQuorum = (storeId: number): boolean => this.isStoreLive(storeId) && this.heardSinceStart.has(storeId);
  /** heardSinceStart: stores that sent a heartbeat (or registered) since this process started. */
  private readonly heardSinceStart = new Set<number>();

  // ---- indexes ----

  private setOf(map: Map<number, Set<number>>, storeId: number): Set<number> {
    let s = map.get(storeId);
    if (!s) map.set(storeId, (s = new Set()));
    return s;
  }

  private index(info: RegionInfo): void {
    indexRegion(this.regionsByStore, this.leadersByStore, info);
  }

  private unindex(info: RegionInfo): void {
    for (const p of info.region.peers) this.regionsByStore.get(p.storeId)?.delete(info.region.id);
    if (info.leader) this.leadersByStore.get(info.leader.storeId)?.delete(info.region.id);
  }

  private markDirty(regionId: number, info: RegionInfo | null): void {
    this.unwrittenStats.delete(regionId);
    this.dirtyRegions.set(regionId, info);
    this.dirtyStats.delete(regionId);
    if (this.dirtyRegions.size >= this.maxDirtyRegions) this.flush();
  }

  /** markStatsDirty queues a statistics-only row; leaderMoved makes the next flush write the queue (a leader change is not held back). */
  private markStatsDirty(info: RegionInfo, leaderMoved: boolean): void {
    this.unwrittenStats.delete(info.region.id);
    if (this.dirtyRegions.has(info.region.id)) this.dirtyRegions.set(info.region.id, info);
    else this.dirtyStats.set(info.region.id, info);
    if (leaderMoved) this.statsDue = true;
    if (this.dirtyStats.size >= MAX_DIRTY_STATS) this.flush();
  }

  /**
   * flush writes every Region and operator change since the last flush in
   * one SQLite transaction (one fsync). The server calls it on a short
   * interval; a crash loses at most that window of heartbeat-derived state,
   * which the next round of region heartbeats restores.
   */
  flush(): void {
    const now = this.clock();
    const withStats = this.dirtyStats.size > 0 && (this.statsDue || this.dirtyStats.size >= MAX_DIRTY_STATS || now - this.statsFlushedAtMs >= this.statsPersistIntervalMs / 10);
    if (this.dirtyRegions.size === 0 && !withStats && this.dirtyOperators.size === 0) return;
    this.storage.writeBatch(this.dirtyRegions, withStats ? this.dirtyStats : NO_STATS, this.dirtyOperators);
    this.dirtyRegions.clear();
    this.dirtyOperators.clear();
    if (withStats) {
      this.dirtyStats.clear();
      this.statsFlushedAtMs = now;
      this.statsDue = false;
    }
  }

  get pendingWrites(): number {
    return this.dirtyRegions.size + this.dirtyStats.size + this.dirtyOperators.size;
  }

  /**
   * abandon stops the cluster without writing anything (a placement leader
   * that lost its leadership: what it held in memory is not its to write).
   */
  abandon(): void {
    this.closed = true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // A clean shutdown writes even the statistics the interval held back, so a restart loses nothing.
      for (const [id, info] of this.unwrittenStats) if (!this.dirtyRegions.has(id)) this.dirtyStats.set(id, info);
      this.unwrittenStats.clear();
      this.statsDue = true;
      this.flush();
    } finally {
      this.storage.close();
    }
  }

  // ---- request handling ----

  /**
   * dispatch validates params for `method` and runs it. Every expected
   * failure is a PlacementError; anything else is a bug.
   */
  dispatch(method: string, params: unknown): unknown {
    if (!isPlacementMethod(method)) throw new PlacementError(PlacementErrorCode.UnknownMethod, `unknown method ${JSON.stringify(method.slice(0, 64))}`);
    return this.call(method as ClusterMethod, parseParams(method, params) as never);
  }

  /** call runs an already-validated request (in-process callers that trust their types). */
  call<M extends ClusterMethod>(method: M, params: ParamsOf<M>): ResultOf<M> {
    // Own properties only: a name like 'toString' must not reach Object.prototype.
    if (!Object.prototype.hasOwnProperty.call(this.handlers, method)) throw new PlacementError(PlacementErrorCode.UnknownMethod, `unknown method ${String(method)}`);
    const handler: PlacementHandlers[M] = this.handlers[method];
    return handler(params);
  }

  /**
   * handlers maps each placement method to the code that answers it. Its
   * mapped type ties each handler's params and result to PlacementMethods,
   * so call() needs no casts and a method added to the API without a
   * handler does not compile.
   */
  private readonly handlers: PlacementHandlers = {
    bootstrap: (p) => this.bootstrap(p),
    isBootstrapped: () => ({ bootstrapped: this.bootstrapped }),
    // Legal before bootstrap: the first store needs IDs to bootstrap with.
    allocId: (p) => ({ ids: this.ids.alloc(p.count) }),
    putStore: (p) => ({ store: this.putStore(p.store) }),
    removeStore: (p) => ({ store: this.removeStore(p.storeId) }),
    storeHeartbeat: (p) => ({ store: this.storeHeartbeat(p.stats) }),
    regionHeartbeat: (p) => this.regionHeartbeat(p),
    regionHeartbeats: (p) => {
      this.requireBootstrapped();
      return { results: applyRegionHeartbeats(p.heartbeats, (hb) => this.regionHeartbeat(hb)) };
    },
    regionHeartbeatsPacked: (p) => {
      this.requireBootstrapped();
      return { results: applyPackedHeartbeats(p.heartbeats, (id) => this.tree.getById(id)?.region, this.metaBytes, (hb) => this.regionHeartbeat(hb)) };
    },
    askBatchSplit: (p) => ({ ids: this.askBatchSplit(p.region, p.count) }),
    reportBatchSplit: (p) => ({ accepted: this.reportBatchSplit(p.regions) }),
    getRegion: (p) => ({ region: this.withLeader(this.tree.search(p.key)) }),
    getRegionById: (p) => ({ region: this.withLeader(this.tree.getById(p.regionId)) }),
    scanRegions: (p) => ({ regions: this.tree.scan(p.startKey, p.endKey, p.limit).map((i) => this.withLeader(i)!) }),
    getStore: (p) => ({ store: this.storeInfo(p.storeId) ?? null }),
    getAllStores: () => ({ stores: this.allStores() }),
    getClusterInfo: () => this.clusterInfo(),
    getOperator: (p) => ({ operator: this.operators.get(p.regionId) ?? null }),
  };

  private requireBootstrapped(): void {
    if (!this.bootstrapped) throw new PlacementError(PlacementErrorCode.NotBootstrapped, 'cluster is not bootstrapped yet');
  }

  private withLeader(info: RegionInfo | undefined): RegionWithLeader | null {
    if (!info) return null;
    return info.leader ? { region: info.region, leader: info.leader } : { region: info.region };
  }

  isBootstrapped(): boolean {
    return this.bootstrapped;
  }

  /**
   * bootstrap creates the cluster exactly once: the first store and Region
   * 1 covering the whole key space, with a peer on that store. A second call
   * is a typed AlreadyBootstrapped error.
   */
  bootstrap(p: { store: StoreMeta; region: Region }): { bootstrapped: true } {
    if (this.bootstrapped) throw new PlacementError(PlacementErrorCode.AlreadyBootstrapped, `cluster ${this.clusterId} is already bootstrapped`);
    const { store, region } = p;
    if (region.startKey.length !== 0 || region.endKey.length !== 0) throw new PlacementError(PlacementErrorCode.InvalidArgument, 'bootstrap params: region: the first region must cover the whole key space (empty startKey and endKey)');
    if (!region.peers.some((x) => x.storeId === store.id && x.role === 'voter')) throw new PlacementError(PlacementErrorCode.InvalidArgument, `bootstrap params: region.peers: needs a voter on store ${store.id}`);
    if (region.peers.some((x) => x.role !== 'voter')) throw new PlacementError(PlacementErrorCode.InvalidArgument, 'bootstrap params: region.peers: the first region has voters only');
    // The caller's IDs should come from allocId; make sure they can never be handed out again anyway.
    this.ids.reserveBelow(Math.max(store.id, region.id, ...region.peers.map((x) => x.id)));
    const record: StoreRecord = { meta: { ...store }, tombstone: false, offline: false, lastHeartbeatMs: this.clock() };
    this.heardSinceStart.add(store.id);
    const info: RegionInfo = { region, approximateSizeBytes: 0, approximateKeys: 0, downPeers: [], pendingPeers: [] };
    this.storage.saveBootstrap(this.persistedStore(record), info);
    this.bootstrapped = true;
    this.stores.set(store.id, record);
    const r = this.tree.update(info);
    assert(r.kind === 'meta' && r.removed.length === 0, 'bootstrap into a non-empty tree');
    this.reportedSinceStart.add(region.id);
    this.index(info);
    this.logger.info({ clusterId: this.clusterId, storeId: store.id, regionId: region.id }, 'cluster bootstrapped');
    return { bootstrapped: true };
  }

  private persistedStore(r: StoreRecord): PersistedStore {
    return { ...r.meta, tombstone: r.tombstone, ...(r.offline ? { offline: true } : {}), ...(r.stats ? { stats: r.stats } : {}) };
  }

  /** putStore registers a store or updates its address/labels (synchronously persisted). */
  putStore(meta: StoreMeta): StoreInfo {
    this.requireBootstrapped();
    const existing = this.stores.get(meta.id);
    if (existing?.tombstone) throw new PlacementError(PlacementErrorCode.StoreTombstone, `store ${meta.id} is a tombstone; a removed store cannot come back under the same ID`);
    for (const [id, s] of this.stores) {
      if (id !== meta.id && !s.tombstone && s.meta.address === meta.address) {
        throw new PlacementError(PlacementErrorCode.InvalidArgument, `putStore params: store.address: ${meta.address} is already used by store ${id}`);
      }
    }
    const record: StoreRecord = existing
      ? { ...existing, meta: { ...meta } }
      : { meta: { ...meta }, tombstone: false, offline: false, lastHeartbeatMs: this.clock() };
    this.heardSinceStart.add(meta.id);
    this.storage.saveStore(this.persistedStore(record));
    this.stores.set(meta.id, record);
    if (!existing) this.logger.info({ storeId: meta.id, address: meta.address }, 'store added');
    return this.storeInfo(meta.id)!;
  }

  /** removeStore makes a store a tombstone; the replica checker then replaces its peers. */
  removeStore(storeId: number): StoreInfo {
    this.requireBootstrapped();
    const r = this.stores.get(storeId);
    if (!r) throw new PlacementError(PlacementErrorCode.StoreNotFound, `store ${storeId} not found`);
    if (!r.tombstone) {
      const next = { ...r, tombstone: true };
      this.storage.saveStore(this.persistedStore(next));
      this.stores.set(storeId, next);
      this.logger.warn({ storeId }, 'store removed (tombstone)');
    }
    return this.storeInfo(storeId)!;
  }

  /**
   * offlineStore starts removing a store (PD's `store delete`): the store
   * goes offline, the replica checker moves each of its peers to another
   * store (leaders are transferred first), and the scheduling round that
   * finds it holding no peer makes it a tombstone (finishRemovals). A store
   * holding nothing becomes a tombstone at once. Refused while too few other
   * stores are live to hold maxReplicas voters: the drain could never finish.
   */
  offlineStore(storeId: number): StoreInfo {
    this.requireBootstrapped();
    const r = this.stores.get(storeId);
    if (!r) throw new PlacementError(PlacementErrorCode.StoreNotFound, `store ${storeId} not found`);
    if (r.tombstone || r.offline) return this.storeInfo(storeId)!;
    if (this.regionCountOf(storeId) > 0) {
      const others = [...this.stores.keys()].filter((id) => id !== storeId && (this.storeState(id) === 'up' || this.storeState(id) === 'disconnected'));
      if (others.length < this.maxReplicas) {
        throw new PlacementError(
          PlacementErrorCode.InvalidArgument,
          `store ${storeId} holds ${this.regionCountOf(storeId)} Region peers and only ${others.length} other live store${others.length === 1 ? '' : 's'} could take them, fewer than max-replicas ${this.maxReplicas}: add a store first (or lower --max-replicas)`,
        );
      }
    }
    const next: StoreRecord = { ...r, offline: true };
    this.storage.saveStore(this.persistedStore(next));
    this.stores.set(storeId, next);
    this.logger.warn({ storeId, regions: this.regionCountOf(storeId) }, 'store going offline: moving its peers away, then it becomes a tombstone');
    this.finishRemovals();
    return this.storeInfo(storeId)!;
  }

  /**
   * finishRemovals makes a tombstone of every offline store that holds no
   * peer by placement's Region tree and that no operator in flight is
   * adding a peer to. Runs before each scheduling round.
   */
  private finishRemovals(): void {
    let influence: Map<number, StoreInfluence> | undefined;
    for (const [id, r] of this.stores) {
      if (!r.offline || r.tombstone || this.regionCountOf(id) > 0) continue;
      influence ??= this.operators.influence();
      if ((influence.get(id)?.regions ?? 0) > 0) continue;
      const next: StoreRecord = { ...r, tombstone: true };
      this.storage.saveStore(this.persistedStore(next));
      this.stores.set(id, next);
      this.logger.warn({ storeId: id }, 'store drained: it holds no peer; now a tombstone (stop its process; its data dir may be wiped)');
    }
  }

  /** storeHeartbeat refreshes a store's liveness and stats (kept in memory; liveness is re-derived after a restart). */
  storeHeartbeat(stats: StoreStats): StoreInfo {
    this.requireBootstrapped();
    const r = this.stores.get(stats.storeId);
    if (!r) throw new PlacementError(PlacementErrorCode.StoreNotFound, `store ${stats.storeId} not found; call putStore first`);
    if (r.tombstone) throw new PlacementError(PlacementErrorCode.StoreTombstone, `store ${stats.storeId} is a tombstone`);
    r.lastHeartbeatMs = this.clock();
    this.heardSinceStart.add(stats.storeId);
    r.stats = stats;
    return this.storeInfo(stats.storeId)!;
  }

  /**
   * regionHeartbeat absorbs a leader's report: stale reports are ignored;
   * a same-meta report updates statistics in place (the hot path: no
   * allocation beyond the new RegionInfo); a changed Region replaces all it
   * overlaps. The response carries the Region's operator step, if any.
   */
  regionHeartbeat(hb: RegionHeartbeat): RegionHeartbeatResponse {
    this.requireBootstrapped();
    const info: RegionInfo = {
      region: hb.region,
      leader: hb.leader,
      approximateSizeBytes: hb.approximateSizeBytes,
      approximateKeys: hb.approximateKeys,
      downPeers: hb.downPeers && hb.downPeers.length > 0 ? hb.downPeers : NO_DOWN_PEERS,
      pendingPeers: hb.pendingPeers && hb.pendingPeers.length > 0 ? hb.pendingPeers : NO_PEERS,
      ...(hb.flow ? { flow: hb.flow } : {}),
    };
    // The report comes from the leader's store: it is alive now.
    this.heardSinceStart.add(hb.leader.storeId);
    const previousHeartbeatMs = this.regionHeartbeatAtMs.get(hb.region.id);
    const current = this.applyRegion(info, true);
    if (current === null) return { stale: true };
    const now = this.clock();
    this.regionHeartbeatAtMs.set(hb.region.id, now);
    this.heatmap.recordFlow(current, previousHeartbeatMs, now);
    const operator = this.operators.onHeartbeat(current, this.clock(), this.isStoreLive, this.isStoreLiveForQuorum);
    return operator ? { stale: false, operator } : { stale: false };
  }

  /**
   * applyRegion puts one Region report into the tree and the indexes and
   * returns the RegionInfo now held (null when the report was stale). With
   * withStats false (reportBatchSplit), an unchanged Region keeps its known
   * leader and statistics.
   */
  private applyRegion(info: RegionInfo, withStats: boolean): RegionInfo | null {
    const r = this.tree.update(info);
    if (r.kind !== 'stale') this.reportedSinceStart.add(info.region.id);
    if (r.kind === 'stale') {
      this.logger.debug({ regionId: info.region.id, reason: r.reason }, 'stale region report ignored');
      return null;
    }
    if (r.kind === 'stats') {
      const cur = r.current;
      if (!withStats) return cur;
      const prev = cur.leader;
      const next = info.leader;
      const leaderMoved = prev?.id !== next?.id || prev?.storeId !== next?.storeId;
      if (leaderMoved) {
        if (prev !== undefined && prev.storeId !== next?.storeId) this.leadersByStore.get(prev.storeId)?.delete(cur.region.id);
        if (next !== undefined) this.setOf(this.leadersByStore, next.storeId).add(cur.region.id);
        if (next === undefined) delete cur.leader;
        else cur.leader = next;
      }
      cur.approximateSizeBytes = info.approximateSizeBytes;
      cur.approximateKeys = info.approximateKeys;
      cur.downPeers = info.downPeers;
      cur.pendingPeers = info.pendingPeers;
      if (info.flow) cur.flow = info.flow;
      else delete cur.flow;
      const now = this.clock();
      const last = this.statsPersistedAtMs.get(cur.region.id);
      if (leaderMoved || last === undefined || now - last >= this.statsPersistIntervalMs) {
        this.statsPersistedAtMs.set(cur.region.id, now);
        this.markStatsDirty(cur, leaderMoved);
      } else if (!this.dirtyStats.has(cur.region.id) && !this.dirtyRegions.has(cur.region.id)) {
        // Held back by the interval (a queued copy is the same object, so it is already current).
        this.unwrittenStats.set(cur.region.id, cur);
      }
      return cur;
    } else {
      if (cameOutOfSplit(info, r.removed)) this.splitAtMs.set(info.region.id, this.clock());
      for (const old of r.removed) {
        this.unindex(old);
        if (old.region.id !== info.region.id) {
          this.markDirty(old.region.id, null);
          this.statsPersistedAtMs.delete(old.region.id);
          this.splitAtMs.delete(old.region.id);
          this.regionHeartbeatAtMs.delete(old.region.id);
          this.operators.onRegionReplaced(old.region.id, info.region.id);
        }
      }
      this.index(info);
      // A merge target whose meta changed (split, conf change) no longer matches what its source would be
      // prepared against: the store would refuse or roll back, so drop the operator now rather than at its deadline.
      const source = this.operators.mergeSourceOf(info.region.id);
      if (source !== undefined) this.operators.cancel(source, `merge target region ${info.region.id} changed`);
    }
    this.statsPersistedAtMs.set(info.region.id, this.clock());
    this.markDirty(info.region.id, info);
    return info;
  }

  /**
   * askBatchSplit hands out, for each of `count` splits, a new Region ID
   * and one new peer ID per existing peer (same order as region.peers).
   */
  askBatchSplit(region: Region, count: number): SplitId[] {
    this.requireBootstrapped();
    const stale = this.tree.checkStale(region);
    if (stale !== null) throw new PlacementError(PlacementErrorCode.StaleRegion, stale);
    const per = 1 + region.peers.length;
    const ids = this.ids.alloc(count * per);
    const out: SplitId[] = [];
    for (let i = 0; i < count; i++) out.push({ newRegionId: ids[i * per]!, newPeerIds: ids.slice(i * per + 1, (i + 1) * per) });
    return out;
  }

  /**
   * reportBatchSplit applies all Regions of a finished split at once and
   * persists them before answering, so the routing table never shows the
   * gap a split can leave when only some of its Regions have heartbeated.
   */
  reportBatchSplit(regions: Region[]): number {
    this.requireBootstrapped();
    let accepted = 0;
    for (const region of regions) {
      const prev = this.tree.getById(region.id);
      const leader = prev?.leader && region.peers.some((p) => p.id === prev.leader!.id) ? prev.leader : undefined;
      const info: RegionInfo = {
        region,
        ...(leader ? { leader } : {}),
        approximateSizeBytes: 0,
        approximateKeys: 0,
        downPeers: [],
        pendingPeers: [],
      };
      if (this.applyRegion(info, false) !== null) accepted++;
    }
    this.flush();
    return accepted;
  }

  storeInfo(storeId: number): StoreInfo | undefined {
    const r = this.stores.get(storeId);
    if (!r) return undefined;
    return {
      ...r.meta,
      state: this.storeState(storeId)!,
      lastHeartbeatMs: r.lastHeartbeatMs,
      ...(r.stats ? { stats: r.stats } : {}),
      lowSpace: this.isLowSpace(storeId),
      regionCount: this.regionCountOf(storeId),
      leaderCount: this.leaderCountOf(storeId),
    };
  }

  allStores(): StoreInfo[] {
    return [...this.stores.keys()].sort((a, b) => a - b).map((id) => this.storeInfo(id)!);
  }

  clusterInfo(): ClusterInfo {
    return {
      clusterId: this.clusterId,
      bootstrapped: this.bootstrapped,
      maxReplicas: this.maxReplicas,
      maxStoreDownTimeMs: this.maxStoreDownTimeMs,
      storeCount: this.stores.size,
      regionCount: this.tree.size,
      operatorCount: this.operators.size,
    };
  }

  /**
   * checkInvariants asserts that the tree is well formed and that the
   * per-store Region and leader indexes match the tree exactly (tests;
   * O(Regions)).
   */
  checkInvariants(): void {
    this.tree.checkInvariants();
    const regions = new Map<number, Set<number>>();
    const leaders = new Map<number, Set<number>>();
    const add = (m: Map<number, Set<number>>, storeId: number, regionId: number): void => {
      let s = m.get(storeId);
      if (!s) m.set(storeId, (s = new Set()));
      s.add(regionId);
    };
    for (let i = 0; i < this.tree.size; i++) {
      const info = this.tree.at(i)!;
      for (const p of info.region.peers) add(regions, p.storeId, info.region.id);
      if (info.leader) {
        assert(info.region.peers.some((p) => p.id === info.leader!.id), `region ${info.region.id} leader ${info.leader.id} is not a peer`);
        add(leaders, info.leader.storeId, info.region.id);
      }
    }
    const same = (want: Map<number, Set<number>>, got: Map<number, Set<number>>, what: string): void => {
      for (const id of new Set([...want.keys(), ...got.keys()])) {
        const w = want.get(id) ?? new Set<number>();
        const g = got.get(id) ?? new Set<number>();
        assert(w.size === g.size && [...w].every((r) => g.has(r)), `store ${id} ${what} index has [${[...g].join(',')}], tree says [${[...w].join(',')}]`);
      }
    };
    same(regions, this.regionsByStore, 'region');
    same(leaders, this.leadersByStore, 'leader');
  }

  /** nextId is the next ID the allocator would hand out (status, tests). */
  nextId(): number {
    return this.ids.peekNext();
  }

  // ---- scheduling ----

  /**
   * runSchedulers runs one scheduling round: expire timed-out operators,
   * then let each scheduler propose up to its remaining budget; every
   * proposal passes the controller's safety check before it is installed.
   * Returns how many operators were added.
   */
  runSchedulers(): number {
    if (!this.bootstrapped || this.closed) return 0;
    const now = this.clock();
    this.operators.expire(now);
    this.finishRemovals();
    let added = 0;
    const isLive = this.isStoreLiveForQuorum;
    for (const s of this.schedulers) {
      const budget = s.limit - this.operators.countOf(s.name);
      if (budget <= 0) continue;
      const drafts = s.schedule(this, budget);
      for (const d of drafts.slice(0, budget)) {
        const info = this.tree.getById(d.regionId);
        if (!info) continue;
        const op: Operator = {
          id: this.ids.alloc(1)[0]!,
          regionId: d.regionId,
          kind: d.kind,
          scheduler: s.name,
          regionVersion: info.region.epoch.version,
          steps: d.steps,
          currentStep: 0,
          createdAtMs: now,
          deadlineMs: now + s.operatorTimeoutMs,
          description: d.description,
        };
        if (this.operators.add(op, info, isLive) === null) added++;
      }
    }
    return added;
  }
}

/**
 * cameOutOfSplit: a meta change that is a split's doing. A new Region ID is
 * a split's new Region; a known Region whose range shrank kept part of its
 * range in a split. A grown range is a merge, an unchanged one a conf
 * change or PrepareMerge/RollbackMerge.
 */
function cameOutOfSplit(info: RegionInfo, removed: RegionInfo[]): boolean {
  const prev = removed.find((o) => o.region.id === info.region.id);
  if (prev === undefined) return true;
  const a = prev.region;
  const b = info.region;
  const startMoved = compareKeys(b.startKey, a.startKey) > 0;
  const endMoved = b.endKey.length > 0 && (a.endKey.length === 0 || compareKeys(b.endKey, a.endKey) < 0);
  return startMoved || endMoved;
}
