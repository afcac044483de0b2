import type { OperatorStep } from '../types';
import { balanceGreedy, canPlaceReplica, isRegionHealthy, type ClusterView, type OperatorDraft, type Scheduler, type SchedulerLimits } from './scheduler';

export interface BalanceRegionOptions extends SchedulerLimits {
  /** tolerance: stop when the fullest and emptiest up stores differ by at most this many Regions. */
  tolerance?: number;
  maxCandidates?: number;
}

/**
 * BalanceRegion evens out Region counts across up stores by moving one
 * replica at a time from the fullest store (counting operators in flight)
 * to the emptiest one that does not host the Region yet. A move adds before
 * it removes: addLearner, promoteLearner, (transferLeader away from the
 * source if it leads), removePeer, so the Region never has fewer live
 * voters than before. Only healthy Regions (full voter set, all up, nothing
 * pending or down) are moved; the replica checker repairs the others first.
 * A store low on space (ClusterView.isLowSpace) is never a target.
 */
export class BalanceRegion implements Scheduler {
  readonly name = 'balance-region';
  readonly limit: number;
  readonly operatorTimeoutMs: number;
  private readonly tolerance: number;
  private readonly maxCandidates: number;

  constructor(opts: BalanceRegionOptions = {}) {
    this.limit = opts.limit ?? 4;
    this.operatorTimeoutMs = opts.operatorTimeoutMs ?? 10 * 60_000;
    this.tolerance = Math.max(1, opts.tolerance ?? 1);
    this.maxCandidates = opts.maxCandidates ?? 256;
  }

  schedule(view: ClusterView, budget: number): OperatorDraft[] {
    const up = view.storeIds().filter((id) => view.storeState(id) === 'up');
    if (up.length < 2) return [];
    const influence = view.influence();
    const score = new Map<number, number>();
    for (const id of up) score.set(id, view.regionCountOf(id) + (influence.get(id)?.regions ?? 0));
    return balanceGreedy(up, score, this.tolerance, budget, (src, taken) => this.pick(view, src, up, score, taken));
  }

  private pick(view: ClusterView, src: number, up: number[], score: Map<number, number>, taken: Set<number>): { op: OperatorDraft; to: number } | undefined {
    const srcScore = score.get(src)!;
    // Targets from emptiest to fullest; each must gain enough to be worth a
    // move, and have the space for it (a low-space store only gives).
    const targets = up
      .filter((id) => id !== src && canPlaceReplica(view, id) && srcScore - score.get(id)! > this.tolerance)
      .sort((a, b) => score.get(a)! - score.get(b)! || a - b);
    if (targets.length === 0) return undefined;
    let inspected = 0;
    for (const regionId of view.regionIdsOf(src)) {
      if (inspected++ >= this.maxCandidates) break;
      if (taken.has(regionId) || view.hasOperator(regionId)) continue;
      const info = view.region(regionId);
      if (!info || !isRegionHealthy(view, info)) continue;
      const hosted = new Set(info.region.peers.map((p) => p.storeId));
      const to = targets.find((id) => !hosted.has(id));
      if (to === undefined) continue;
      const old = info.region.peers.find((p) => p.storeId === src)!;
      const peer = { id: view.allocId(1)[0]!, storeId: to, role: 'learner' as const };
      const steps: OperatorStep[] = [
        { type: 'addLearner', peer },
        { type: 'promoteLearner', peer: { ...peer, role: 'voter' } },
      ];
      if (info.leader!.storeId === src) steps.push({ type: 'transferLeader', fromStoreId: src, toStoreId: to, peer: { ...peer, role: 'voter' } });
      steps.push({ type: 'removePeer', peer: old });
      return {
        to,
        op: { regionId, kind: 'move-region', steps, description: `move region ${regionId} from store ${src} to store ${to}` },
      };
    }
    return undefined;
  }
}
