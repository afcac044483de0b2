// SimClient: one client of the workload. It routes like the real client
// (Region from placement or from an EpochNotMatch answer, leader from hints,
// retries with backoff) but calls each store's handleClientRequest directly
// (no client socket), and records every operation it invokes.
import { compareKeys, type ClientRequest, type Region, type RegionEpoch } from '@flotilla/proto';
import type { KvInput, KvOutput } from './linearizability';
import type { SimCluster } from './cluster';
import type { Recorder } from './report';
import { bytes, keyName, text, type Rng } from './keys';

/** ScanInput is a Region-local scan over keys [start, end) of the universe; the history records it per key. */
export type ScanInput = { type: 'scan'; start: number; end: number; limit: number };

type Result =
  | { kind: 'ok'; value?: Uint8Array | null; pairs?: { key: Uint8Array; value: Uint8Array }[]; cas?: { succeeded: boolean; previous: Uint8Array | null }[] }
  | { kind: 'error'; sync: boolean; type: string; leaderStore?: number; regions?: Region[] }
  | { kind: 'timeout' };

/**
 * SimClient routes requests like the real client (region from placement,
 * leader from hints, retries with backoff) but calls each store's
 * handleClientRequest directly. It records every operation it invokes.
 */
export class SimClient {
  private leaderHint = new Map<number, number>();
  private regionHint: Region[] = [];

  constructor(
    readonly id: number,
    private readonly cluster: SimCluster,
    private readonly rng: Rng,
    private readonly recorder: Recorder,
    private readonly opTimeoutMs: number,
    private readonly staleReads = false,
  ) {}

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }

  /** route finds the Region holding key and the store to try. */
  private route(key: Uint8Array): { region: Region; storeId: number } | undefined {
    let region = this.regionHint.find((r) => compareKeys(r.startKey, key) <= 0 && (r.endKey.length === 0 || compareKeys(key, r.endKey) < 0));
    let leaderStore: number | undefined;
    const known = this.cluster.placementDown ? null : this.cluster.placement.call('getRegion', { key }).region;
    if (known && (!region || epochNewer(known.region.epoch, region.epoch))) {
      region = known.region;
      leaderStore = known.leader?.storeId;
    }
    if (!region) return undefined;
    const hinted = this.leaderHint.get(region.id);
    const voters = region.peers.filter((p) => p.role === 'voter');
    let storeId = hinted ?? leaderStore;
    if (storeId === undefined || this.rng() < 0.1) storeId = voters[Math.floor(this.rng() * voters.length)]?.storeId;
    if (storeId === undefined) return undefined;
    return { region, storeId };
  }

  /** send calls one store; the answer says whether the store answered synchronously (nothing was proposed). */
  private send(storeId: number, req: ClientRequest, timeoutMs: number): Promise<Result> {
    const store = this.cluster.store(storeId);
    if (!store) return Promise.resolve({ kind: 'error', sync: true, type: 'Unreachable' });
    return new Promise((resolve) => {
      let done = false;
      let inCall = true;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        resolve({ kind: 'timeout' });
      }, timeoutMs);
      store.handleClientRequest(req, (r) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (r.ok) {
          const out: Result = { kind: 'ok' };
          if (r.value !== undefined) out.value = r.value;
          if (r.pairs) out.pairs = r.pairs;
          if (r.cas) out.cas = r.cas;
          resolve(out);
          return;
        }
        const e = r.error;
        const out: Result = { kind: 'error', sync: inCall, type: e.type };
        if (e.type === 'NotLeader' && e.leader) out.leaderStore = e.leader.storeId;
        if (e.type === 'EpochNotMatch') out.regions = e.currentRegions;
        resolve(out);
      });
      inCall = false;
    });
  }

  private learn(regionId: number, r: Result & { kind: 'error' }): void {
    if (r.leaderStore !== undefined) this.leaderHint.set(regionId, r.leaderStore);
    else this.leaderHint.delete(regionId);
    if (r.regions) this.regionHint = r.regions;
    if (r.type === 'RegionNotFound' || r.type === 'KeyNotInRegion' || r.type === 'Unreachable') this.regionHint = [];
  }

  /**
   * run executes one KV operation until it has a definite answer, the
   * deadline passes, or (for writes) an answer came back after the command
   * may have been proposed: the outcome is then unknown.
   */
  async run(input: KvInput | ScanInput, keyCount: number): Promise<void> {
    const invokeTime = this.recorder.nextEvent();
    const deadline = Date.now() + this.opTimeoutMs;
    const isWrite = input.type === 'put' || input.type === 'delete' || input.type === 'cas';
    const routeKey = input.type === 'scan' ? bytes(keyName(input.start)) : bytes(input.key);
    if (this.staleReads && input.type === 'get' && this.rng() < 0.5) return this.staleRead(input, routeKey, invokeTime);
    for (let attempt = 0; ; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) return this.giveUp(input, invokeTime, isWrite);
      const route = this.route(routeKey);
      if (!route) {
        await this.sleep(20 + Math.floor(this.rng() * 50));
        continue;
      }
      const { region, storeId } = route;
      const r = await this.send(storeId, requestFor(input, { regionId: region.id, regionEpoch: region.epoch }, routeKey), left);
      if (r.kind === 'timeout') return this.giveUp(input, invokeTime, isWrite);
      if (r.kind === 'ok') return this.acknowledge(input, region, r, invokeTime, keyCount);
      this.learn(region.id, r);
      if (isWrite && !r.sync && !provesNotApplied(r.type)) return this.giveUp(input, invokeTime, true);
      await this.sleep(Math.min(200, 10 * (attempt + 1)) + Math.floor(this.rng() * 20));
    }
  }

  /** staleRead is the injected bug (injectStaleReads): read a random replica's state machine, no ReadIndex, no leader check. */
  private staleRead(input: KvInput, key: Uint8Array, invokeTime: number): void {
    const up = this.cluster.up();
    const v = this.cluster.store(up[Math.floor(this.rng() * up.length)]!)!.stateMachine.get(key);
    this.recorder.stats.acknowledged++;
    this.recorder.history.push({ clientId: this.id, op: 'get', input, output: { value: v ? text(v) : null }, invokeTime, returnTime: this.recorder.nextEvent() });
  }

  /** acknowledge records a definite answer. */
  private acknowledge(input: KvInput | ScanInput, region: Region, r: Result & { kind: 'ok' }, invokeTime: number, keyCount: number): void {
    const returnTime = this.recorder.nextEvent();
    this.recorder.stats.acknowledged++;
    if (input.type === 'scan') return this.recordScan(input, region, r.pairs ?? [], invokeTime, returnTime, keyCount);
    let output: KvOutput = {};
    if (input.type === 'get') output = { value: r.value ? text(r.value) : null };
    if (input.type === 'cas') {
      const c = r.cas?.[0];
      if (!c) throw new Error('cas answered without a result');
      output = { succeeded: c.succeeded, previous: c.previous === null ? null : text(c.previous) };
    }
    this.recorder.history.push({ clientId: this.id, op: input.type, input, output, invokeTime, returnTime });
  }

  private giveUp(input: KvInput | ScanInput, invokeTime: number, isWrite: boolean): void {
    if (isWrite) {
      this.recorder.stats.unknown++;
      this.recorder.history.push({ clientId: this.id, op: input.type, input: input as KvInput, output: undefined, invokeTime, returnTime: Infinity });
    } else this.recorder.stats.failedReads++;
  }

  /** recordScan turns one Region-local scan into per-key reads of the keys it covered. */
  private recordScan(input: ScanInput, region: Region, pairs: { key: Uint8Array; value: Uint8Array }[], invokeTime: number, returnTime: number, keyCount: number): void {
    this.recorder.stats.scans++;
    const got = new Map(pairs.map((p) => [text(p.key), text(p.value)]));
    const full = pairs.length < input.limit;
    const lastKey = pairs.length > 0 ? text(pairs[pairs.length - 1]!.key) : undefined;
    for (let i = input.start; i < Math.min(input.end, keyCount); i++) {
      const k = keyName(i);
      const kb = bytes(k);
      if (region.endKey.length > 0 && compareKeys(kb, region.endKey) >= 0) break;
      if (!full && lastKey !== undefined && k > lastKey) break;
      this.recorder.history.push({ clientId: this.id, op: 'scan', input: { type: 'get', key: k }, output: { value: got.get(k) ?? null }, invokeTime, returnTime });
    }
  }
}

