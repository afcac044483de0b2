import type { Peer, Region, StoreState } from '@flotilla/proto';
import type { GcMethods } from './gc/types';
import type { LeaseMethods } from './lease/types';
import type { TimestampRange } from './tso/timestamp';
import type { PackedHeartbeat, PackedResult } from './packed-heartbeat';

export type { GcMethods, GcStatus, StoreGcProgress, ServiceSafePointView } from './gc/types';
export type { LeaseMethods, LeaseInfo, LeaseReaper } from './lease/types';

export type { TimestampRange } from './tso/timestamp';

// Wire types of the placement API: what PlacementClient sends and what the
// server answers. Plain data only, so everything crosses msgpack as is.

/** StoreMeta is what a store tells placement about itself (putStore, bootstrap). */
export interface StoreMeta {
  id: number;
  /** address is host:port where the store serves raft and client traffic. */
  address: string;
  labels?: Record<string, string>;
}

/** StoreStats is the payload of a store heartbeat. Sizes are bytes. */
export interface StoreStats {
  storeId: number;
  capacityBytes: number;
  usedBytes: number;
  availableBytes: number;
  regionCount: number;
  leaderCount: number;
}

/**
 * StoreInfo is placement's view of a store: its meta, its liveness state
 * (derived from the age of its last heartbeat, or tombstone when removed),
 * its last reported stats, and the Region/leader counts placement itself
 * derives from region heartbeats (what the schedulers balance on).
 */
export interface StoreInfo extends StoreMeta {
  state: StoreState;
  /** lastHeartbeatMs is wall-clock ms of the last store heartbeat (or of the server start for a store not heard from since). */
  lastHeartbeatMs: number;
  stats?: StoreStats;
  /** lowSpace: the last stats report less available space than the low-space ratio allows; no new replica goes there. */
  lowSpace?: boolean;
  regionCount: number;
  leaderCount: number;
}

/** DownPeer is a peer the Region's leader has not heard from for downSeconds. */
export interface DownPeer {
  peer: Peer;
  downSeconds: number;
}

/**
 * RegionFlow is a Region's client traffic over the leader's last heartbeat
 * interval, as rates per second (the dashboard's hot Regions, `flotilla
 * regions --hot`). Reads count keys and value bytes returned; writes count
 * keys and key+value bytes proposed.
 */
export interface RegionFlow {
  readKeysPerSec: number;
  readBytesPerSec: number;
  writeKeysPerSec: number;
  writeBytesPerSec: number;
}

/** RegionHeartbeat is what a Region's leader reports periodically. */
export interface RegionHeartbeat {
  region: Region;
  leader: Peer;
  approximateSizeBytes: number;
  approximateKeys: number;
  downPeers?: DownPeer[];
  pendingPeers?: Peer[];
  /** flow: traffic since the previous heartbeat (older stores omit it). */
  flow?: RegionFlow;
}

/** RegionInfo is placement's latest knowledge of one Region. */
export interface RegionInfo {
  region: Region;
  leader?: Peer;
  approximateSizeBytes: number;
  approximateKeys: number;
  downPeers: DownPeer[];
  pendingPeers: Peer[];
  /** flow: the latest reported traffic (not persisted; absent until a leader reports it). */
  flow?: RegionFlow;
}

/** RegionWithLeader is what routing lookups return. */
export interface RegionWithLeader {
  region: Region;
  leader?: Peer;
}

/**
 * OperatorStep is one action a Region leader executes for placement. A step
 * is idempotent: placement repeats it in every heartbeat response until the
 * Region's reported meta shows it done.
 *   addLearner     ChangePeer AddLearnerNode(peer)
 *   promoteLearner ChangePeer AddNode(peer) for an existing learner
 *   addPeer        ChangePeer AddNode(peer) for a new voter
 *   removePeer     ChangePeer RemoveNode(peer)
 *   transferLeader TransferLeader to the Region's peer on toStoreId
 *   merge          merge this Region into target (reserved for the merge checker)
 */
export type OperatorStep =
  | { type: 'addLearner'; peer: Peer }
  | { type: 'promoteLearner'; peer: Peer }
  | { type: 'addPeer'; peer: Peer }
  | { type: 'removePeer'; peer: Peer }
  | { type: 'transferLeader'; fromStoreId: number; toStoreId: number; peer: Peer }
  | { type: 'merge'; target: Region };

/** OperatorKind says what an operator is for (metrics, limits, readable status). */
export type OperatorKind = 'add-replica' | 'replace-replica' | 'remove-replica' | 'transfer-leader' | 'move-region' | 'merge';

/** Operator is a step list placement wants one Region to go through. */
export interface Operator {
  id: number;
  regionId: number;
  kind: OperatorKind;
  /** scheduler is the name of the scheduler that created it; limits are per scheduler. */
  scheduler: string;
  /** regionVersion is the Region's epoch version at creation; a split or merge cancels the operator. */
  regionVersion: number;
  steps: OperatorStep[];
  /** currentStep indexes steps; steps before it are done. */
  currentStep: number;
  createdAtMs: number;
  deadlineMs: number;
  description: string;
}

/** OperatorInstruction is what a region heartbeat response carries: the step to execute now. */
export interface OperatorInstruction {
  operatorId: number;
  kind: OperatorKind;
  step: OperatorStep;
  stepIndex: number;
  stepCount: number;
}

