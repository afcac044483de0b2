import { balanceGreedy, type ClusterView, type OperatorDraft, type Scheduler, type SchedulerLimits } from './scheduler';

export interface BalanceLeaderOptions extends SchedulerLimits {
  /** tolerance: stop when the most and least loaded up stores differ by at most this many leaders. */
  tolerance?: number;
  /** maxCandidates bounds how many of the source store's Regions one pick inspects. */
  maxCandidates?: number;
}

/**
 * BalanceLeader evens out leader counts across up stores by transferring
 * leadership from the store with the most leaders (counting operators in
 * flight) to a follower on a store with fewer. A transfer changes no
 * membership, so it cannot cost a quorum; the target must be an up voter
 * that is neither pending nor reported down.
 */
export class BalanceLeader implements Scheduler {
  readonly name = 'balance-leader';
  readonly limit: number;
  readonly operatorTimeoutMs: number;
  private readonly tolerance: number;
  private readonly maxCandidates: number;

  constructor(opts: BalanceLeaderOptions = {}) {
    this.limit = opts.limit ?? 8;
    this.operatorTimeoutMs = opts.operatorTimeoutMs ?? 30_000;
    this.tolerance = Math.max(1, opts.tolerance ?? 1);
    this.maxCandidates = opts.maxCandidates ?? 256;
  }

  schedule(view: ClusterView, budget: number): OperatorDraft[] {
    const up = view.storeIds().filter((id) => view.storeState(id) === 'up');
    if (up.length < 2) return [];
    const influence = view.influence();
    const score = new Map<number, number>();
    for (const id of up) score.set(id, view.leaderCountOf(id) + (influence.get(id)?.leaders ?? 0));
    return balanceGreedy(up, score, this.tolerance, budget, (src, taken) => this.pick(view, src, score, taken));
  }

  private pick(view: ClusterView, src: number, score: Map<number, number>, taken: Set<number>): { op: OperatorDraft; to: number } | undefined {
    const srcScore = score.get(src)!;
    let inspected = 0;
    for (const regionId of view.leaderRegionIdsOf(src)) {
      if (inspected++ >= this.maxCandidates) break;
      if (taken.has(regionId) || view.hasOperator(regionId)) continue;
      const info = view.region(regionId);
      if (!info || !info.leader || info.leader.storeId !== src) continue;
      let best: number | undefined;
      for (const p of info.region.peers) {
        if (p.role !== 'voter' || p.storeId === src) continue;
        if (info.pendingPeers.some((x) => x.id === p.id) || info.downPeers.some((x) => x.peer.id === p.id)) continue;
        const s = score.get(p.storeId);
        if (s === undefined || srcScore - s <= this.tolerance) continue; // not up, or moving would not help
        if (best === undefined || s < score.get(best)!) best = p.storeId;
      }
      if (best === undefined) continue;
      const to = info.region.peers.find((p) => p.storeId === best)!;
      return {
        to: best,
        op: {
          regionId,
          kind: 'transfer-leader',
          steps: [{ type: 'transferLeader', fromStoreId: src, toStoreId: best, peer: to }],
          description: `transfer leader of region ${regionId} from store ${src} to store ${best}`,
        },
      };
    }
    return undefined;
  }
}
