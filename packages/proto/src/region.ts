// Domain types shared by every package: Regions, peers, stores and keys.

/** PeerRole: a voter counts in quorums; a learner only receives the log. */
export type PeerRole = 'voter' | 'learner';

/** Peer is one replica of a Region, living on one store. */
export interface Peer {
  id: number;
  storeId: number;
  role: PeerRole;
}

/**
 * RegionEpoch versions a Region's shape. `confVer` rises on every membership
 * change; `version` rises on every split or merge. A command or message whose
 * epoch is older than the Region's is stale.
 */
export interface RegionEpoch {
  confVer: number;
  version: number;
}

/**
 * Region is a contiguous, byte-ordered key range [startKey, endKey) replicated
 * by one Raft group. An empty startKey means "from the beginning", an empty
 * endKey means "to the end".
 */
export interface Region {
  id: number;
  startKey: Uint8Array;
  endKey: Uint8Array;
  epoch: RegionEpoch;
  peers: Peer[];
}

/**
 * StoreState is placement's view of a store. up and disconnected (silent
 * for a while, not yet down) serve their peers; offline is a store being
 * removed (`flotilla store remove`): it still serves its peers while
 * placement moves them away, and becomes a tombstone once it holds none;
 * down is silent past max-store-down-time; tombstone is removed for good.
 */
export type StoreState = 'up' | 'disconnected' | 'offline' | 'down' | 'tombstone';

/** Store is one node hosting Region peers. */
export interface Store {
  id: number;
  /** address is host:port where the store serves raft and client traffic. */
  address: string;
  state: StoreState;
  labels?: Record<string, string>;
}
