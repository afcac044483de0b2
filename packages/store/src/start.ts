import { mkdirSync, readFileSync, writeFileSync, renameSync, openSync, fsyncSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { PlacementClient, PlacementError, type StoreMeta } from '@flotilla/placement';
import { WsTransport, type Transport } from '@flotilla/transport';
import { resolveConfig, type ProfileName, type StoreConfig } from './config';
import { diskUsageOf } from './disk-usage';
import { closeEngines, openEngines } from './open-engines';
import { ClientServer, type ServerTlsOptions } from './server/client-server';
import type { StoreStorageError } from './storage-fault';
import { Store, type StoreLogger } from './store';
import type { PlacementApi, StateMachine } from './engines';

export interface StoreOptions {
  dataDir: string;
  /** listen is host:port for the client API and HTTP endpoints (port 0 = any). */
  listen: string;
  /** raftListen is host:port for store-to-store raft traffic (default: same host, any port). */
  raftListen?: string;
  advertise?: string;
  placement: string;
  clusterSecret?: string;
  profile?: ProfileName;
  config?: Partial<StoreConfig>;
  tickIntervalMs?: number;
  /** now: the store's monotonic clock in ms (default performance.now; tests move it to emulate a stalled process). */
  now?: () => number;
  logger?: StoreLogger & { child?: (b: object) => StoreLogger };
  /** transportLogger receives the WebSocket transport's connection events (pino). */
  transportLogger?: import('@flotilla/transport').WsTransportOptions['logger'];
  /** transportFactory replaces the WebSocket transport (tests and simulation use LocalTransport). */
  transportFactory?: (storeId: number) => Transport;
  /**
   * preSplitKeys: when this store bootstraps a new cluster, Region 1 is
   * split at these keys right away (TiKV's pre-split), so a bulk load
   * starts spread over many Regions.
   */
  preSplitKeys?: Uint8Array[];
  /** placementClient replaces the WebSocket PlacementClient (simulation runs placement in process). */
  placementClient?: PlacementApi;
  /**
   * clientToken: when set, the client API (ws /client) and /status, /metrics
   * require `Authorization: Bearer <clientToken>` (/health stays open).
   */
  clientToken?: string;
  /** placementToken is sent to placement when it requires one (default: clientToken, one cluster token). */
  placementToken?: string;
  /** enableAdminApi accepts `op: 'admin'` on the client API (tests, tools); default false. split and merge are always allowed. */
  enableAdminApi?: boolean;
  /**
   * tls: serve the client API over https/wss with this certificate, use it
   * for the store-to-store transport too, and dial placement with wss,
   * trusting caPath (default: the system roots).
   */
  tls?: ServerTlsOptions;
}

export interface StoreHandle {
  readonly storeId: number;
  readonly address: string;
  readonly raftAddress: string;
  readonly store: Store;
  /**
   * halted settles when a storage failure (a full disk, a damaged file)
   * stopped the store; it never settles otherwise. The host should close
   * the handle and exit (the CLI: exit code 4 for a full disk, 3 otherwise).
   */
  readonly halted: Promise<StoreStorageError>;
  close(): Promise<void>;
}

interface Ident {
  storeId: number;
}

function parseHostPort(s: string, what: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const host = i > 0 ? s.slice(0, i) : '127.0.0.1';
  const port = Number(i >= 0 ? s.slice(i + 1) : s);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${what}: expected host:port, got "${s}"`);
  return { host, port };
}

/** writeFileDurably writes via a temp file, fsync and rename, so a crash leaves the old or the new file. */
function writeFileDurably(path: string, data: string): void {
  const tmp = path + '.tmp';
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}

/**
 * startStore opens (or creates) a store in dataDir, joins the cluster
 * through placement (bootstrapping it if this is the first store), recovers
 * every Region peer and starts serving. See API.md.
 */
export async function startStore(opts: StoreOptions): Promise<StoreHandle> {
  const logger: StoreLogger = opts.logger ?? { debug() {}, info() {}, warn() {}, error() {} };
  const config = resolveConfig(opts.profile ?? 'production', { ...(opts.config ?? {}), ...(opts.tickIntervalMs ? { tickIntervalMs: opts.tickIntervalMs } : {}) });
  mkdirSync(opts.dataDir, { recursive: true });
  const listen = parseHostPort(opts.listen, '--listen');
  const raftListen = parseHostPort(opts.raftListen ?? `${listen.host}:0`, '--raft-listen');
  // The databases first: a damaged file refuses the start before anything
  // is asked of placement or bound (a StoreStorageError naming the file).
  const engines = await openEngines(opts.dataDir, config, logger);
  const { log, sm } = engines;

  const pd: PlacementApi = opts.placementClient ?? newPlacementClient(opts);
  const storeId = (await loadOrAllocateIdentity(opts.dataDir, pd, logger)).storeId;

  let store: Store | undefined;
  const server = new ClientServer(() => store, logger, {
    maxPendingPerConnection: config.maxPendingRequestsPerConnection,
    maxConnections: config.maxClientConnections,
    ...(opts.clientToken ? { token: opts.clientToken } : {}),
    enableAdminApi: opts.enableAdminApi ?? false,
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  const bound = await server.listen(listen.host, listen.port);
  const address = opts.advertise ?? `${bound.host}:${bound.port}`;

  // Stores of different clusters must never talk: the transport handshake checks this ID.
  const clusterId = pd.getClusterInfo ? String((await pd.getClusterInfo()).clusterId) : 'flotilla';
  const transport: Transport = opts.transportFactory ? opts.transportFactory(storeId) : newTransport(opts, storeId, clusterId, raftListen, pd);
  await transport.start();
  const raftAddress = transport instanceof WsTransport ? transport.address : `local:${storeId}`;
  const meta: StoreMeta = { id: storeId, address, labels: { raftAddress } };
  let onHalt: (failure: StoreStorageError) => void = () => {};
  const halted = new Promise<StoreStorageError>((resolve) => (onHalt = resolve));
  const diskUsage = () => diskUsageOf(opts.dataDir);
  store = new Store({ storeId, config, logEngine: log, sm, transport, placement: pd, logger, diskUsage, onHalt, ...(opts.now ? { now: opts.now } : {}) });
  const bootstrapped = await bootstrapIfNeeded(store, sm, pd, meta, logger);
  await pd.putStore(meta);
  store.recover();
  store.start();
  if (bootstrapped && opts.preSplitKeys && opts.preSplitKeys.length > 0) await store.preSplit(opts.preSplitKeys);
  logger.info({ storeId, address, raftAddress, regions: store.peers.size }, 'store started');

  const profiler = process.env.FLOTILLA_CPU_PROFILE_DIR ? await startCpuProfile() : undefined;
  let closing: Promise<void> | undefined;
  return {
    storeId,
    address,
    raftAddress,
    store,
    halted,
    close: () =>
      (closing ??= (async () => {
        if (profiler) await profiler.stop(join(process.env.FLOTILLA_CPU_PROFILE_DIR!, `store-${storeId}-${process.pid}.cpuprofile`));
        await store!.close();
        await server.close();
        await transport.close();
        pd.close();
        await closeEngines(engines, logger);
      })()),
  };
}

function newPlacementClient(opts: StoreOptions): PlacementClient {
  const placementToken = opts.placementToken ?? opts.clientToken;
  return new PlacementClient({
    addresses: opts.placement.split(',').map((s) => s.trim()).filter(Boolean),
    ...(placementToken ? { token: placementToken } : {}),
    ...(opts.tls ? { tls: { ...(opts.tls.caPath ? { caPath: opts.tls.caPath } : {}) } } : {}),
  });
}

/** loadOrAllocateIdentity reads store.json, or asks placement for a store ID and writes it durably. */
async function loadOrAllocateIdentity(dataDir: string, pd: PlacementApi, logger: StoreLogger): Promise<Ident> {
  const identPath = join(dataDir, 'store.json');
  if (existsSync(identPath)) {
    let ident: Ident;
    try {
      ident = JSON.parse(readFileSync(identPath, 'utf8')) as Ident;
    } catch (e) {
      throw new Error(`store identity file ${identPath} is unreadable: ${(e as Error).message}`);
    }
    if (!Number.isSafeInteger(ident.storeId) || ident.storeId <= 0) throw new Error(`store identity file ${identPath} has no valid storeId`);
    return ident;
  }
  const [id] = await pd.allocId(1);
  const ident = { storeId: id! };
  writeFileDurably(identPath, JSON.stringify(ident));
  logger.info({ storeId: ident.storeId }, 'allocated store id');
  return ident;
}

/** newTransport is the WebSocket transport between stores; peer addresses come from placement (cached for when it is away). */
function newTransport(opts: StoreOptions, storeId: number, clusterId: string, raftListen: { host: string; port: number }, pd: PlacementApi): WsTransport {
  const addressCache = new Map<number, string>();
  return new WsTransport({
    storeId,
    clusterId,
    secret: opts.clusterSecret ?? 'flotilla-dev-secret',
    ...(opts.transportLogger ? { logger: opts.transportLogger } : {}),
    ...(opts.tls ? { tls: { certPath: opts.tls.certPath, keyPath: opts.tls.keyPath, ...(opts.tls.caPath ? { caPath: opts.tls.caPath } : {}) } } : {}),
    host: raftListen.host,
    port: raftListen.port,
    resolveAddress: async (id) => {
      try {
        const s = await pd.getStore(id);
        const a = s?.labels?.raftAddress;
        if (a) addressCache.set(id, a);
        return a ?? addressCache.get(id);
      } catch {
        return addressCache.get(id);
      }
    },
  });
}

/**
 * bootstrapIfNeeded makes the first store of a new cluster create Region 1.
 * As in TiKV, the Region is written locally first and then registered with
 * placement; if another store won the race, the local copy is dropped.
 */
async function bootstrapIfNeeded(store: Store, sm: StateMachine, pd: PlacementApi, meta: StoreMeta, logger: StoreLogger): Promise<boolean> {
  if (await pd.isBootstrapped()) return false;
  const local = sm.loadRegions().filter((r) => r.local.state !== 'tombstone');
  let region = local.length === 1 && local[0]!.local.region.epoch.version === 1 ? local[0]!.local.region : undefined;
  if (local.length > 0 && !region) return false; // this store already has data: not a fresh bootstrap
  if (!region) {
    const [regionId, peerId] = await pd.allocId(2);
    region = Store.bootstrapRegion(meta.id, regionId!, peerId!);
    store.writeInitialRegion(region);
  }
  try {
    await pd.bootstrap(meta, region);
    logger.info({ regionId: region.id }, 'bootstrapped the cluster');
    return true;
  } catch (e) {
    if (e instanceof PlacementError && e.code === 'AlreadyBootstrapped') {
      const known = await pd.getRegionById(region.id);
      const ours = known?.region.peers.some((p) => p.storeId === meta.id && p.id === region!.peers[0]!.id);
      if (!ours) {
        logger.info({}, 'another store bootstrapped the cluster; dropping local bootstrap region');
        store.removeInitialRegion(region.id);
      }
      return false;
    }
    throw e;
  }
}

/**
 * startCpuProfile records a V8 CPU profile of this store process until it
 * closes (FLOTILLA_CPU_PROFILE_DIR=dir): how to find where a store spends
 * its time under a benchmark, since --cpu-prof cannot go through NODE_OPTIONS.
 */
async function startCpuProfile(): Promise<{ stop(path: string): Promise<void> }> {
  const { Session } = await import('node:inspector');
  const { writeFileSync: write } = await import('node:fs');
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => session.post(method, params ?? {}, (e, r) => (e ? reject(e) : resolve(r))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return {
    async stop(path: string) {
      const r = (await post('Profiler.stop')) as { profile: unknown };
      write(path, JSON.stringify(r.profile));
      session.disconnect();
    },
  };
}
