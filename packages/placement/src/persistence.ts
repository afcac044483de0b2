import type { PersistedStore } from './storage';
import type { Operator, RegionInfo } from './types';

/**
 * ClusterPersistence is where PlacementCluster writes what must survive it.
 * PlacementStorage (one SQLite database, written synchronously) is one;
 * on a replicated placement the leader's RaftPersistence proposes each
 * write to the placement Raft group instead, and the server holds every
 * answer until what was proposed before it is committed. Each call is
 * made BEFORE the in-memory state changes, so a call that throws leaves
 * the cluster as it was.
 */
export interface ClusterPersistence {
  readonly path: string;
  saveIdHighWater(highWater: number): void;
  saveMaxReplicas(maxReplicas: number): void;
  saveBootstrap(store: PersistedStore, region: RegionInfo): void;
  saveStore(store: PersistedStore): void;
  writeBatch(regions: Map<number, RegionInfo | null>, stats: Map<number, RegionInfo>, operators: Map<number, Operator | null>): void;
  close(): void;
}
