// @flotilla/store/testing — a whole cluster inside the test process (etcd's
// `embed`): placement and N stores on free loopback ports, each in its own
// temporary directory, and a connected FlotillaClient. Everything is real
// (SQLite files, WebSocket sockets on 127.0.0.1); close() stops it all and
// removes the directories, so a test runner exits with no handle left open.
//
//   const cluster = await startTestCluster({ stores: 3 });
//   await cluster.client.put('k', 'v');
//   await cluster.close();
//
// docs/testing.md shows it in a vitest suite.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient, type FlotillaClientOptions } from '@flotilla/client';
import { startPlacementServer, type PlacementServer, type PlacementServerOptions } from '@flotilla/placement';
import { utf8, type Logger } from '@flotilla/proto';
import type { ProfileName, StoreConfig } from './config';
import { startStore, type StoreHandle, type StoreOptions } from './start';

export interface TestClusterOptions {
  /** stores: how many stores to start (default 3). */
  stores?: number;
  /** maxReplicas: voters per Region placement keeps (default min(3, stores)). */
  maxReplicas?: number;
  /** splitKeys pre-splits the key space at these keys before startTestCluster returns (one Region more per distinct key). */
  splitKeys?: (string | Uint8Array)[];
  /** profile: the stores' tuning profile (default 'production': Regions split at 96 MiB, so a test sees no split it did not ask for; 'demo' splits at 64 KiB). */
  profile?: ProfileName;
  /** config overrides the profile, over TEST_CLUSTER_CONFIG (ticks of 50 ms, Region heartbeats every 250 ms, so elections and replication settle in a second or two). */
  config?: Partial<StoreConfig>;
  /** logger receives every store's (bound with `store: i`) and placement's events; default silent. A pino logger fits. */
  logger?: Logger;
  /** token: the cluster requires it on the client API and placement (as `flotilla up --token`); the returned client sends it. */
  token?: string;
  /** tmpDir: where the cluster's temporary directory is made (default os.tmpdir()). */
  tmpDir?: string;
  /** keepData: close() leaves the directory in place (to read the SQLite files after a failure). */
  keepData?: boolean;
  /** startTimeoutMs bounds the wait for every Region to have a leader and maxReplicas voters (default 30 s). */
  startTimeoutMs?: number;
  /** client: options of the returned client and of connect() (placement and token come from the cluster). */
  client?: Omit<FlotillaClientOptions, 'placement' | 'routes' | 'token'>;
  /** placement: more placement server options (schedulers, intervals; scheduleIntervalMs defaults to 100 here); dataDir, listen and token are the cluster's. */
  placement?: Partial<Omit<PlacementServerOptions, 'dataDir' | 'listen' | 'token'>>;
  /** store: more options for store `index` (0-based), e.g. a transportFactory; dataDir, listen and placement are the cluster's. */
  store?: (index: number) => Partial<StoreOptions>;
}

/** TestCluster is a running in-process cluster; close() stops it. */
export interface TestCluster {
  /** client is connected to the cluster; close() closes it. */
  readonly client: FlotillaClient;
  /** placementAddress is host:port of placement, what FlotillaClient.connect({ placement }) and `flotilla --placement` take. */
  readonly placementAddress: string;
  readonly placement: PlacementServer;
  /** stores: the running stores in start order; an entry is undefined while stopStore(i) has it stopped. */
  readonly stores: readonly (StoreHandle | undefined)[];
  /** dataDir holds placement/ and store-<i>/ (removed by close() unless keepData). */
  readonly dataDir: string;
  /** connect opens another client (closed by close()). */
  connect(options?: Omit<FlotillaClientOptions, 'placement' | 'routes' | 'token'>): Promise<FlotillaClient>;
  /** stopStore closes store `index` (its data stays), to test what happens while it is down. */
  stopStore(index: number): Promise<void>;
  /** restartStore starts store `index` again on its data (after stopStore, or closing it first). */
  restartStore(index: number): Promise<StoreHandle>;
  /** close stops the clients, the stores, then placement, and removes dataDir; idempotent. */
  close(): Promise<void>;
}

/** TEST_CLUSTER_CONFIG: what a test cluster changes in the profile, so start-up and failover take a second or two instead of tens. */
export const TEST_CLUSTER_CONFIG: Partial<StoreConfig> = { tickIntervalMs: 50, storeHeartbeatIntervalMs: 1_000, regionHeartbeatIntervalMs: 250 };

const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * startTestCluster starts placement and `stores` stores in this process and
 * resolves once every Region has a leader and its voters (so the first
 * request of a test does not race the election), with a connected client.
 * A failure part way stops what had started and removes the directory
 * before it rethrows.
 */
