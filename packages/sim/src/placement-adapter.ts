import { decode, encode, type Region } from '@flotilla/proto';
import { composeTs, PlacementError, PlacementErrorCode, type RegionHeartbeat, type StoreMeta, type StoreStats } from '@flotilla/placement';
import type { PlacementCluster } from '@flotilla/placement/internal';
import type { PlacementApi } from '@flotilla/store';

/** lastTimestamp: the last hybrid timestamp any InProcessPlacement handed out (one oracle per process). */
let lastTimestamp = 0n;

/**
 * resetTimestampOracle starts the process's oracle over. A run's virtual
 * clock starts again at START_MS, so without it a second run in the same
 * process (a seed sweep, a test file) got timestamps continuing the first
 * run's: a seed then did not replay alone as it ran in the sweep.
 */
export function resetTimestampOracle(): void {
  lastTimestamp = 0n;
}

/**
 * InProcessPlacement is a PlacementApi that calls the placement state
 * machine (PlacementCluster) in process, through the same validating
 * `dispatch` the server uses. Requests and results are copied through the
 * msgpack codec, as the wire would, so neither side can alias the other's
 * objects. Every call resolves on a microtask (no timers), which keeps a
 * fake-timer simulation deterministic.
 */
export class InProcessPlacement implements PlacementApi {
  private closed = false;
  /** calls counts requests, for the simulation's report. */
  calls = 0;

  constructor(
    private readonly cluster: () => PlacementCluster,
    /** down says placement is unreachable (a simulated crash): calls then fail like a dropped connection. */
    private readonly down: () => boolean = () => false,
    /** observe sees every answered call (the simulation's ID ledger). */
    private readonly observe?: (method: string, params: unknown, result: unknown) => void,
  ) {}

  private async call<T>(method: string, params: unknown): Promise<T> {
    if (this.closed) throw new PlacementError(PlacementErrorCode.Closed, 'placement client closed');
    this.calls++;
    // The in-process cluster answers synchronously: no await then, so its microtask order is as before.
    const raw = this.invoke(method, decode(encode(params)));
    const result = decode(encode(raw instanceof Promise ? await raw : raw)) as T;
    this.observe?.(method, params, result);
    return result;
  }

  /** invoke runs one request at placement (here: the one in-process cluster, synchronously); a subclass may answer later. */
  protected invoke(method: string, params: unknown): unknown {
    if (this.down()) throw new PlacementError(PlacementErrorCode.Timeout, 'placement unreachable (simulated crash)');
    return this.cluster().dispatch(method, params);
  }

  async getStore(storeId: number) {
    return (await this.call<{ store: Awaited<ReturnType<PlacementApi['getStore']>> }>('getStore', { storeId })).store;
  }
  async putStore(store: StoreMeta) {
    return (await this.call<{ store: Awaited<ReturnType<PlacementApi['putStore']>> }>('putStore', { store })).store;
  }
  async isBootstrapped() {
    return (await this.call<{ bootstrapped: boolean }>('isBootstrapped', {})).bootstrapped;
  }
  async allocId(count = 1) {
    return (await this.call<{ ids: number[] }>('allocId', { count })).ids;
  }
  async bootstrap(store: StoreMeta, region: Region) {
    await this.call('bootstrap', { store, region });
  }
  async getRegion(key: Uint8Array) {
    return (await this.call<{ region: Awaited<ReturnType<PlacementApi['getRegion']>> }>('getRegion', { key })).region;
  }
  async getRegionById(regionId: number) {
    return (await this.call<{ region: Awaited<ReturnType<PlacementApi['getRegionById']>> }>('getRegionById', { regionId })).region;
  }
  async getAllStores() {
    return (await this.call<{ stores: Awaited<ReturnType<PlacementApi['getAllStores']>> }>('getAllStores', {})).stores;
  }
  async regionHeartbeat(hb: RegionHeartbeat) {
    return this.call<Awaited<ReturnType<PlacementApi['regionHeartbeat']>>>('regionHeartbeat', hb);
  }
  async reportBatchSplit(regions: Region[]) {
    return (await this.call<{ accepted: number }>('reportBatchSplit', { regions })).accepted;
  }
  async askBatchSplit(region: Region, count: number) {
    return (await this.call<{ ids: Awaited<ReturnType<PlacementApi['askBatchSplit']>> }>('askBatchSplit', { region, count })).ids;
  }
  async storeHeartbeat(stats: StoreStats) {
    return (await this.call<{ store: Awaited<ReturnType<PlacementApi['storeHeartbeat']>> }>('storeHeartbeat', { stats })).store;
  }
  async getClusterInfo() {
    return this.call<Awaited<ReturnType<NonNullable<PlacementApi['getClusterInfo']>>>>('getClusterInfo', {});
  }
  /**
   * timestamp is a hybrid timestamp from one oracle shared by every adapter
   * in the process (the simulation's clock, strictly increasing), as
   * placement's TSO would give; it fails like every call while placement is down.
   */
  async timestamp(): Promise<bigint> {
    if (this.closed) throw new PlacementError(PlacementErrorCode.Closed, 'placement client closed');
    if (this.down()) throw new PlacementError(PlacementErrorCode.Timeout, 'placement unreachable (simulated crash)');
    const now = composeTs(Date.now(), 0);
    lastTimestamp = now > lastTimestamp ? now : lastTimestamp + 1n;
    return lastTimestamp;
  }
  close(): void {
    this.closed = true;
  }
}
