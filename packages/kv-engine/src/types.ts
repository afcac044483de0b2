import type { Region } from '@flotilla/proto';

/** ApplyState is how far a Region's state machine got, stored with the data it describes. */
export interface ApplyState {
  appliedIndex: number;
  /** truncatedIndex / truncatedTerm mirror the raft log's compaction point (TiKV's RaftTruncatedState). */
  truncatedIndex: number;
  truncatedTerm: number;
}

/** PeerState is the life stage of this store's peer of a Region. */
export type PeerState = 'normal' | 'applying' | 'merging' | 'tombstone';

/** RegionLocalState is a Region's descriptor as this store last applied it. */
export interface RegionLocalState {
  region: Region;
  state: PeerState;
  /** mergeState is opaque to the engine (the store's merge bookkeeping), absent when not merging. */
  mergeState?: Uint8Array;
}

/** StoredRegion is what a restart loads for each Region. */
export interface StoredRegion {
  regionId: number;
  regionState: RegionLocalState;
  /** applyState is undefined for a Region that has never applied anything (e.g. an uninitialized peer). */
  applyState: ApplyState | undefined;
}

/** KvPair is one key and its value. */
export type KvPair = [key: Uint8Array, value: Uint8Array];

/** RegionStats is the approximate size of a Region's data. */
export interface RegionStats {
  bytes: number;
  keys: number;
}