export async function startTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const n = options.stores ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError(`startTestCluster: stores must be an integer between 1 and 64, got ${n}`);
  const maxReplicas = options.maxReplicas ?? Math.min(3, n);
  if (!Number.isInteger(maxReplicas) || maxReplicas < 1 || maxReplicas > n) throw new RangeError(`startTestCluster: maxReplicas must be an integer between 1 and stores (${n}), got ${maxReplicas}`);
  const dataDir = mkdtempSync(join(options.tmpDir ?? tmpdir(), 'flotilla-test-cluster-'));
  const parts = new Parts(dataDir, options);
  try {
    const logger = options.logger ?? SILENT;
    const placement = await startPlacementServer({
      scheduleIntervalMs: 100,
      ...options.placement,
      dataDir: join(dataDir, 'placement'),
      listen: '127.0.0.1:0',
      maxReplicas,
      logger: logger.child?.({ component: 'placement' }) ?? logger,
      ...(options.token ? { token: options.token } : {}),
    });
    parts.placement = placement;
    parts.storeOptions = Array.from({ length: n }, (_, i) => storeOptionsFor(i, dataDir, placement.address, options));
    // The first store bootstraps the cluster (and pre-splits it); the others join it side by side.
    parts.stores[0] = await startStore(parts.storeOptions[0]!);
    const rest = await Promise.allSettled(parts.storeOptions.slice(1).map((o) => startStore(o)));
    rest.forEach((r, i) => r.status === 'fulfilled' && (parts.stores[i + 1] = r.value));
    const failed = rest.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const client = await parts.connect();
    const wanted = new Set((options.splitKeys ?? []).map((k) => Buffer.from(typeof k === 'string' ? utf8(k) : k).toString('hex'))).size + 1;
    await waitSettled(client, wanted, maxReplicas, options.startTimeoutMs ?? 30_000);
    return parts.cluster(client);
  } catch (err) {
    await parts.close();
    throw err;
  }
}

function storeOptionsFor(i: number, dataDir: string, placement: string, options: TestClusterOptions): StoreOptions {
  const logger = options.logger ?? SILENT;
  const extra = options.store?.(i) ?? {};
  return {
    profile: options.profile ?? 'production',
    logger: logger.child?.({ store: i }) ?? logger,
    ...(i === 0 && options.splitKeys?.length ? { preSplitKeys: options.splitKeys.map((k) => (typeof k === 'string' ? utf8(k) : k)) } : {}),
    ...(options.token ? { clientToken: options.token } : {}),
    ...extra,
    config: { ...TEST_CLUSTER_CONFIG, ...options.config, ...extra.config },
    dataDir: join(dataDir, `store-${i}`),
    listen: '127.0.0.1:0',
    placement,
  };
}

/** waitSettled polls placement until it knows `regions` Regions, each with a leader and maxReplicas voters. */
async function waitSettled(client: FlotillaClient, regions: number, maxReplicas: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer from placement yet';
  for (;;) {
    try {
      const rs = await client.regions();
      const unsettled = rs.filter((r) => !r.leader || r.region.peers.filter((p) => p.role === 'voter').length !== maxReplicas);
      if (rs.length >= regions && unsettled.length === 0) return;
      last = `${rs.length} of ${regions} Regions known, ${unsettled.length} without a leader or ${maxReplicas} voters`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`startTestCluster: the cluster did not settle within ${timeoutMs} ms (${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Parts is what a test cluster has started so far, so a failed start and close() stop the same things. */
class Parts {
  placement: PlacementServer | undefined;
  storeOptions: StoreOptions[] = [];
  readonly stores: (StoreHandle | undefined)[] = [];
  readonly clients: FlotillaClient[] = [];
  private closing: Promise<void> | undefined;

  constructor(
    readonly dataDir: string,
    private readonly options: TestClusterOptions,
  ) {}

  async connect(more: TestClusterOptions['client'] = {}): Promise<FlotillaClient> {
    const placement = this.placement!.address;
    const client = await FlotillaClient.connect({ ...this.options.client, ...more, placement, ...(this.options.token ? { token: this.options.token } : {}) });
    this.clients.push(client);
    return client;
  }

  cluster(client: FlotillaClient): TestCluster {
    const placement = this.placement!;
    const storeAt = (i: number): StoreOptions => {
      const o = this.storeOptions[i];
      if (!o) throw new RangeError(`no store ${i}: the cluster has stores 0..${this.storeOptions.length - 1}`);
      return o;
    };
    return {
      client,
      placementAddress: placement.address,
      placement,
      stores: this.stores,
      dataDir: this.dataDir,
      connect: (o) => this.connect(o),
      stopStore: async (i) => {
        storeAt(i);
        await this.stores[i]?.close();
        this.stores[i] = undefined;
      },
      restartStore: async (i) => {
        const o = storeAt(i);
        await this.stores[i]?.close();
        this.stores[i] = undefined;
        return (this.stores[i] = await startStore(o));
      },
      close: () => this.close(),
    };
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      for (const c of this.clients) c.close();
      await Promise.all(this.stores.map((s) => s?.close()));
      await this.placement?.close();
      if (!this.options.keepData) rmSync(this.dataDir, { recursive: true, force: true });
    })());
  }
}
