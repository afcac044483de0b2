// SimCluster: the simulated processes (placement and N real stores on one
// LocalNetwork) and the read-only views the checkers and the fault plan take
// of them. Checkers see a store only through its public face:
// store.inspect() / inspectRegion() (PeerView copies), store.stateMachine and
// handleClientRequest; never a live Peer.
import { join } from 'node:path';
import { PlacementCluster } from '@flotilla/placement/internal';
import type { Logger, Region } from '@flotilla/proto';
import { startStore, type PeerView, type Store, type StoreHandle, type StoreOptions } from '@flotilla/store';
import { LocalNetwork } from '@flotilla/transport';
import FakeTimers from '@sinonjs/fake-timers';
import { SLICE_MS } from './clock';
import { InProcessPlacement } from './placement-adapter';
import { IdLedger } from './placement-checkers';
import { SimPlacementGroup } from './placement-group';
import { GroupCaller, GroupPlacement, RpcNet } from './placement-rpc';

type InstalledClock = ReturnType<typeof FakeTimers.install>;
/** realSetImmediate: the event loop's own setImmediate (fake-timers keeps the originals it replaced). */
const realSetImmediate = FakeTimers.timers.setImmediate as unknown as (cb: () => void) => unknown;

/** PUMP_IDLE_TURNS: real event-loop turns a store start may spend on real I/O before virtual time moves on. */
const PUMP_IDLE_TURNS = 20;

/** StorePeer is one peer of one live store, as a read-only view. */
export interface StorePeer {
  storeId: number;
  store: Store;
  peer: PeerView;
}

/** Cluster holds the simulated processes. */
export class SimCluster {
  readonly handles = new Map<number, StoreHandle | undefined>();
  readonly storeOpts = new Map<number, StoreOptions>();
  readonly network: LocalNetwork;
  private single!: PlacementCluster;
  /** group: placement as 3 Raft members (placements: 3); undefined for the one in-process PlacementCluster. */
  group: SimPlacementGroup | undefined;
  /** rpc: the simulated links between stores (and TSO clients) and the members. */
  rpc: RpcNet | undefined;
  /** ledger: every ID placement handed out, with its use (placement-checkers.ts). */
  readonly ledger = new IdLedger();
  /** indexOf: a store's start index by store ID (its name on the placement links). */
  readonly indexOf = new Map<number, number>();
  private readonly adapters: InProcessPlacement[] = [];
  private readonly placementTimers: ReturnType<typeof setInterval>[] = [];

  constructor(
    readonly dir: string,
    seed: number,
    private readonly debugStores: boolean,
    private readonly balance = true,
    private readonly readOnly: 'safe' | 'lease-based' = 'safe',
    /** tickSkew: store i ticks every 50 * (1 + tickSkew * (i % 3 - 1)) ms, a clock-rate drift between stores. */
    private readonly tickSkew = 0,
    /** placements: 1 (one in-process PlacementCluster) or 3 (a Raft group of PlacementMembers). */
    readonly placements: 1 | 3 = 1,
    /** clock: the installed fake clock (group mode advances it while a store starts). */
    private readonly clock?: InstalledClock,
  ) {
    this.network = new LocalNetwork({ seed, mode: 'auto' });
    this.seed = seed;
  }

  private readonly seed: number;

  /** clusterOptions: what placement runs with, one member or three. */
  private clusterOptions() {
    return {
      maxReplicas: 3,
      maxStoreDownTimeMs: 8_000,
      storeDisconnectMs: 3_000,
      statsPersistIntervalMs: 0,
      ...(this.balance ? {} : { balanceLeader: false as const, balanceRegion: false as const }),
    };
  }

  openPlacement(): void {
    if (this.placements === 3) {
      const log = this.storeLog('placement');
      const logger: Logger = { debug() {}, info() {}, warn: log('warn'), error: log('error') };
      this.group = new SimPlacementGroup({
        dir: this.dir,
        seed: this.seed,
        // A small log compaction threshold, so members that were down catch up by snapshot too.
        cluster: { ...this.clusterOptions(), clusterId: 4242, compactLogEntries: 200, keepLogEntries: 20 },
        logger,
      });
      this.rpc = new RpcNet(this.group, this.seed);
      return;
    }
    this.single = new PlacementCluster({ dataDir: join(this.dir, 'placement'), ...this.clusterOptions() });
  }

  private storeLog(who: string) {
    return (lvl: string) => (o: object, m?: string) => {
      if (this.debugStores) console.error(`[${who} ${lvl}] ${m ?? ''} ${JSON.stringify(o)}`);
    };
  }