export interface RegionHeartbeatResponse {
  /** stale is true when the heartbeat's epoch was older than what placement knows; it was ignored. */
  stale: boolean;
  operator?: OperatorInstruction;
}

/**
 * RegionHeartbeatResult answers one heartbeat of a `regionHeartbeats`
 * batch, in the batch's order: the same answer `regionHeartbeat` gives,
 * or the typed error of that one heartbeat (a malformed one); the others
 * in the batch are applied regardless.
 */
export type RegionHeartbeatResult = RegionHeartbeatResponse | { error: { code: string; message: string } };

/** SplitId is what askBatchSplit hands out for one split: the new Region's ID and one peer ID per existing peer (same order). */
export interface SplitId {
  newRegionId: number;
  newPeerIds: number[];
}

export interface ClusterInfo {
  clusterId: number;
  bootstrapped: boolean;
  maxReplicas: number;
  maxStoreDownTimeMs: number;
  storeCount: number;
  regionCount: number;
  operatorCount: number;
}

/** PlacementMethods maps each API method to its params and result types. */
export interface PlacementMethods extends GcMethods, LeaseMethods {
  bootstrap: { params: { store: StoreMeta; region: Region }; result: { bootstrapped: true } };
  isBootstrapped: { params: Record<string, never>; result: { bootstrapped: boolean } };
  allocId: { params: { count: number }; result: { ids: number[] } };
  putStore: { params: { store: StoreMeta }; result: { store: StoreInfo } };
  removeStore: { params: { storeId: number }; result: { store: StoreInfo } };
  storeHeartbeat: { params: { stats: StoreStats }; result: { store: StoreInfo } };
  regionHeartbeat: { params: RegionHeartbeat; result: RegionHeartbeatResponse };
  /** regionHeartbeats: many Regions' heartbeats in one request (a store's batch, at most PLACEMENT_LIMITS.maxRegionHeartbeats); one result per heartbeat, in order. */
  regionHeartbeats: { params: { heartbeats: RegionHeartbeat[] }; result: { results: RegionHeartbeatResult[] } };
  /** regionHeartbeatsPacked: regionHeartbeats with stats-only heartbeats packed, and plain answers as 0/1 (packed-heartbeat.ts; issue #16). */
  regionHeartbeatsPacked: { params: { heartbeats: (PackedHeartbeat | RegionHeartbeat)[] }; result: { results: PackedResult[] } };
  askBatchSplit: { params: { region: Region; count: number }; result: { ids: SplitId[] } };
  reportBatchSplit: { params: { regions: Region[] }; result: { accepted: number } };
  getRegion: { params: { key: Uint8Array }; result: { region: RegionWithLeader | null } };
  getRegionById: { params: { regionId: number }; result: { region: RegionWithLeader | null } };
  scanRegions: { params: { startKey: Uint8Array; endKey: Uint8Array; limit: number }; result: { regions: RegionWithLeader[] } };
  getStore: { params: { storeId: number }; result: { store: StoreInfo | null } };
  getAllStores: { params: Record<string, never>; result: { stores: StoreInfo[] } };
  getClusterInfo: { params: Record<string, never>; result: ClusterInfo };
  getOperator: { params: { regionId: number }; result: { operator: Operator | null } };
  /** getTimestamps: `count` fresh hybrid timestamps from the leader's oracle (tso/timestamp.ts has the layout). */
  getTimestamps: { params: { count: number }; result: TimestampRange };
  /** getMembers: the placement members and their roles, as the answering member knows them (any member answers). */
  getMembers: { params: Record<string, never>; result: MembersView };
  /** addMember: add a placement member as a learner (promoted to voter once caught up). Idempotent for the same name and address. */
  addMember: { params: { name: string; address: string }; result: { member: MemberInfo; members: MemberInfo[] } };
  /** removeMember: remove a placement member from the group (its ID is never reused). */
  removeMember: { params: { name: string }; result: { member: MemberInfo } };
}

/** MemberInfo is one placement member as getMembers shows it. */
export interface MemberInfo {
  id: number;
  name: string;
  /** address serves the client API and peer traffic (/ws, /raft, HTTP). */
  address: string;
  role: 'leader' | 'voter' | 'learner' | 'removed';
}

/** MembersView: every member, the leader's ID (0 when none is known) and which member answered. */
export interface MembersView {
  members: MemberInfo[];
  leaderId: number;
  answeredBy: string;
}

/**
 * ServiceMethod names the methods the placement server answers around the
 * cluster state machine (the timestamp oracle, membership, GC safe points), not PlacementCluster;
 * ClusterMethod is every other method.
 */
export type ServiceMethod = 'getTimestamps' | 'getMembers' | 'addMember' | 'removeMember' | keyof GcMethods | keyof LeaseMethods;
export type ClusterMethod = Exclude<PlacementMethod, ServiceMethod>;

export type PlacementMethod = keyof PlacementMethods;
export type ParamsOf<M extends PlacementMethod> = PlacementMethods[M]['params'];
export type ResultOf<M extends PlacementMethod> = PlacementMethods[M]['result'];

/** WireRequest is one frame from client to server. */
export interface WireRequest {
  id: number;
  method: string;
  params?: unknown;
}

/** WireResponse answers a WireRequest with the same id (id 0 when the request was too malformed to carry one). */
export type WireResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: string; message: string; leader?: string } };
