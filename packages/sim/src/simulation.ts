// Whole-cluster deterministic simulation (FoundationDB / TigerBeetle VOPR
// style): placement and N stores in ONE process, a virtual clock
// (@sinonjs/fake-timers drives every setInterval / setTimeout /
// setImmediate / Date.now / performance.now the stores, the network and the
// clients use), the in-memory LocalNetwork with seeded faults, crashes and
// restarts, forced splits, conf changes and leader transfers, and a random
// KV workload whose history is checked for linearizability.
//
// One seed decides everything: the fault plan, the workload, the network's
// fault draws and (through the faked Date.now) the stores' raft seeds. Real
// I/O (SQLite, the client port each store listens on) happens only at
// store start/stop, which the driver awaits between clock slices, so it
// cannot interleave with simulated events. `runSimulation` twice with the
// same seed yields the same history digest; a test verifies it.

import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import FakeTimers from '@sinonjs/fake-timers';
import { PlacementCluster } from '@flotilla/placement/internal';
import { compareKeys, type ClientRequest, type Region, type RegionEpoch } from '@flotilla/proto';
import { startStore, type StoreHandle, type StoreOptions } from '@flotilla/store';
import { LocalNetwork, mulberry32 } from '@flotilla/transport';
import { checkKvHistory, explainFailure, type CheckResult, type KvInput, type KvOperation, type KvOutput } from './linearizability';
import { InProcessPlacement } from './placement-adapter';

export interface SimOptions {
  seed: number;
  /** stores in the cluster (3..5). */
  stores?: number;
  /** clients running the workload concurrently. */
  clients?: number;
  /** keys in the workload's key universe. */
  keys?: number;
  /** safetyMs: virtual ms of workload under faults. */
  safetyMs?: number;
  /** livenessBoundMs: after healing, everything must converge and serve within this many virtual ms. */
  livenessBoundMs?: number;
  /** opTimeoutMs: a client gives up on an operation after this long (its outcome is then unknown). */
  opTimeoutMs?: number;
  /** faults: false runs the same workload without any fault (a baseline). */
  faults?: boolean;
  /** maxStepsPerKey bounds the linearizability search per key. */
  maxStepsPerKey?: number;
  /**
   * removePeers enables the conf-change fault (remove a follower voter; placement re-adds
   * a replica). Default true. See STORE_BUGS.md #1: a store never re-creates a peer of a
   * Region it once had, so this fault can leave a Region without quorum.
   */
  removePeers?: boolean;
  /**
   * replaceStores enables losing one store's disk for good (at most once per seed) and
   * adding a fresh store: placement must move the lost store's replicas (default true).
   */
  replaceStores?: boolean;
  /** tickSkew: relative clock-rate drift between stores' tick timers (0 = none, 0.2 = ±20 %). */
  tickSkew?: number;
  /** readOnly: the stores' read mode ('safe' ReadIndex, default, or 'lease-based' leader leases). */
  readOnly?: 'safe' | 'lease-based';
  /** merges enables the merge fault: a random Region is merged into a neighbour (default true). */
  merges?: boolean;
  /** placementCrashes enables the placement crash/restart fault (default true). */
  placementCrashes?: boolean;
  /**
   * balance enables placement's balance-leader and balance-region schedulers (default true).
   * With more than 3 stores balance-region moves replicas back and forth, which runs into
   * STORE_BUGS.md #1; tests turn it off until that is fixed.
   */
  balance?: boolean;
  /**
   * injectStaleReads makes half of the workload's gets read some replica's state machine
   * directly (no ReadIndex, no leader check): a deliberate bug the checkers must catch.
   */
  injectStaleReads?: boolean;
  /** log prints progress lines (the CLI passes console.error). */
  log?: (line: string) => void;
  /** debugStores prints store warnings and errors. */
  debugStores?: boolean;
}

export interface SimStats {
  ops: number;
  acknowledged: number;
  unknown: number;
  failedReads: number;
  scans: number;
  finalReads: number;
  faults: Record<string, number>;
  regionsAtEnd: number;
  virtualMs: number;
  realMs: number;
  searchSteps: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  failures: string[];
  /** verdict of the linearizability check ('unknown' = a key's search ran out of budget). */
  linearizability: CheckResult['verdict'];
  stats: SimStats;
  /** digest hashes the history and the fault log: equal seeds must give equal digests. */
  digest: string;
  history: KvOperation[];
  faultLog: string[];
}