  /**
   * placement is placement's in-memory cluster as a client would see it: the
   * one PlacementCluster, or the current leader's (read it only while
   * placementDown is false).
   */
  get placement(): PlacementCluster {
    if (!this.group) return this.single;
    const c = this.group.leaderCluster();
    if (!c) throw new Error('no placement leader serving (check placementDown first)');
    return c;
  }

  /**
   * startPlacementWorkers runs what placement's server would run on timers: a
   * flush every 50 ms and the schedulers every 500 ms (both skip while
   * placement is down). close() stops them.
   */
  startPlacementWorkers(): void {
    const g = this.group;
    if (g) {
      this.placementTimers.push(setInterval(() => g.flush(), 50));
      this.placementTimers.push(setInterval(() => g.runSchedulers(), 500));
      return;
    }
    this.placementTimers.push(setInterval(() => !this.placementDown && this.placement.flush(), 50));
    this.placementTimers.push(setInterval(() => !this.placementDown && this.placement.runSchedulers(), 500));
  }

  private singleDown = false;

  /** placementDown: the one placement crashed (every call fails), or no member of the group serves as leader now. */
  get placementDown(): boolean {
    return this.group ? this.group.leaderCluster() === undefined : this.singleDown;
  }

  /**
   * crashPlacement stops placement WITHOUT its final flush: whatever the
   * last 50 ms flush had not written is lost, as in a process crash.
   */
  crashPlacement(): void {
    this.singleDown = true;
    this.single.storage.close();
  }

  restartPlacement(): void {
    this.openPlacement();
    this.singleDown = false;
  }

  /**
   * placementHealthy: a store starting now would be answered. With one
   * placement, it is up; with a group, the leader (highest term) reaches
   * another live member, so it can commit (a store's start gives up after
   * one 5 s placement timeout, and a failed start leaves its databases open:
   * see the report of P4a).
   */
  placementHealthy(): boolean {
    const g = this.group;
    if (!g) return !this.placementDown;
    const leader = g.leader();
    const li = g.slots.findIndex((s) => s.member !== undefined && s.member === leader);
    return li >= 0 && g.up().some((s) => s.index !== li && g.network.canReach(li + 1, s.index + 1));
  }

  /** placementReachableFrom: placement is healthy and storeId's links to the members are not cut. */
  placementReachableFrom(storeId: number): boolean {
    if (!this.placementHealthy()) return false;
    const caller = `store#${this.indexOf.get(storeId)}`;
    return !this.group || !this.group.slots.some((s) => this.rpc!.isCut(caller, s.index));
  }

  storeIds(): number[] {
    return [...this.handles.keys()].sort((a, b) => a - b);
  }

  up(): number[] {
    return this.storeIds().filter((id) => this.handles.get(id) !== undefined);
  }

  down(): number[] {
    return this.storeIds().filter((id) => this.handles.get(id) === undefined && !this.lost.has(id));
  }

  /** lost: stores whose disk is gone for good (never restarted; placement must replace their peers). */
  readonly lost = new Set<number>();

  /** store is the live Store of storeId, or undefined while it is down. */
  store(storeId: number): Store | undefined {
    return this.handles.get(storeId)?.store;
  }

  /** peerViews lists every peer of every live store (store.inspect()), by store id. */
  peerViews(): StorePeer[] {
    const out: StorePeer[] = [];
    for (const storeId of this.up()) {
      const store = this.store(storeId)!;
      for (const peer of store.inspect()) out.push({ storeId, store, peer });
    }
    return out;
  }

  /** leaderOf finds the live store whose peer of regionId is an initialized leader (the lowest store id wins). */
  leaderOf(regionId: number): { storeId: number; peer: PeerView } | undefined {
    for (const storeId of this.up()) {
      const peer = this.store(storeId)!.inspectRegion(regionId);
      if (peer && peer.isLeader && peer.initialized) return { storeId, peer };
    }
    return undefined;
  }

  /** regions is placement's routing table (Region and its leader as placement knows them). */
  regions(): ReturnType<PlacementCluster['tree']['all']> {
    if (this.group && this.placementDown) return [];
    return this.placement.tree.all();
  }

  /** randomRegion picks one of placement's Regions (undefined while placement is down). */
  randomRegion(rng: () => number): Region | undefined {
    if (this.placementDown) return undefined;
    const all = this.regions();
    return all[Math.floor(rng() * all.length)]?.region;
  }

