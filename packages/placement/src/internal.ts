// @flotilla/placement/internal — the in-process pieces behind the server, for
// benchmarks and simulations that must drive the exact handler the server
// uses. Not a stable API: stores and clients use PlacementClient.
export { PlacementCluster, type ClusterOptions } from './cluster';
export { RegionTree } from './region-tree';
export { OperatorController } from './schedule/operator-controller';
export { checkOperatorSafety, isStepDone } from './schedule/operator';
export { ReplicaChecker } from './schedule/replica-checker';
export { BalanceLeader } from './schedule/balance-leader';
export { BalanceRegion } from './schedule/balance-region';
export { MergeChecker } from './schedule/merge-checker';
export { HotRegion } from './schedule/hot-region';
export { PlacementMember, type MemberOptions } from './raft/member';
export type { MemberPeerTransport, PeerTransportOptions } from './raft/transport';
export { HeatmapRecorder, mergeRows } from './dashboard/heatmap';
export { heatmapView } from './dashboard/heatmap-view';