const SLICE_MS = 100;
export const START_MS = 1_700_000_000_000;

type Rng = () => number;

function keyName(i: number): string {
  return `k${String(i).padStart(3, '0')}`;
}
const te = new TextEncoder();
const td = new TextDecoder();
const bytes = (s: string): Uint8Array => te.encode(s);
const text = (b: Uint8Array): string => td.decode(b);

/** Cluster holds the simulated processes. */
export class SimCluster {
  readonly handles = new Map<number, StoreHandle | undefined>();
  readonly storeOpts = new Map<number, StoreOptions>();
  readonly network: LocalNetwork;
  placement!: PlacementCluster;
  private readonly adapters: InProcessPlacement[] = [];

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
    for (const id of this.storeIds()) await this.crash(id);
    this.network.close();
    this.placement.close();
  }
}

/** Clock orders events: virtual ms for people, a global sequence for the checker (exact real-time order). */
let eventSeq = 0;
const nextEvent = (): number => ++eventSeq;

type Result =
  | { kind: 'ok'; value?: Uint8Array | null; pairs?: { key: Uint8Array; value: Uint8Array }[]; cas?: { succeeded: boolean; previous: Uint8Array | null }[] }
  | { kind: 'error'; sync: boolean; type: string; leaderStore?: number; regions?: Region[] }
  | { kind: 'timeout' };

/**
 * SimClient routes requests like the real client (region from placement,
 * leader from hints, retries with backoff) but calls each store's
 * handleClientRequest directly. It records every operation it invokes.
 */
class SimClient {
  private leaderHint = new Map<number, number>();
  private regionHint: Region[] = [];

  constructor(
    readonly id: number,
    private readonly cluster: SimCluster,
    private readonly rng: Rng,
    private readonly history: KvOperation[],
    private readonly stats: SimStats,
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
    const store = this.cluster.handles.get(storeId)?.store;
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
  async run(input: KvInput | { type: 'scan'; start: number; end: number; limit: number }, keyCount: number): Promise<void> {
    const invokeTime = nextEvent();
    const deadline = Date.now() + this.opTimeoutMs;
    const isWrite = input.type === 'put' || input.type === 'delete' || input.type === 'cas';
    const routeKey = input.type === 'scan' ? bytes(keyName(input.start)) : bytes(input.key);
    if (this.staleReads && input.type === 'get' && this.rng() < 0.5) {
      const up = this.cluster.up();
      const s = this.cluster.handles.get(up[Math.floor(this.rng() * up.length)]!)!.store;
      const v = s.stateMachine.get(routeKey);
      this.stats.acknowledged++;
      this.history.push({ clientId: this.id, op: 'get', input, output: { value: v ? text(v) : null }, invokeTime, returnTime: nextEvent() });
      return;
    }
    for (let attempt = 0; ; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) return this.giveUp(input, invokeTime, isWrite);
      const route = this.route(routeKey);
      if (!route) {
        await this.sleep(20 + Math.floor(this.rng() * 50));
        continue;
      }
      const { region, storeId } = route;
      const header = { regionId: region.id, regionEpoch: region.epoch };
      let req: ClientRequest;
      switch (input.type) {
        case 'get':
          req = { id: 0, header, op: 'read', read: { type: 'get', key: routeKey } };
          break;
        case 'scan': {
          const end = bytes(keyName(input.end));
          req = { id: 0, header, op: 'read', read: { type: 'scan', startKey: routeKey, endKey: end, limit: input.limit } };
          break;
        }
        case 'put':
          req = { id: 0, header, op: 'write', writes: [{ type: 'put', key: routeKey, value: bytes(input.value) }] };
          break;
        case 'delete':
          req = { id: 0, header, op: 'write', writes: [{ type: 'delete', key: routeKey }] };
          break;
        case 'cas':
          req = {
            id: 0,
            header,
            op: 'write',
            writes: [{ type: 'cas', key: routeKey, expected: input.expected === null ? null : bytes(input.expected), value: input.value === null ? null : bytes(input.value) }],
          };
          break;
      }
      const r = await this.send(storeId, req, left);
      if (r.kind === 'timeout') return this.giveUp(input, invokeTime, isWrite);
      if (r.kind === 'ok') {
        const returnTime = nextEvent();
        this.stats.acknowledged++;
        if (input.type === 'scan') {
          this.recordScan(input, region, r.pairs ?? [], invokeTime, returnTime, keyCount);
          return;
        }
        let output: KvOutput = {};
        if (input.type === 'get') output = { value: r.value ? text(r.value) : null };
        if (input.type === 'cas') {
          const c = r.cas?.[0];
          if (!c) throw new Error('cas answered without a result');
          output = { succeeded: c.succeeded, previous: c.previous === null ? null : text(c.previous) };
        }
        this.history.push({ clientId: this.id, op: input.type, input, output, invokeTime, returnTime });
        return;
      }
      this.learn(region.id, r);
      if (isWrite && !r.sync) return this.giveUp(input, invokeTime, true);
      await this.sleep(Math.min(200, 10 * (attempt + 1)) + Math.floor(this.rng() * 20));
    }
  }

