import type { Peer, StoreState } from '@flotilla/proto';
import type { OperatorKind, OperatorStep, RegionInfo } from '../types';
import type { StoreInfluence } from './operator-controller';

/**
 * ClusterView is what a scheduler may read: stores with liveness, per-store
 * Region and leader indexes kept up to date by region heartbeats, the
 * Region tree, the operators in flight, and an ID source for new peers.
 */
export interface ClusterView {
  nowMs(): number;
  readonly maxReplicas: number;
  readonly maxStoreDownTimeMs: number;
  /** storeIds lists every known store (tombstones included). */
  storeIds(): number[];
  storeState(storeId: number): StoreState | undefined;
  /** isLowSpace: the store's last heartbeat reports available space below the low-space ratio (TiKV's low-space-ratio). */
  isLowSpace(storeId: number): boolean;
  regionCountOf(storeId: number): number;
  leaderCountOf(storeId: number): number;
  /** regionIdsOf iterates the Regions with a peer on the store (do not mutate the cluster while iterating). */
  regionIdsOf(storeId: number): Iterable<number>;
  leaderRegionIdsOf(storeId: number): Iterable<number>;
  region(regionId: number): RegionInfo | undefined;
  regionCount(): number;
  /** regionAt returns the i-th Region in key order (patrol). */
  regionAt(index: number): RegionInfo | undefined;
  /** hasOperator: the Region has an operator in flight, or is the target of another Region's merge operator. */
  hasOperator(regionId: number): boolean;
  /** adjacentRegions: the Regions touching this one on the left (prev) and right (next), if any. */
  adjacentRegions(regionId: number): { prev?: RegionInfo; next?: RegionInfo };
  /** lastSplitMs: when placement last saw this Region come out of a split (undefined: not since placement started). */
  lastSplitMs(regionId: number): number | undefined;
  influence(): Map<number, StoreInfluence>;
  allocId(count: number): number[];
}

/** OperatorDraft is what a scheduler proposes; the coordinator gives it an ID, a deadline and checks it. */
export interface OperatorDraft {
  regionId: number;
  kind: OperatorKind;
  steps: OperatorStep[];
  description: string;
}

/**
 * Scheduler is the plug-in point for placement decisions (replica checker,
 * balancers, merge checker). Each round the coordinator calls
 * schedule() with a budget = limit - operators of this scheduler in flight
 * (never called with a budget of 0). Operators are handed to Region leaders
 * in heartbeat responses; an operator still unfinished after
 * operatorTimeoutMs is dropped.
 */
export interface Scheduler {
  readonly name: string;
  /** limit bounds this scheduler's operators in flight. */
  readonly limit: number;
  readonly operatorTimeoutMs: number;
  schedule(view: ClusterView, budget: number): OperatorDraft[];
}

/** SchedulerLimits are the knobs every built-in scheduler takes. */
export interface SchedulerLimits {
  limit?: number;
  operatorTimeoutMs?: number;
}

/** isLiveState: a store in this state still serves its peers (an offline store does until they have moved away). */
export function isLiveState(state: StoreState | undefined): boolean {
  return state === 'up' || state === 'disconnected' || state === 'offline';
}

/** isPeerDead: on a down/tombstone/unknown store, or reported down by the leader for longer than maxStoreDownTimeMs. */
export function isPeerDead(view: ClusterView, info: RegionInfo, peer: Peer): boolean {
  if (!isLiveState(view.storeState(peer.storeId))) return true;
  const d = info.downPeers.find((x) => x.peer.id === peer.id);
  return d !== undefined && d.downSeconds * 1000 >= view.maxStoreDownTimeMs;
}

/** isRegionHealthy: a Region fit to be moved around by a balancer: full voter set, all live, nothing pending or down. */
export function isRegionHealthy(view: ClusterView, info: RegionInfo): boolean {
  if (info.leader === undefined || info.downPeers.length > 0 || info.pendingPeers.length > 0) return false;
  let voters = 0;
  for (const p of info.region.peers) {
    if (p.role !== 'voter') return false;
    if (view.storeState(p.storeId) !== 'up') return false;
    voters++;
  }
  return voters === view.maxReplicas;
}

/** canPlaceReplica: a store a scheduler may put a new replica on: up, and not low on space. */
export function canPlaceReplica(view: ClusterView, storeId: number): boolean {
  return view.storeState(storeId) === 'up' && !view.isLowSpace(storeId);
}

/**
 * pickTargetStore returns the store a new replica may go to
 * (canPlaceReplica) with the fewest Regions (counting in-flight influence
 * and `extra`), excluding `exclude`; ties go to the lowest store ID so
 * decisions are deterministic.
 */
export function pickTargetStore(view: ClusterView, exclude: Set<number>, influence: Map<number, StoreInfluence>, extra?: Map<number, number>): number | undefined {
  let best: number | undefined;
  let bestScore = Infinity;
  for (const id of view.storeIds()) {
    if (exclude.has(id) || !canPlaceReplica(view, id)) continue;
    const score = view.regionCountOf(id) + (influence.get(id)?.regions ?? 0) + (extra?.get(id) ?? 0);
    if (score < bestScore || (score === bestScore && best !== undefined && id < best)) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}

/**
 * balanceGreedy is the balance schedulers' loop: take the up store with the
 * highest score that still has something to move, stop once it is within
 * `tolerance` of the lowest, ask `pick` for one operator moving one unit
 * (a leader, a replica) away from it, and update both stores' scores, until
 * `budget` operators are planned. A source `pick` finds nothing on is
 * skipped for the rest of the round.
 */
export function balanceGreedy(
  up: readonly number[],
  score: Map<number, number>,
  tolerance: number,
  budget: number,
  pick: (src: number, taken: Set<number>) => { op: OperatorDraft; to: number } | undefined,
): OperatorDraft[] {
  const out: OperatorDraft[] = [];
  const taken = new Set<number>();
  const exhausted = new Set<number>();
  while (out.length < budget) {
    let src: number | undefined;
    let min = Infinity;
    for (const id of up) {
      const s = score.get(id)!;
      if (!exhausted.has(id) && (src === undefined || s > score.get(src)!)) src = id;
      if (s < min) min = s;
    }
    if (src === undefined || score.get(src)! - min <= tolerance) break;
    const draft = pick(src, taken);
    if (!draft) {
      exhausted.add(src);
      continue;
    }
    out.push(draft.op);
    taken.add(draft.op.regionId);
    score.set(src, score.get(src)! - 1);
    score.set(draft.to, score.get(draft.to)! + 1);
  }
  return out;
}
