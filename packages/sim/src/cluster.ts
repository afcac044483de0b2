// SimCluster: the simulated processes (placement and N real stores on one
// LocalNetwork) and the read-only views the checkers and the fault plan take
// of them. Checkers see a store only through its public face:
// store.inspect() / inspectRegion() (PeerView copies), store.stateMachine and
// handleClientRequest; never a live Peer.
import { join } from 'node:path';
import { PlacementCluster } from '@flotilla/placement/internal';
import type { Region } from '@flotilla/proto';
import { startStore, type PeerView, type Store, type StoreHandle, type StoreOptions } from '@flotilla/store';
import { LocalNetwork } from '@flotilla/transport';
import { SLICE_MS } from './clock';
import { InProcessPlacement } from './placement-adapter';

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
  placement!: PlacementCluster;
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
  ) {
    this.network = new LocalNetwork({ seed, mode: 'auto' });
  }

  openPlacement(): void {
    this.placement = new PlacementCluster({
      dataDir: join(this.dir, 'placement'),
      maxReplicas: 3,
      maxStoreDownTimeMs: 8_000,
      storeDisconnectMs: 3_000,
      statsPersistIntervalMs: 0,
      ...(this.balance ? {} : { balanceLeader: false as const, balanceRegion: false as const }),
    });
  }

  /**
   * startPlacementWorkers runs what placement's server would run on timers: a
   * flush every 50 ms and the schedulers every 500 ms (both skip while
   * placement is down). close() stops them.
   */
  startPlacementWorkers(): void {
    this.placementTimers.push(setInterval(() => !this.placementDown && this.placement.flush(), 50));
    this.placementTimers.push(setInterval(() => !this.placementDown && this.placement.runSchedulers(), 500));
  }

  /** placementDown: while true every placement call fails (placement crashed and restarts later). */
  placementDown = false;

  /**
   * crashPlacement stops placement WITHOUT its final flush: whatever the
   * last 50 ms flush had not written is lost, as in a process crash.
   */
  crashPlacement(): void {
    this.placementDown = true;
    this.placement.storage.close();
  }

  restartPlacement(): void {
    this.openPlacement();
    this.placementDown = false;
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

  async startNew(index: number): Promise<number> {
    const adapter = new InProcessPlacement(() => this.placement, () => this.placementDown);
    this.adapters.push(adapter);
    const log = (lvl: string) => (o: object, m?: string) => {
      if (this.debugStores) console.error(`[store#${index} ${lvl}] ${m ?? ''} ${JSON.stringify(o)}`);
    };
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
    const h = await startStore(opts);
    this.handles.set(h.storeId, h);
    this.storeOpts.set(h.storeId, opts);
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
    const adapter = new InProcessPlacement(() => this.placement, () => this.placementDown);
    this.adapters.push(adapter);
    const h = await startStore({ ...base, placementClient: adapter });
    this.handles.set(storeId, h);
  }

  async close(): Promise<void> {
    for (const t of this.placementTimers.splice(0)) clearInterval(t);
    for (const id of this.storeIds()) await this.crash(id);
    this.network.close();
    this.placement.close();
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