  private giveUp(input: KvInput | { type: 'scan' }, invokeTime: number, isWrite: boolean): void {
    if (isWrite) {
      this.stats.unknown++;
      this.history.push({ clientId: this.id, op: input.type, input: input as KvInput, output: undefined, invokeTime, returnTime: Infinity });
    } else this.stats.failedReads++;
  }

  /** recordScan turns one Region-local scan into per-key reads of the keys it covered. */
  private recordScan(input: { start: number; end: number; limit: number }, region: Region, pairs: { key: Uint8Array; value: Uint8Array }[], invokeTime: number, returnTime: number, keyCount: number): void {
    this.stats.scans++;
    const got = new Map(pairs.map((p) => [text(p.key), text(p.value)]));
    const full = pairs.length < input.limit;
    const lastKey = pairs.length > 0 ? text(pairs[pairs.length - 1]!.key) : undefined;
    for (let i = input.start; i < Math.min(input.end, keyCount); i++) {
      const k = keyName(i);
      const kb = bytes(k);
      if (region.endKey.length > 0 && compareKeys(kb, region.endKey) >= 0) break;
      if (!full && lastKey !== undefined && k > lastKey) break;
      this.history.push({ clientId: this.id, op: 'scan', input: { type: 'get', key: k }, output: { value: got.get(k) ?? null }, invokeTime, returnTime });
    }
  }
}

function epochNewer(a: RegionEpoch, b: RegionEpoch): boolean {
  return a.version > b.version || (a.version === b.version && a.confVer > b.confVer);
}

function rangeCovered(regions: Region[]): string | undefined {
  const sorted = [...regions].sort((a, b) => compareKeys(a.startKey, b.startKey));
  if (sorted.length === 0) return 'placement knows no Region';
  if (sorted[0]!.startKey.length !== 0) return `gap before Region ${sorted[0]!.id}`;
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!;
    const r = sorted[i]!;
    if (p.endKey.length === 0 || compareKeys(p.endKey, r.startKey) !== 0) return `gap or overlap between Regions ${p.id} and ${r.id}`;
  }
  if (sorted[sorted.length - 1]!.endKey.length !== 0) return `gap after Region ${sorted[sorted.length - 1]!.id}`;
  return undefined;
}