/** requestFor builds the client request of one attempt (routeKey is the key, or the scan's start key). */
function requestFor(input: KvInput | ScanInput, header: ClientRequest['header'], routeKey: Uint8Array): ClientRequest {
  switch (input.type) {
    case 'get':
      return { id: 0, header, op: 'read', read: { type: 'get', key: routeKey } };
    case 'scan':
      return { id: 0, header, op: 'read', read: { type: 'scan', startKey: routeKey, endKey: bytes(keyName(input.end)), limit: input.limit } };
    case 'put':
      return { id: 0, header, op: 'write', writes: [{ type: 'put', key: routeKey, value: bytes(input.value) }] };
    case 'delete':
      return { id: 0, header, op: 'write', writes: [{ type: 'delete', key: routeKey }] };
    case 'cas': {
      const expected = input.expected === null ? null : bytes(input.expected);
      return { id: 0, header, op: 'write', writes: [{ type: 'cas', key: routeKey, expected, value: input.value === null ? null : bytes(input.value) }] };
    }
  }
}

function epochNewer(a: RegionEpoch, b: RegionEpoch): boolean {
  return a.version > b.version || (a.version === b.version && a.confVer > b.confVer);
}

/**
 * NOT_APPLIED names the errors a store gives only for a write that was never
 * proposed, or whose entry can no longer apply (StaleCommand: another
 * leader's entry replaced it; EpochNotMatch / KeyNotInRegion also at apply
 * time, when the entry applied as a refusal). Since the store carve these
 * arrive from the peer's mailbox, after handleClientRequest returned, so
 * "answered later" alone no longer means "maybe proposed". A store that
 * gave one of them for a write it did apply would break linearizability,
 * and the checker would see it. Undetermined and Unavailable stay unknown.
 */
const NOT_APPLIED = new Set(['NotLeader', 'EpochNotMatch', 'KeyNotInRegion', 'RegionNotFound', 'ServerIsBusy', 'StaleCommand', 'InvalidRequest', 'StoreNotMatch']);

function provesNotApplied(type: string): boolean {
  return NOT_APPLIED.has(type);
}
