import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PlacementClient, PlacementError, type StoreMeta } from '@flotilla/placement';
import { WsTransport, type Transport } from '@flotilla/transport';
import { AddressBook, resolveFromPlacement } from './address-book';
import { clusterSecret, DEVELOPMENT_CLUSTER_SECRET, loopbackOnly, type NamedAddress } from './cluster-secret';
import { checkAdvertised } from './advertise';
import { resolveConfig, type ProfileName, type StoreConfig } from './config';
import { diskUsageOf } from './disk-usage';
import { joinCluster, markRegistered, type Joined } from './identity';
import { closeEngines, openEngines } from './open-engines';
import { keepRegistering } from './registration';
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
  /** advertiseRaft is the raft address other stores dial (default: the bound raft address); required when --raft-listen binds every interface. */
  advertiseRaft?: string;
  placement: string;
  /**
   * clusterSecret authenticates this store to its peers (the raft
   * handshake); the same on every store. Without it the store uses the
   * public development secret, and startStore refuses (StoreStartError
   * 'InsecureSecret') unless every address it binds and dials is loopback.
   */
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
  /** tlsClientAuth: the raft port demands a certificate signed by tls.caPath (mutual TLS; needs tls.caPath). */
  tlsClientAuth?: boolean;
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

function parseHostPort(s: string, what: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const host = i > 0 ? s.slice(0, i) : '127.0.0.1';
  const port = Number(i >= 0 ? s.slice(i + 1) : s);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${what}: expected host:port, got "${s}"`);
  return { host, port };
}

/**
 * startStore opens (or creates) a store in dataDir, joins the cluster
 * through placement (bootstrapping it if this is the first store), recovers
 * every Region peer and starts serving. A store that has served before
 * starts from its own data when placement does not answer, and registers
 * in the background. See API.md and docs/operations.md ("Start-up").
 *
 * Refusals of the configuration or the data dir are StoreStartError,
 * thrown before anything is written: the development secret off loopback
 * (cluster-secret.ts), a data dir of another cluster (identity.ts).
 */
export async function startStore(opts: StoreOptions): Promise<StoreHandle> {
  const logger: StoreLogger = opts.logger ?? { debug() {}, info() {}, warn() {}, error() {} };
  const config = resolveConfig(opts.profile ?? 'production', { ...(opts.config ?? {}), ...(opts.tickIntervalMs ? { tickIntervalMs: opts.tickIntervalMs } : {}) });
  const listen = parseHostPort(opts.listen, '--listen');
  const raftListen = parseHostPort(opts.raftListen ?? `${listen.host}:0`, '--raft-listen');
  const secret = opts.transportFactory ? undefined : clusterSecret(opts.clusterSecret, boundAndDialed(opts, raftListen));
  checkAdvertised(opts, listen.host, raftListen.host);
  mkdirSync(opts.dataDir, { recursive: true });
  const pd: PlacementApi = opts.placementClient ?? newPlacementClient(opts);
  // Which cluster this dir belongs to comes first: it reads store.json and asks placement, and writes nothing if it refuses.
  const joined = await joinCluster(opts.dataDir, pd, logger, opts.placement).catch(failedStart(pd));
  // The databases next: a damaged file refuses the start before any port is bound (a StoreStorageError naming the file).
  const engines = await openEngines(opts.dataDir, config, logger).catch(failedStart(pd));
  const net = await startNetwork(opts, config, logger, joined, pd, secret, listen, raftListen).catch(failedStart(pd, async () => closeEngines(engines, logger)));
  let onHalt: (failure: StoreStorageError) => void = () => {};
  const halted = new Promise<StoreStorageError>((resolve) => (onHalt = resolve));
  const diskUsage = () => diskUsageOf(opts.dataDir);
  const store = new Store({ storeId: joined.storeId, config, logEngine: engines.log, sm: engines.sm, transport: net.transport, placement: pd, logger, diskUsage, onHalt, ...(opts.now ? { now: opts.now } : {}) });
  net.attach(store);
  const { bootstrapped, stopBackground } = await register(opts, config, logger, joined, pd, store, engines.sm, net);
  store.recover();
  store.start();
  if (bootstrapped && opts.preSplitKeys && opts.preSplitKeys.length > 0) await store.preSplit(opts.preSplitKeys);
  logger.info({ storeId: joined.storeId, address: net.meta.address, raftAddress: net.raftAddress, regions: store.peers.size, placementReachable: joined.online }, 'store started');

  const profiler = process.env.FLOTILLA_CPU_PROFILE_DIR ? await startCpuProfile() : undefined;
  let closing: Promise<void> | undefined;
  return {
    storeId: joined.storeId,
    address: net.meta.address,
    raftAddress: net.raftAddress,
    store,
    halted,
    close: () =>
      (closing ??= (async () => {
        stopBackground();
        if (profiler) await profiler.stop(join(process.env.FLOTILLA_CPU_PROFILE_DIR!, `store-${joined.storeId}-${process.pid}.cpuprofile`));
        await store.close();
        await net.close();
        pd.close();
        await closeEngines(engines, logger);
      })()),
  };
}

/** failedStart is a catch handler for a failed start: it closes what was opened, then rethrows. */
function failedStart(pd: PlacementApi, more: () => Promise<void> = async () => {}): (e: unknown) => Promise<never> {
  return async (e) => {
    await more();
    pd.close();
    throw e;
  };
}

/** boundAndDialed lists every address the store binds, announces or dials, named by its flag, for the development-secret rule. */
function boundAndDialed(opts: StoreOptions, raftListen: { host: string; port: number }): NamedAddress[] {
  return [
    { what: '--listen', address: opts.listen },
    { what: opts.raftListen ? '--raft-listen' : '--raft-listen (default: the --listen host)', address: `${raftListen.host}:${raftListen.port}` },
    ...(opts.advertise ? [{ what: '--advertise', address: opts.advertise }] : []),
    ...(opts.advertiseRaft ? [{ what: '--advertise-raft', address: opts.advertiseRaft }] : []),
    ...(opts.placementClient ? [] : placementAddresses(opts).map((address) => ({ what: '--placement', address }))),
  ];
}

const placementAddresses = (opts: StoreOptions): string[] => opts.placement.split(',').map((s) => s.trim()).filter(Boolean);

function newPlacementClient(opts: StoreOptions): PlacementClient {
  const placementToken = opts.placementToken ?? opts.clientToken;
  return new PlacementClient({
    addresses: placementAddresses(opts),
    ...(placementToken ? { token: placementToken } : {}),
    ...(opts.tls ? { tls: { ...(opts.tls.caPath ? { caPath: opts.tls.caPath } : {}) } } : {}),
  });
}

/** Network is the store's listeners: the client API server and the transport, and what placement is told about them. */
interface Network {
  transport: Transport;
  raftAddress: string;
  meta: StoreMeta;
  /** book: the peers' raft addresses kept in the data dir (WebSocket transport only). */
  book: AddressBook | undefined;
  attach(store: Store): void;
  close(): Promise<void>;
}

/** startNetwork binds the client API and starts the transport; the client API answers "starting" until attach(). */
async function startNetwork(
  opts: StoreOptions,
  config: StoreConfig,
  logger: StoreLogger,
  joined: Joined,
  pd: PlacementApi,
  secret: string | undefined,
  listen: { host: string; port: number },
  raftListen: { host: string; port: number },
): Promise<Network> {
  let store: Store | undefined;
  const server = new ClientServer(() => store, logger, {
    maxPendingPerConnection: config.maxPendingRequestsPerConnection,
    maxConnections: config.maxClientConnections,
    maxBufferedBytesPerConnection: config.maxBufferedBytesPerConnection,
    headersTimeoutMs: config.clientHeadersTimeoutMs,
    ...(opts.clientToken ? { token: opts.clientToken } : {}),
    enableAdminApi: opts.enableAdminApi ?? false,
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  const bound = await server.listen(listen.host, listen.port);
  const address = opts.advertise ?? `${bound.host}:${bound.port}`;
  const book = opts.transportFactory ? undefined : AddressBook.open(opts.dataDir, joined.storeId, logger);
  // Stores of different clusters must never talk: the transport handshake checks this ID.
  const transport: Transport = opts.transportFactory ? opts.transportFactory(joined.storeId) : newTransport(opts, config, joined, secret!, raftListen, pd, book!, logger);
  try {
    await transport.start();
  } catch (e) {
    await server.close();
    throw e;
  }
  const raftAddress = transport instanceof WsTransport ? (opts.advertiseRaft ?? transport.address) : `local:${joined.storeId}`;
  return {
    transport,
    raftAddress,
    meta: { id: joined.storeId, address, labels: { raftAddress } },
    book,
    attach: (s) => (store = s),
    close: async () => {
      await server.close();
      await transport.close();
    },
  };
}

/** newTransport is the WebSocket transport between stores; peer addresses come from placement, or from the address book while it is away. */
function newTransport(opts: StoreOptions, config: StoreConfig, joined: Joined, secret: string, raftListen: { host: string; port: number }, pd: PlacementApi, book: AddressBook, logger: StoreLogger): WsTransport {
  const resolve = resolveFromPlacement(pd, book);
  return new WsTransport({
    storeId: joined.storeId,
    clusterId: joined.clusterId,
    secret,
    ...(opts.transportLogger ? { logger: opts.transportLogger } : {}),
    ...(opts.tls
      ? { tls: { certPath: opts.tls.certPath, keyPath: opts.tls.keyPath, ...(opts.tls.caPath ? { caPath: opts.tls.caPath } : {}), requireClientCert: opts.tlsClientAuth ?? false } }
      : {}),
    host: raftListen.host,
    port: raftListen.port,
    maxInboundConnections: config.maxRaftConnections,
    resolveAddress: secret === DEVELOPMENT_CLUSTER_SECRET ? loopbackOnly(resolve, logger) : resolve,
  });
}

/**
 * register tells placement where the store serves. With placement
 * answering: bootstrap the cluster if this is its first store, register,
 * clear store.json's `pending`, fill the address book. Without: keep
 * trying in the background (registration.ts). Either way the address book
 * is kept fresh from then on. stopBackground ends both timers.
 */
async function register(
  opts: StoreOptions,
  config: StoreConfig,
  logger: StoreLogger,
  joined: Joined,
  pd: PlacementApi,
  store: Store,
  sm: StateMachine,
  net: Network,
): Promise<{ bootstrapped: boolean; stopBackground: () => void }> {
  let bootstrapped = false;
  let stopRegistering = (): void => {};
  if (joined.online) {
    bootstrapped = await bootstrapIfNeeded(store, sm, pd, net.meta, logger);
    await pd.putStore(net.meta);
    markRegistered(opts.dataDir, joined);
    await net.book?.refresh(pd);
  } else {
    stopRegistering = keepRegistering({ pd, logger, meta: net.meta, clusterId: joined.clusterId, book: net.book, placement: opts.placement }).stop;
  }
  const stopRefreshing = net.book?.keepFresh(pd, config.storeHeartbeatIntervalMs) ?? ((): void => {});
  return {
    bootstrapped,
    stopBackground: () => {
      stopRegistering();
      stopRefreshing();
    },
  };
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
