import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterInfo } from '@flotilla/placement';
import type { StoreLogger } from './context';
import { writeFileDurably } from './durable-file';
import type { PlacementApi } from './engines';
import { untilPlacementAnswers, isPlacementUnreachable } from './placement-wait';
import { StoreStartError } from './start-error';

// identity.ts: which store this data dir is, and of which cluster.
//
// store.json holds {storeId, clusterId}: the store ID placement issued
// when the dir was new, and placement's cluster ID at that time, plus
// `pending: true` from the moment the ID is taken until placement has
// registered the store (a crash in between leaves a store that may still
// register; no Region can be on it yet). On every start the data dir must
// still match placement: same cluster, and a store ID that cluster
// registered (and did not remove). A mismatch is a copied or misplaced
// dir; the store refuses before it opens or writes anything, since joining
// would corrupt the cluster (a second store with an existing ID, or a
// second cluster bootstrapped from another's data). A registered store
// whose placement does not answer starts from its own data; any other
// waits for placement. joinCluster therefore runs before the databases
// are opened.

export const IDENTITY_FILE = 'store.json';
const DATABASES = ['raft.db', 'kv.db'];

/** StoreIdentity is store.json. clusterId is missing in files written before it was recorded (and with a placement that has no cluster ID). */
export interface StoreIdentity {
  storeId: number;
  clusterId?: number;
  /** pending: the ID was taken but placement has not registered the store yet. */
  pending?: true;
}