  /** loseStore crashes a store for good; the caller starts a fresh store in its place. */
  async loseStore(storeId: number): Promise<void> {
    this.lost.add(storeId);
    await this.crash(storeId);
  }

  /** newAdapter is store index's placement client: in process, or over the simulated links to the group. */
  private newAdapter(index: number): InProcessPlacement {
    const caller = `store#${index}`;
    const observe = (method: string, params: unknown, result: unknown) => this.ledger.observe(caller, method, params, result);
    const adapter = this.rpc
      ? new GroupPlacement(new GroupCaller(this.rpc, caller, (this.seed * 31 + index * 977 + this.adapters.length) >>> 0), observe)
      : new InProcessPlacement(() => this.placement, () => this.placementDown, observe);
    this.adapters.push(adapter);
    return adapter;
  }

  /**
   * startStoreProcess starts a store. With one in-process placement its calls
   * answer at once, so the start needs no virtual time. A placement group
   * answers only after raft rounds (on the virtual clock), so the start runs
   * on a pump: one real event-loop turn (the store's real I/O), then every
   * virtual timer due now; virtual time moves on only after PUMP_IDLE_TURNS
   * turns without the start finishing (placement unreachable, a retry wait).
   */
  private async startStoreProcess(opts: StoreOptions): Promise<StoreHandle> {
    const clock = this.clock;
    const start = startStore(opts);
    if (!this.group || !clock) return start;
    let done = false;
    start.then(
      () => (done = true),
      () => (done = true),
    );
    for (let idle = 0; !done; idle++) {
      await new Promise<void>((r) => realSetImmediate(() => r()));
      await clock.tickAsync(idle >= PUMP_IDLE_TURNS ? 10 : 0);
    }
    return start;
  }

  async startNew(index: number): Promise<number> {
    const adapter = this.newAdapter(index);
    const log = this.storeLog(`store#${index}`);
    const opts: StoreOptions = {
      dataDir: join(this.dir, `store-${index}`),
      listen: '127.0.0.1:0',
      placement: 'in-process',
      profile: 'demo',
      tickIntervalMs: Math.max(1, Math.round(50 * (1 + this.tickSkew * ((index % 3) - 1)))),
      config: { readOnly: this.readOnly },
      logger: { debug() {}, info: log('info'), warn: log('warn'), error: log('error') },
      transportFactory: (id) => this.network.transport(id),
      placementClient: adapter,
    };
    const h = await this.startStoreProcess(opts);
    this.handles.set(h.storeId, h);
    this.storeOpts.set(h.storeId, opts);
    this.indexOf.set(h.storeId, index);
    return h.storeId;
  }

  async crash(storeId: number): Promise<void> {
    const h = this.handles.get(storeId);
    if (!h) return;
    this.handles.set(storeId, undefined);
    await h.close();
  }

  async restart(storeId: number): Promise<void> {
    if (this.handles.get(storeId)) return;
    const base = this.storeOpts.get(storeId)!;
    const adapter = this.newAdapter(this.indexOf.get(storeId)!);
    const h = await this.startStoreProcess({ ...base, placementClient: adapter });
    this.handles.set(storeId, h);
  }

  async close(): Promise<void> {
    for (const t of this.placementTimers.splice(0)) clearInterval(t);
    for (const id of this.storeIds()) await this.crash(id);
    this.network.close();
    if (this.group) await this.group.close();
    else this.single.close();
  }
}

/**
 * startCluster opens placement, starts nStores stores one slice apart, and
 * waits (at most 30 s virtual) until Region 1 has min(3, nStores) voters and
 * a leader, so the workload starts on a real group.
 */
export async function startCluster(cluster: SimCluster, nStores: number, advance: (ms: number) => Promise<void>): Promise<void> {
  cluster.openPlacement();
  cluster.startPlacementWorkers();
  const g = cluster.group;
  if (g) {
    for (const s of g.slots) void g.startMember(s.index);
    for (let t = 0; t < 30_000 && cluster.placementDown; t += SLICE_MS) await advance(SLICE_MS);
  }
  for (let i = 0; i < nStores; i++) {
    await cluster.startNew(i);
    await advance(SLICE_MS);
  }
  for (let t = 0; t < 30_000; t += SLICE_MS) {
    const r = cluster.regions()[0];
    if (r && r.region.peers.filter((p) => p.role === 'voter').length >= Math.min(3, nStores) && r.leader) break;
    await advance(SLICE_MS);
  }
}
