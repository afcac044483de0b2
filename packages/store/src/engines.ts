import type { ConfState } from '@flotilla/raft-core';
import type { KvPair, Region } from '@flotilla/proto';
import type { ChangePage, MvccOp, MvccRead, SnapshotRead, TxnRows, WriteRow } from '@flotilla/kv-engine';

// The store's view of its state-machine engine. The concrete engine is
// @flotilla/kv-engine; this narrow interface is what apply, reads and
// snapshots need, so the store's logic can be read (and tested) without the
// SQLite details.

/** ApplyState is how far a Region has applied, and where its log was truncated. */
export interface ApplyState {
  appliedIndex: number;
  appliedTerm: number;
  truncatedIndex: number;
  truncatedTerm: number;
}

export type PeerState = 'normal' | 'applying' | 'merging' | 'tombstone';

/** RegionLocalState is a Region's meta on this store, with the raft ConfState it implies. */
export interface RegionLocalState {
  region: Region;
  state: PeerState;
  /** confState is the exact raft membership (joint configs included) at the applied index. */
  confState: ConfState;
  /** merge is set while the Region is the source of a merge (state 'merging'). */
  merge?: MergeState;
  /** tombstonePeerId: for state 'tombstone', the ID of the peer this store destroyed (a re-add uses a larger one). */
  tombstonePeerId?: number;
}

/** MergeState records a prepared merge: see docs/merge.md. */
export interface MergeState {
  /** minIndex: entries after it may be needed by lagging source replicas (carried in CommitMerge). */
  minIndex: number;
  /** commit: the index of the PrepareMerge entry; the source's log is final up to here. */
  commit: number;
  /** target: the target Region as it was when the merge was prepared. */
  target: Region;
}

/** KvBatch collects one poll round's state-machine writes; committed atomically. */
export interface KvBatch {
  put(key: Uint8Array, value: Uint8Array): void;
  delete(key: Uint8Array): void;
  /** deleteRange removes [startKey, endKey) of the raw keyspace only (a client's deleteRange). */
  deleteRange(startKey: Uint8Array, endKey: Uint8Array): void;
  /** deleteRegionData removes [startKey, endKey) of both keyspaces, raw and transactional (a removed Region's data). */
  deleteRegionData(startKey: Uint8Array, endKey: Uint8Array): void;
  /** mvcc carries one change to the transactional tables (Percolator at apply). */
  mvcc(op: MvccOp): void;
  setApplyState(regionId: number, state: ApplyState): void;
  setRegionState(regionId: number, state: RegionLocalState): void;
  readonly isEmpty: boolean;
}

export interface StateMachine {
  newBatch(): KvBatch;
  /** write commits the batch in ONE transaction (data and the states describing it). */
  write(batch: KvBatch): void;
  get(key: Uint8Array): Uint8Array | undefined;
  /** scan returns pairs in [startKey, endKey) (empty end = unbounded) in byte order, at most limit. */
  scan(startKey: Uint8Array, endKey: Uint8Array, limit: number): KvPair[];
  /** snapshotRange reads a consistent point-in-time copy of the range. */
  snapshotRange(startKey: Uint8Array, endKey: Uint8Array): KvPair[];
  /** snapshotRangeData reads the range's raw pairs and transactional rows in one point-in-time view (a Region snapshot). */
  snapshotRangeData(startKey: Uint8Array, endKey: Uint8Array): { pairs: KvPair[]; txn: TxnRows };
  /** ingestSnapshot replaces the range's data (both keyspaces) and writes the states, atomically. */
  ingestSnapshot(regionId: number, startKey: Uint8Array, endKey: Uint8Array, pairs: KvPair[], apply: ApplyState, region: RegionLocalState, txn?: TxnRows): void;
  /** mvccRead reads the committed transactional tables (the base under an apply round's MvccOverlay). */
  readonly mvccRead: MvccRead;
  /** snapshotGet / snapshotScan: snapshot reads of the transactional keyspace at ts (kv-engine mvcc/reader.ts). */
  snapshotGet(keys: Uint8Array[], ts: bigint): SnapshotRead;
  snapshotScan(startKey: Uint8Array, endKey: Uint8Array, limit: number, ts: bigint, keyOnly: boolean): SnapshotRead;
  /** txnChanges: a watch's catch-up page, committed puts/deletes of the range above fromTs (kv-engine mvcc/changes.ts). */
  txnChanges(startKey: Uint8Array, endKey: Uint8Array, fromTs: bigint, limit: number): ChangePage;
  /** txnValue: a committed put's value (short values inline, long ones from txn_data), for a live watch event. */
  txnValue(write: Pick<WriteRow, 'key' | 'startTs' | 'shortValue'>): Uint8Array;
  /** txnPrevValue: the key's value just before revision (a watch event's prevValue; kv-engine mvcc/changes.ts). */
  txnPrevValue(key: Uint8Array, revision: bigint): Uint8Array | undefined;
  loadRegions(): { regionId: number; apply: ApplyState | undefined; local: RegionLocalState }[];
  applyState(regionId: number): ApplyState | undefined;
  approximateStats(regionId: number, startKey: Uint8Array, endKey: Uint8Array): { sizeBytes: number; keys: number };
  /**
   * approximateSplitKey scans the range: a key near its middle by bytes
   * (undefined under two keys) and the range's exact size and key count,
   * which the split check trusts over approximateStats.
   */
  approximateSplitKey(startKey: Uint8Array, endKey: Uint8Array): { splitKey: Uint8Array | undefined; sizeBytes: number; keys: number };
  /**
   * sync makes every write so far durable. Apply writes need not fsync
   * (the raft log replays them after a crash); sync runs before a log
   * write that would take that replay away (StoreContext.writeLog).
   */
  sync(): void;
  /** unsynced: some write since the last sync() (or since open) is not yet durable. */
  readonly unsynced: boolean;
  /**
   * durableAppliedIndex is the Region's applied index as of the last
   * sync(): what a power loss would leave (0 for a Region not durably
   * there). The raft log is never compacted past it.
   */
  durableAppliedIndex(regionId: number): number;
  close(): void;
}

/**
 * PlacementApi is the part of PlacementClient a store uses. startStore
 * takes any implementation, so a simulation can run placement in process.
 */
export type PlacementApi = Pick<
  import('@flotilla/placement').PlacementClient,
  | 'getStore'
  | 'putStore'
  | 'isBootstrapped'
  | 'allocId'
  | 'bootstrap'
  | 'getRegionById'
  | 'getRegion'
  | 'getAllStores'
  | 'regionHeartbeat'
  | 'reportBatchSplit'
  | 'askBatchSplit'
  | 'storeHeartbeat'
  | 'close'
> &
  // regionHeartbeats (a store's Regions batched in one request) is optional: without it a store reports Region by Region.
  // timestamp: the oracle's next timestamp, for a 1PC's commit ts (operation/txn.ts); without it a 1PC answers ServerIsBusy.
  Partial<Pick<import('@flotilla/placement').PlacementClient, 'getClusterInfo' | 'regionHeartbeats' | 'timestamp'>>;