/** runSimulation runs one seed: safety phase with faults, liveness phase, then the checkers. */
export async function runSimulation(opts: SimOptions): Promise<SimResult> {
  const seed = opts.seed;
  const nStores = opts.stores ?? 3;
  const nClients = opts.clients ?? 4;
  const nKeys = opts.keys ?? 24;
  const safetyMs = opts.safetyMs ?? 15_000;
  const livenessBoundMs = opts.livenessBoundMs ?? 30_000;
  const opTimeoutMs = opts.opTimeoutMs ?? 3_000;
  const faultsOn = opts.faults ?? true;
  const log = opts.log ?? (() => {});
  const rng = mulberry32(seed ^ 0x5eed);
  const realStart = performance.now();
  eventSeq = 0;

  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'flotilla-sim-'));
  const clock = FakeTimers.install({
    now: START_MS,
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date', 'performance'],
    shouldClearNativeTimers: true,
  });
  const cluster = new SimCluster(dir, seed, opts.debugStores ?? false, opts.balance ?? true, opts.readOnly ?? 'safe', opts.tickSkew ?? 0);
  const history: KvOperation[] = [];
  const faultLog: string[] = [];
  const failures: string[] = [];
  const stats: SimStats = { ops: 0, acknowledged: 0, unknown: 0, failedReads: 0, scans: 0, finalReads: 0, faults: {}, regionsAtEnd: 0, virtualMs: 0, realMs: 0, searchSteps: 0 };
  const fault = (kind: string, detail: string) => {
    stats.faults[kind] = (stats.faults[kind] ?? 0) + 1;
    faultLog.push(`${Date.now() - START_MS} ${kind} ${detail}`);
  };
  const placementTimers: ReturnType<typeof setInterval>[] = [];
  const epochs = new Map<number, RegionEpoch>();
  const checkPlacement = () => {
    if (cluster.placementDown) return;
    try {
      cluster.placement.tree.checkInvariants();
    } catch (e) {
      failures.push(`placement Region tree invariant broken at ${Date.now() - START_MS} ms: ${(e as Error).message}`);
    }
    for (const info of cluster.placement.tree.all()) {
      const r = info.region;
      const prev = epochs.get(r.id);
      if (prev && (r.epoch.version < prev.version || r.epoch.confVer < prev.confVer)) {
        failures.push(`Region ${r.id} epoch went back in placement: ${JSON.stringify(prev)} -> ${JSON.stringify(r.epoch)}`);
      }
      epochs.set(r.id, { ...r.epoch });
    }
  };
  const storeEpochs = new Map<string, RegionEpoch>();
  const checkStores = () => {
    for (const id of cluster.up()) {
      const s = cluster.handles.get(id)!.store;
      for (const p of s.peers.values()) {
        if (!p.initialized) continue;
        const k = `${id}/${p.regionId}/${p.peerId}`;
        const prev = storeEpochs.get(k);
        const e = p.region.epoch;
        if (prev && (e.version < prev.version || e.confVer < prev.confVer)) failures.push(`store ${id} Region ${p.regionId} peer ${p.peerId} epoch went back: ${JSON.stringify(prev)} -> ${JSON.stringify(e)}`);
        storeEpochs.set(k, { ...e });
      }
    }
    checkReplicas();
  };
  // Replica consistency during the run: peers of a Region at the same epoch and the same
  // applied index must hold the same data in its range (state-machine safety).
  const diverged = new Set<number>();
  let lastReplicaCheck = 0;
  const checkReplicas = () => {
    if (Date.now() - lastReplicaCheck < 1000) return;
    lastReplicaCheck = Date.now();
    const byRegion = new Map<string, { storeId: number; data: string }[]>();
    for (const id of cluster.up()) {
      const s = cluster.handles.get(id)!.store;
      for (const p of s.peers.values()) {
        if (!p.initialized || diverged.has(p.regionId)) continue;
        const r = p.region;
        const k = `${p.regionId}/${r.epoch.version}/${r.epoch.confVer}/${p.apply.appliedIndex}`;
        const data = JSON.stringify(s.stateMachine.scan(r.startKey, r.endKey, 100_000).map((x) => [text(x.key), text(x.value)]));
        let list = byRegion.get(k);
        if (!list) byRegion.set(k, (list = []));
        list.push({ storeId: id, data });
      }
    }
    for (const [k, list] of byRegion) {
      const first = list[0]!;
      const other = list.find((x) => x.data !== first.data);
      if (!other) continue;
      const regionId = Number(k.split('/')[0]);
      diverged.add(regionId);
      const a = new Map(JSON.parse(first.data) as [string, string][]);
      const b = new Map(JSON.parse(other.data) as [string, string][]);
      const diff: string[] = [];
      for (const key of new Set([...a.keys(), ...b.keys()])) if (a.get(key) !== b.get(key)) diff.push(`${key}: store ${first.storeId} ${a.get(key) ?? 'absent'}, store ${other.storeId} ${b.get(key) ?? 'absent'}`);
      failures.push(`replicas diverged at ${Date.now() - START_MS} ms: Region ${regionId} (epoch/applied ${k.split('/').slice(1).join('/')}) on stores ${first.storeId} and ${other.storeId}: ${diff.slice(0, 6).join('; ')}`);
    }
  };
  let lastProgress = 0;
  const advance = async (ms: number) => {
    if (process.env.SIM_TRACE && Date.now() - lastProgress >= 1000) {
      lastProgress = Date.now();
      log(`  t=${Date.now() - START_MS} ms ops=${stats.ops} acked=${stats.acknowledged} real=${Math.round(performance.now())}`);
    }
    await clock.tickAsync(ms);
    checkPlacement();
    checkStores();
  };

  try {
    cluster.openPlacement();
    placementTimers.push(setInterval(() => !cluster.placementDown && cluster.placement.flush(), 50));
    placementTimers.push(setInterval(() => !cluster.placementDown && cluster.placement.runSchedulers(), 500));
    for (let i = 0; i < nStores; i++) {
      await cluster.startNew(i);
      await advance(SLICE_MS);
    }
    // Wait until Region 1 is replicated to 3 voters with a leader, so the workload starts on a real group.
    for (let t = 0; t < 30_000; t += SLICE_MS) {
      const r = cluster.placement.tree.all()[0];
      if (r && r.region.peers.filter((p) => p.role === 'voter').length >= Math.min(3, nStores) && r.leader) break;
      await advance(SLICE_MS);
    }
    log(`seed ${seed}: cluster up (${nStores} stores) at ${Date.now() - START_MS} ms virtual`);

    // ---------------------------------------------------------- safety phase
    let workloadOn = true;
    let valueSeq = 0;
    const clients = Array.from({ length: nClients }, (_, i) => new SimClient(i, cluster, mulberry32(seed * 31 + i + 1), history, stats, opTimeoutMs, opts.injectStaleReads ?? false));
    const workload = clients.map(async (c) => {
      const r = mulberry32(seed * 97 + c.id + 7);
      while (workloadOn) {
        const key = keyName(Math.floor(r() * nKeys));
        const t = r();
        const value = `v${c.id}.${++valueSeq}`;
        const pick = () => (r() < 0.3 ? null : `v${Math.floor(r() * nClients)}.${Math.max(1, valueSeq - Math.floor(r() * 20))}`);
        stats.ops++;
        if (t < 0.35) await c.run({ type: 'get', key }, nKeys);
        else if (t < 0.6) await c.run({ type: 'put', key, value }, nKeys);
        else if (t < 0.7) await c.run({ type: 'delete', key }, nKeys);
        else if (t < 0.9) {
          // Read the current value first half of the time, so a CAS has a fair chance of succeeding.
          const expected = r() < 0.5 ? lastValueOf(history, key) : pick();
          await c.run({ type: 'cas', key, expected, value: r() < 0.15 ? null : value }, nKeys);
        } else {
          const start = Math.floor(r() * nKeys);
          await c.run({ type: 'scan', start, end: start + 1 + Math.floor(r() * 8), limit: 1 + Math.floor(r() * 8) }, nKeys);
        }
        await new Promise((res) => setTimeout(res, Math.floor(r() * 30)));
      }
    });

    const maxDown = nStores >= 5 ? 2 : 1;
    let placementDownSince = 0;
    let lastConfChangeAt = -Infinity;
    const downSince = new Map<number, number>();
    if (faultsOn) {
      const f = {
        dropProbability: Math.floor(rng() * 6) / 100,
        duplicateProbability: Math.floor(rng() * 6) / 100,
        reorderProbability: Math.floor(rng() * 21) / 100,
        delay: [0, Math.floor(rng() * 30)] as [number, number],
      };
      cluster.network.setFaults(f);
      fault('network', JSON.stringify(f));
    }
    const safetyEnd = Date.now() + safetyMs;
    while (Date.now() < safetyEnd) {
      if (faultsOn) await injectFaults();
      await advance(SLICE_MS);
    }

    async function injectFaults(): Promise<void> {
      const now = Date.now();
      const up = cluster.up();
      const x = rng();
      if (x < 0.015 && cluster.down().length < maxDown && up.length > 0) {
        const id = up[Math.floor(rng() * up.length)]!;
        fault('crash', `store ${id}`);
        downSince.set(id, now);
        await cluster.crash(id);
      } else if (x < 0.05 && !cluster.placementDown) {
        // A store cannot start while placement is down (startStore needs it), so restarts wait.
        for (const id of cluster.down()) {
          if (now - (downSince.get(id) ?? 0) >= 1_000 + rng() * 3_000) {
            fault('restart', `store ${id}`);
            await cluster.restart(id);
          }
        }
      } else if (x < 0.06) {
        const ids = cluster.storeIds();
        const cut = 1 + Math.floor(rng() * (ids.length - 1));
        const shuffled = [...ids].sort(() => rng() - 0.5);
        const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
        fault('partition', JSON.stringify(groups));
        cluster.network.partition(groups);
      } else if (x < 0.07) {
        const ids = cluster.storeIds();
        const id = ids[Math.floor(rng() * ids.length)]!;
        fault('isolate', `store ${id}`);
        cluster.network.isolate(id);
      } else if (x < 0.1) {
        fault('heal', '');
        cluster.network.heal();
      } else if (x < 0.14) {
        await adminSplit();
      } else if (x < 0.19) {
        adminTransferLeader();
      } else if (x < 0.21 && (opts.removePeers ?? true)) {
        adminRemoveFollower();
      } else if (x < 0.225 && (opts.placementCrashes ?? true) && !cluster.placementDown) {
        fault('placement-crash', '');
        cluster.crashPlacement();
        placementDownSince = now;
      }
      if (x >= 0.225 && x < 0.26 && (opts.merges ?? true)) adminMerge();
      // Losing a disk for good is survivable only where every Region still has three voters:
      // a 2-voter Region (mid conf change) with one voter on the lost store has no quorum left.
      // Placement's view lags a just-proposed conf change, so check the stores' own views too
      // and keep a quiet period after the last conf change the sim issued.
      const allFull = () =>
        now - lastConfChangeAt > 5_000 &&
        cluster.placement.tree.all().every((i) => i.region.peers.filter((p) => p.role === 'voter').length >= 3) &&
        cluster.up().every((id) => [...cluster.handles.get(id)!.store.peers.values()].every((p) => !p.initialized || p.region.peers.filter((x) => x.role === 'voter').length >= 3));
      if (x >= 0.26 && x < 0.265 && (opts.replaceStores ?? true) && cluster.lost.size === 0 && cluster.down().length === 0 && !cluster.placementDown && allFull()) {
        // A store's disk is lost: it never comes back, and a brand-new store joins.
        const victim = up[Math.floor(rng() * up.length)]!;
        fault('replace-store', `store ${victim} lost for good; a new store joins`);
        await cluster.loseStore(victim);
        const id = await cluster.startNew(nStores + cluster.lost.size);
        faultLog.push(`${Date.now() - START_MS} new-store ${id}`);
      }
      if (cluster.placementDown && now - placementDownSince >= 500 + rng() * 1500) {
        fault('placement-restart', '');
        cluster.restartPlacement();
      }
    }

    function leaderOf(regionId: number): { region: Region; storeId: number; peerId: number } | undefined {
      for (const id of cluster.up()) {
        const p = cluster.handles.get(id)!.store.peers.get(regionId);
        if (p && p.isLeader && p.initialized) return { region: p.region, storeId: id, peerId: p.peerId };
      }
      return undefined;
    }
    function randomRegion(): Region | undefined {
      if (cluster.placementDown) return undefined;
      const all = cluster.placement.tree.all();
      return all[Math.floor(rng() * all.length)]?.region;
    }
    function admin(storeId: number, req: ClientRequest, kind: string, detail: string): void {
      const s = cluster.handles.get(storeId)?.store;
      if (!s) return;
      fault(kind, detail);
      s.handleClientRequest(req, (r) => {
        if (!r.ok) faultLog.push(`${Date.now() - START_MS} ${kind}-failed ${r.error.type}`);
      });
    }
    async function adminSplit(): Promise<void> {
      const k = bytes(keyName(1 + Math.floor(rng() * (nKeys - 1))));
      if (cluster.placementDown) return;
      const found = cluster.placement.call('getRegion', { key: k }).region;
      if (!found) return;
      const l = leaderOf(found.region.id);
      if (!l || compareKeys(l.region.startKey, k) === 0) return;
      admin(l.storeId, { id: 0, header: { regionId: l.region.id, regionEpoch: l.region.epoch }, op: 'split', splitKeys: [k] }, 'split', `region ${l.region.id} at ${text(k)}`);
    }
    function adminMerge(): void {
      if (cluster.placementDown) return;
      const all = cluster.placement.tree.all();
      if (all.length < 2) return;
      const i = Math.floor(rng() * (all.length - 1));
      const [a, b] = rng() < 0.5 ? [all[i]!, all[i + 1]!] : [all[i + 1]!, all[i]!];
      const l = leaderOf(a.region.id);
      if (!l) return;
      admin(l.storeId, { id: 0, header: { regionId: a.region.id, regionEpoch: l.region.epoch }, op: 'merge', targetRegionId: b.region.id }, 'merge', `region ${a.region.id} into ${b.region.id}`);
    }
    function adminTransferLeader(): void {
      const r = randomRegion();
      if (!r) return;
      const l = leaderOf(r.id);
      if (!l) return;
      const others = l.region.peers.filter((p) => p.role === 'voter' && p.id !== l.peerId);
      const to = others[Math.floor(rng() * others.length)];
      if (!to) return;
      admin(l.storeId, { id: 0, header: { regionId: r.id, regionEpoch: l.region.epoch }, op: 'admin', admin: { type: 'transferLeader', peer: to } }, 'transfer-leader', `region ${r.id} to store ${to.storeId}`);
    }
    function adminRemoveFollower(): void {
      const r = randomRegion();
      if (!r) return;
      const l = leaderOf(r.id);
      if (!l) return;
      const voters = l.region.peers.filter((p) => p.role === 'voter');
      if (voters.length < 3) return;
      // Same reason: never shrink a Region that has a voter on a lost store.
      if (voters.some((p) => cluster.lost.has(p.storeId))) return;
      const others = voters.filter((p) => p.id !== l.peerId);
      const victim = others[Math.floor(rng() * others.length)];
      if (!victim) return;
      lastConfChangeAt = Date.now();
      admin(
        l.storeId,
        { id: 0, header: { regionId: r.id, regionEpoch: l.region.epoch }, op: 'admin', admin: { type: 'changePeer', changeType: 1, peer: victim } },
        'conf-change',
        `region ${r.id} remove peer ${victim.id} (store ${victim.storeId}); placement re-adds a replica`,
      );
    }

    // ---------------------------------------------------------- liveness phase
    workloadOn = false;
    if (cluster.placementDown) {
      fault('placement-restart', '(liveness)');
      cluster.restartPlacement();
    }
    cluster.network.heal();
    cluster.network.setFaults({});
    for (const id of cluster.down()) {
      fault('restart', `store ${id} (liveness)`);
      await cluster.restart(id);
    }
    faultLog.push(`${Date.now() - START_MS} liveness-start`);
    // Let in-flight client operations finish (they are bounded by opTimeoutMs).
    const drainEnd = Date.now() + opTimeoutMs + 500;
    while (Date.now() < drainEnd) await advance(SLICE_MS);
    await Promise.all(workload);

    const livenessDeadline = Date.now() + livenessBoundMs;
    // Every key must become readable; the reads join the history, so an acknowledged write that was lost fails the check.
    const finals = (async () => {
      for (let i = 0; i < nKeys; i++) {
        const before = stats.acknowledged;
        const finalClient = new SimClient(nClients, cluster, mulberry32(seed + 1234567 + i), history, stats, Math.max(1, livenessDeadline - Date.now()));
        await finalClient.run({ type: 'get', key: keyName(i) }, nKeys);
        if (stats.acknowledged === before) failures.push(`liveness: final read of ${keyName(i)} did not succeed within ${livenessBoundMs} ms after healing`);
        else stats.finalReads++;
      }
    })();
    let finalsDone = false;
    void finals.then(() => (finalsDone = true));
    while (!finalsDone && Date.now() < livenessDeadline + 1000) await advance(SLICE_MS);
    await finals;

    // Placement's routing table and every replica converge.
    let converged: string | undefined = 'not checked';
    while (Date.now() < livenessDeadline) {
      converged = convergence();
      if (!converged) break;
      await advance(SLICE_MS * 5);
    }
    if (converged) failures.push(`liveness: cluster did not converge within ${livenessBoundMs} ms after healing: ${converged}`);
    if (failures.length > 0) failures.push(describeCluster());

    function describeCluster(): string {
      const lines = ['cluster state at the end:'];
      const key = (b: Uint8Array) => (b.length === 0 ? '∞' : text(b));
      for (const info of cluster.placement.tree.all()) {
        const r = info.region;
        lines.push(`  placement: region ${r.id} [${key(r.startKey)}, ${key(r.endKey)}) epoch ${r.epoch.version}/${r.epoch.confVer} peers ${r.peers.map((p) => `${p.id}@${p.storeId}${p.role === 'voter' ? '' : 'L'}`).join(',')} leader ${info.leader ? `${info.leader.id}@${info.leader.storeId}` : '-'}${info.downPeers.length ? ` down ${info.downPeers.map((d) => d.peer.id).join(',')}` : ''} operator ${JSON.stringify(cluster.placement.operators.get(r.id) ?? null)}`);
      }
      for (const st of cluster.placement.allStores()) lines.push(`  placement: store ${st.id} ${st.state} regions ${st.regionCount} leaders ${st.leaderCount}`);
      for (const id of cluster.storeIds()) {
        const h = cluster.handles.get(id);
        if (!h) {
          lines.push(`  store ${id}: down`);
          continue;
        }
        for (const p of h.store.peers.values()) {
          const r = p.region;
          const raft = p.raw.raft;
          lines.push(
            `  store ${id}: region ${r.id} peer ${p.peerId} ${p.initialized ? '' : 'UNINIT '}[${key(r.startKey)}, ${key(r.endKey)}) epoch ${r.epoch.version}/${r.epoch.confVer} peers ${r.peers.map((x) => `${x.id}@${x.storeId}${x.role === 'voter' ? '' : 'L'}`).join(',')} ` +
              `role ${raft.state} term ${raft.term} lead ${raft.leaderId} commit ${raft.raftLog.committed} last ${raft.raftLog.lastIndex()} applied ${p.apply.appliedIndex}${p.hibernating ? ' hibernating' : ''}`,
          );
        }
      }
      return lines.join('\n');
    }
    stats.regionsAtEnd = cluster.placement.tree.size;

    function convergence(): string | undefined {
      const regions = cluster.placement.tree.all().map((i) => i.region);
      const gap = rangeCovered(regions);
      if (gap) return `placement routing table: ${gap}`;
      for (const info of cluster.placement.tree.all()) {
        const r = info.region;
        if (!info.leader) return `Region ${r.id} has no leader in placement`;
        const leader = leaderOf(r.id);
        if (!leader) return `Region ${r.id} has no leader`;
        const lp = cluster.handles.get(leader.storeId)!.store.peers.get(r.id)!;
        const applied = lp.apply.appliedIndex;
        const data = JSON.stringify(cluster.handles.get(leader.storeId)!.store.stateMachine.scan(lp.region.startKey, lp.region.endKey, 100_000).map((p) => [text(p.key), text(p.value)]));
        for (const peer of lp.region.peers) {
          const s = cluster.handles.get(peer.storeId)?.store;
          const fp = s?.peers.get(r.id);
          if (!s || !fp || !fp.initialized) return `Region ${r.id}: peer ${peer.id} on store ${peer.storeId} not initialized`;
          if (fp.apply.appliedIndex !== applied) return `Region ${r.id}: peer ${peer.id} applied ${fp.apply.appliedIndex}, leader ${applied}`;
          const d = JSON.stringify(s.stateMachine.scan(lp.region.startKey, lp.region.endKey, 100_000).map((p) => [text(p.key), text(p.value)]));
          if (d !== data) {
            const a = new Map(JSON.parse(data) as [string, string][]);
            const b = new Map(JSON.parse(d) as [string, string][]);
            const diff: string[] = [];
            for (const k of new Set([...a.keys(), ...b.keys()])) if (a.get(k) !== b.get(k)) diff.push(`${k}: leader ${a.get(k) ?? 'absent'}, store ${peer.storeId} ${b.get(k) ?? 'absent'}`);
            return `Region ${r.id}: replica on store ${peer.storeId} differs from the leader's (store ${leader.storeId}) data at the same applied index ${applied}: ${diff.slice(0, 8).join('; ')}`;
          }
        }
      }
      return undefined;
    }
  } catch (e) {
    failures.push(`simulation crashed: ${(e as Error).stack ?? String(e)}`);
  } finally {
    for (const t of placementTimers) clearInterval(t);
    stats.virtualMs = Date.now() - START_MS;
    try {
      await cluster.close();
    } catch (e) {
      failures.push(`close failed: ${(e as Error).message}`);
    }
    clock.uninstall();
    rmSync(dir, { recursive: true, force: true });
  }

  const check = checkKvHistory(history, { maxStepsPerPartition: opts.maxStepsPerKey ?? 2_000_000 });
  stats.searchSteps = check.partitions.reduce((a, p) => a + p.steps, 0);
  if (check.verdict === 'illegal') failures.push(`linearizability violated: ${explainFailure(history, check)}`);
  stats.realMs = Math.round(performance.now() - realStart);
  const digest = createHash('sha256')
    .update(JSON.stringify(history, (_k, v) => (v === Infinity ? 'inf' : v)))
    .update(faultLog.join('\n'))
    .digest('hex')
    .slice(0, 16);
  return { seed, ok: failures.length === 0, failures, linearizability: check.verdict, stats, digest, history, faultLog };
}

/** lastValueOf is the latest acknowledged value a client saw or wrote for key (a plausible CAS expectation). */
function lastValueOf(history: KvOperation[], key: string): string | null {
  for (let i = history.length - 1; i >= 0; i--) {
    const o = history[i]!;
    if (o.input.key !== key || o.output === undefined) continue;
    if (o.input.type === 'get') return o.output.value ?? null;
    if (o.input.type === 'put') return o.input.value;
    if (o.input.type === 'delete') return null;
  }
  return null;
}
