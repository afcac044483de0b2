import type { PlacementCluster } from './cluster';
import { PlacementError, PlacementErrorCode } from './errors';
import { isLiveState } from './schedule/scheduler';
import type { Operator } from './types';

// admin.ts: what an operator asks of placement by hand (pd-ctl's
// `operator add transfer-leader`, `operator remove`). Each goes through the
// same OperatorController as the schedulers' operators, so it passes the
// same safety check, holds the Region against other operators, and is
// handed to the Region's leader in its next heartbeat response.

/** ADMIN_SCHEDULER names operators made by hand (the scheduler column of `flotilla operator list`). */
export const ADMIN_SCHEDULER = 'admin';

/**
 * ADMIN_OPERATOR_TIMEOUT_MS: how long a hand-made operator may wait for the
 * Region to carry it out. A hibernated Region reports only every few
 * heartbeat intervals (a minute with the production profile), so this is
 * generous; `flotilla operator cancel` drops one sooner.
 */
export const ADMIN_OPERATOR_TIMEOUT_MS = 5 * 60_000;

/** TransferLeaderResult: the operator added, or that the leader already is on that store (nothing to do). */
export type TransferLeaderResult = { operator: Operator } | { alreadyLeader: true };

/**
 * addTransferLeader adds an operator moving the Region's leadership to its
 * voter on toStoreId. Typed errors: RegionNotFound; InvalidArgument (no
 * voter there, leader unknown yet); OperatorRefused with the controller's
 * reason (another operator holds the Region, the target is not live).
 */
export function addTransferLeader(cluster: PlacementCluster, regionId: number, toStoreId: number): TransferLeaderResult {
  const info = cluster.region(regionId);
  if (!info) throw new PlacementError(PlacementErrorCode.RegionNotFound, `region ${regionId} not found`);
  const target = info.region.peers.find((p) => p.storeId === toStoreId);
  const peers = info.region.peers.map((p) => `${p.id}@${p.storeId}${p.role === 'learner' ? ' (learner)' : ''}`).join(', ');
  if (!target) throw new PlacementError(PlacementErrorCode.InvalidArgument, `store ${toStoreId} holds no peer of region ${regionId} (peers: ${peers})`);
  if (target.role !== 'voter') throw new PlacementError(PlacementErrorCode.InvalidArgument, `the peer of region ${regionId} on store ${toStoreId} is a learner and cannot lead (peers: ${peers})`);
  if (!info.leader) throw new PlacementError(PlacementErrorCode.InvalidArgument, `region ${regionId} has no known leader yet; retry after its next heartbeat`);
  if (info.leader.storeId === toStoreId) return { alreadyLeader: true };
  const now = cluster.nowMs();
  const op: Operator = {
    id: cluster.allocId(1)[0]!,
    regionId,
    kind: 'transfer-leader',
    scheduler: ADMIN_SCHEDULER,
    regionVersion: info.region.epoch.version,
    steps: [{ type: 'transferLeader', fromStoreId: info.leader.storeId, toStoreId, peer: target }],
    currentStep: 0,
    createdAtMs: now,
    deadlineMs: now + ADMIN_OPERATOR_TIMEOUT_MS,
    description: `transfer leader of region ${regionId} from store ${info.leader.storeId} to store ${toStoreId} (by hand)`,
  };
  const rejected = cluster.operators.add(op, info, (id) => isLiveState(cluster.storeState(id)));
  if (rejected !== null) throw new PlacementError(PlacementErrorCode.OperatorRefused, `transfer-leader refused: ${rejected}`);
  return { operator: op };
}

/** cancelOperator drops the Region's operator in flight (a step already handed out may still take effect). */
export function cancelOperator(cluster: PlacementCluster, regionId: number): Operator {
  const op = cluster.operators.get(regionId);
  if (!op) throw new PlacementError(PlacementErrorCode.OperatorNotFound, `region ${regionId} has no operator in flight`);
  cluster.operators.cancel(regionId, 'canceled by hand (flotilla operator cancel)');
  return op;
}