/** Joined is the outcome of start-up's contact with placement. */
export interface Joined {
  storeId: number;
  /** clusterId as the transport handshake spells it. */
  clusterId: string;
  /** cluster: placement's answer; undefined when it did not answer (the store starts from its own data) or has no cluster info. */
  cluster: ClusterInfo | undefined;
  /** online: placement answered, so start-up registers the store now; otherwise it keeps retrying in the background. */
  online: boolean;
  /** ident is store.json as start-up left it (markRegistered clears `pending` once placement has the store). */
  ident: StoreIdentity;
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** readIdentity reads store.json: undefined when there is none; StoreStartError when it is not valid. */
export function readIdentity(dataDir: string): StoreIdentity | undefined {
  const path = join(dataDir, IDENTITY_FILE);
  if (!existsSync(path)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new StoreStartError('UnreadableIdentity', `store identity file ${path} is unreadable: ${(e as Error).message}; restore it from a backup of this data dir`);
  }
  const r = raw as { storeId?: unknown; clusterId?: unknown; pending?: unknown } | null;
  if (!r || !isId(r.storeId)) throw new StoreStartError('UnreadableIdentity', `store identity file ${path} has no valid storeId; restore it from a backup of this data dir`);
  if (r.clusterId !== undefined && !isId(r.clusterId)) throw new StoreStartError('UnreadableIdentity', `store identity file ${path} has an invalid clusterId; restore it from a backup of this data dir`);
  return { storeId: r.storeId, ...(r.clusterId !== undefined ? { clusterId: r.clusterId } : {}), ...(r.pending === true ? { pending: true as const } : {}) };
}

export function writeIdentity(dataDir: string, ident: StoreIdentity): void {
  writeFileDurably(join(dataDir, IDENTITY_FILE), JSON.stringify(ident));
}

/** markRegistered drops `pending` from store.json once placement has registered the store (a no-op after that). */
export function markRegistered(dataDir: string, joined: Joined): void {
  if (!joined.ident.pending) return;
  const { pending: _, ...registered } = joined.ident;
  writeIdentity(dataDir, registered);
  joined.ident = registered;
}

/** hasDatabases: the data dir already holds a store's databases (it has served). */
export function hasDatabases(dataDir: string): boolean {
  return DATABASES.some((f) => existsSync(join(dataDir, f)));
}

/**
 * joinCluster settles this data dir's identity with placement before the
 * store opens anything: a new dir waits for placement and gets a store ID;
 * a known one is checked against placement, or, when placement does not
 * answer, starts from what store.json says. Throws StoreStartError, having
 * changed nothing, when the dir does not belong to placement's cluster.
 */
export async function joinCluster(dataDir: string, pd: PlacementApi, logger: StoreLogger, placement: string): Promise<Joined> {
  const ident = readIdentity(dataDir);
  const databases = hasDatabases(dataDir);
  if (!ident && databases) {
    throw new StoreStartError('MissingIdentity', `${dataDir} holds a store's databases but no ${IDENTITY_FILE}, so it is not a store any cluster issued; restore ${IDENTITY_FILE} from a backup of this dir, or give the store an empty --data-dir`);
  }
  if (!ident) return newStore(dataDir, pd, logger, placement);
  let cluster: ClusterInfo | undefined;
  try {
    cluster = pd.getClusterInfo ? await pd.getClusterInfo() : undefined;
  } catch (e) {
    if (!isPlacementUnreachable(e)) throw e;
    if (ident.clusterId !== undefined && !ident.pending && databases) {
      logger.warn({ placement, storeId: ident.storeId, clusterId: ident.clusterId, err: (e as Error).message }, 'placement unreachable; starting from local data and registering in the background');
      return { storeId: ident.storeId, clusterId: String(ident.clusterId), cluster: undefined, online: false, ident };
    }
    // Never registered, no data yet, or no recorded cluster: nothing to serve, so wait like a new store.
    cluster = await untilPlacementAnswers(() => pd.getClusterInfo!(), logger, { placement, what: 'confirm which cluster this store belongs to' });
  }
  await checkIdentity(dataDir, ident, cluster, databases, pd, placement);
  let checked = ident;
  if (cluster && ident.clusterId === undefined) {
    checked = { ...ident, clusterId: cluster.clusterId };
    writeIdentity(dataDir, checked);
    logger.warn({ storeId: ident.storeId, clusterId: cluster.clusterId }, `${IDENTITY_FILE} recorded no cluster ID (an older version wrote it); recorded placement's`);
  }
  return { storeId: ident.storeId, clusterId: cluster ? String(cluster.clusterId) : 'flotilla', cluster, online: true, ident: checked };
}

/** newStore waits for placement (a new store has nothing to serve without it), takes a store ID and writes store.json. */
async function newStore(dataDir: string, pd: PlacementApi, logger: StoreLogger, placement: string): Promise<Joined> {
  const { cluster, storeId } = await untilPlacementAnswers(
    async () => {
      const info = pd.getClusterInfo ? await pd.getClusterInfo() : undefined;
      const [id] = await pd.allocId(1);
      return { cluster: info, storeId: id! };
    },
    logger,
    { placement, what: 'allocate a store ID for this new store' },
  );
  const ident: StoreIdentity = { storeId, ...(cluster ? { clusterId: cluster.clusterId } : {}), pending: true };
  writeIdentity(dataDir, ident);
  logger.info({ storeId, clusterId: cluster?.clusterId }, 'allocated store id');
  return { storeId, clusterId: cluster ? String(cluster.clusterId) : 'flotilla', cluster, online: true, ident };
}

/**
 * checkIdentity: the data dir's cluster is placement's, and its store ID is
 * one that cluster registered and did not remove. A pending store unknown
 * to placement crashed between taking its ID and registering: no Region
 * was ever placed on it, so it registers now. (So does an old store.json
 * with neither cluster ID nor databases, from the same crash in an older
 * version.)
 */
async function checkIdentity(dataDir: string, ident: StoreIdentity, cluster: ClusterInfo | undefined, databases: boolean, pd: PlacementApi, placement: string): Promise<void> {
  if (!cluster) return; // a placement without cluster info (an in-process simulation): nothing to compare
  const { storeId } = ident;
  if (ident.clusterId !== undefined && ident.clusterId !== cluster.clusterId) {
    throw new StoreStartError(
      'WrongCluster',
      `${dataDir} belongs to cluster ${ident.clusterId} (store ${storeId}), but placement at ${placement} serves cluster ${cluster.clusterId}. ` +
        `Point --placement at cluster ${ident.clusterId}'s placement, or give the store an empty --data-dir to join cluster ${cluster.clusterId} as a new store`,
    );
  }
  if (!cluster.bootstrapped) {
    if (ident.clusterId === undefined && databases) {
      throw new StoreStartError('WrongCluster', `${dataDir} holds store ${storeId} of a cluster ${IDENTITY_FILE} does not name, and placement at ${placement} serves a new, empty cluster ${cluster.clusterId}: refusing to bootstrap a second cluster from another one's data. Use an empty --data-dir`);
    }
    return;
  }
  const known = await pd.getStore(storeId);
  if (known?.state === 'tombstone') {
    throw new StoreStartError('RemovedStore', `store ${storeId} (${dataDir}) was removed from cluster ${cluster.clusterId} and may not come back under the same ID; give the store an empty --data-dir to join as a new store`);
  }
  if (!known && !ident.pending && (ident.clusterId !== undefined || databases)) {
    throw new StoreStartError(
      'UnknownStore',
      `${dataDir} is store ${storeId}, but cluster ${cluster.clusterId} (placement at ${placement}) never issued or registered store ${storeId}: the dir was copied or its ${IDENTITY_FILE} edited. Give the store an empty --data-dir to join as a new store`,
    );
  }
}
