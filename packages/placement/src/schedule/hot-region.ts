import type { OperatorStep, RegionFlow, RegionInfo } from '../types';
import { canPlaceReplica, isRegionHealthy, type ClusterView, type OperatorDraft, type Scheduler, type SchedulerLimits } from './scheduler';

/** HotDimension: which traffic a round balances (PD has a hot-write and a hot-read scheduler; this one takes turns). */
export type HotDimension = 'write' | 'read';

export interface HotRegionOptions extends SchedulerLimits {
  /** minHotBytesPerSec / minHotKeysPerSec: a Region's flow in one dimension counts as hot at or above either (PD's hot-region thresholds). */
  minHotBytesPerSec?: number;
  minHotKeysPerSec?: number;
  /**
   * tolerance: a store is a source only when its hot load exceeds the mean
   * of the up stores by this fraction (PD's src-tolerance-ratio), so noise
   * in the reported rates does not move leaders back and forth.
   */
  tolerance?: number;
  /** maxCandidates bounds how many of the source store's led Regions one round inspects. */
  maxCandidates?: number;
}

/** HOT_MIN_BYTES_PER_SEC / HOT_MIN_KEYS_PER_SEC: the defaults of HotRegionOptions (PD's min hot byte and key rates). */
export const HOT_MIN_BYTES_PER_SEC = 8 * 1024;
export const HOT_MIN_KEYS_PER_SEC = 10;

/** hotLoad is a Region's load in one dimension, in bytes per second (keys break ties only through the threshold). */
export function hotLoad(flow: RegionFlow | undefined, dim: HotDimension): { bytes: number; keys: number } {
  if (!flow) return { bytes: 0, keys: 0 };
  return dim === 'write' ? { bytes: flow.writeBytesPerSec, keys: flow.writeKeysPerSec } : { bytes: flow.readBytesPerSec, keys: flow.readKeysPerSec };
}

/**
 * HotRegion spreads hot leaders across stores (PD's hot-region scheduler,
 * reduced to its core). Each round it takes one dimension (write, then
 * read, alternating), sums the flow of each up store's hot leaders, and if
 * the most loaded store is above the mean by more than `tolerance`, moves
 * one hot Region's load off it: preferably by transferring its leader to a
 * follower on a less loaded store, else by moving its peer there
 * (add learner, promote, transfer leader, remove). A move is made only if
 * it makes the hottest store cooler without making the target hotter than
 * the source was (target + load < source), so the same flows never move a
 * leader back: one operator at a time by default.
 *
 * Leader flow is what a leader reports: followers serve no client traffic
 * here, so a store's load is the sum over the Regions it leads.
 */
export class HotRegion implements Scheduler {
  readonly name = 'hot-region';
  readonly limit: number;
  readonly operatorTimeoutMs: number;
  private readonly minHotBytesPerSec: number;
  private readonly minHotKeysPerSec: number;
  private readonly tolerance: number;
  private readonly maxCandidates: number;
  private turn: HotDimension = 'write';

  constructor(opts: HotRegionOptions = {}) {
    this.limit = opts.limit ?? 1;
    this.operatorTimeoutMs = opts.operatorTimeoutMs ?? 60_000;
    this.minHotBytesPerSec = opts.minHotBytesPerSec ?? HOT_MIN_BYTES_PER_SEC;
    this.minHotKeysPerSec = opts.minHotKeysPerSec ?? HOT_MIN_KEYS_PER_SEC;
    this.tolerance = Math.max(0, opts.tolerance ?? 0.25);
    this.maxCandidates = opts.maxCandidates ?? 1024;
  }

  schedule(view: ClusterView, budget: number): OperatorDraft[] {
    if (budget <= 0) return [];
    const first = this.turn;
    this.turn = first === 'write' ? 'read' : 'write';
    const op = this.balance(view, first) ?? this.balance(view, this.turn);
    return op ? [op] : [];
  }

  /** isHot: the Region's flow in this dimension reaches either threshold. */
  isHot(info: RegionInfo, dim: HotDimension): boolean {
    const l = hotLoad(info.flow, dim);
    return l.bytes >= this.minHotBytesPerSec || l.keys >= this.minHotKeysPerSec;
  }

  /** storeLoads sums each up store's hot leaders' bytes per second in one dimension. */
  storeLoads(view: ClusterView, dim: HotDimension): Map<number, number> {
    const loads = new Map<number, number>();
    for (const id of view.storeIds()) {
      if (view.storeState(id) !== 'up') continue;
      let sum = 0;
      for (const regionId of view.leaderRegionIdsOf(id)) {
        const info = view.region(regionId);
        if (info && info.leader?.storeId === id && this.isHot(info, dim)) sum += hotLoad(info.flow, dim).bytes;
      }
      loads.set(id, sum);
    }
    return loads;
  }

  /** balance returns one operator moving hot load in `dim` off the hottest store, or undefined. */
  balance(view: ClusterView, dim: HotDimension): OperatorDraft | undefined {
    const loads = this.storeLoads(view, dim);
    if (loads.size < 2) return undefined;
    let src: number | undefined;
    let total = 0;
    for (const [id, l] of loads) {
      total += l;
      if (src === undefined || l > loads.get(src)! || (l === loads.get(src)! && id < src)) src = id;
    }
    const mean = total / loads.size;
    const srcLoad = loads.get(src!)!;
    if (srcLoad === 0 || srcLoad <= mean * (1 + this.tolerance)) return undefined;
    // The source's hot Regions, hottest first.
    const hot: { info: RegionInfo; load: number }[] = [];
    let inspected = 0;
    for (const regionId of view.leaderRegionIdsOf(src!)) {
      if (inspected++ >= this.maxCandidates) break;
      if (view.hasOperator(regionId)) continue;
      const info = view.region(regionId);
      if (!info || info.leader?.storeId !== src || !this.isHot(info, dim)) continue;
      hot.push({ info, load: hotLoad(info.flow, dim).bytes });
    }
    hot.sort((a, b) => b.load - a.load || a.info.region.id - b.info.region.id);
    for (const { info, load } of hot) {
      const op = this.transferLeader(info, src!, srcLoad, load, loads, dim) ?? this.movePeer(view, info, src!, srcLoad, load, loads, dim);
      if (op) return op;
    }
    return undefined;
  }

  /** helps: moving `load` from the source to a store at `target` lowers the hottest of the two below the source's load now. */
  private static helps(srcLoad: number, target: number | undefined, load: number): boolean {
    return target !== undefined && target + load < srcLoad;
  }

  private transferLeader(info: RegionInfo, src: number, srcLoad: number, load: number, loads: Map<number, number>, dim: HotDimension): OperatorDraft | undefined {
    let best: number | undefined;
    for (const p of info.region.peers) {
      if (p.role !== 'voter' || p.storeId === src) continue;
      if (info.pendingPeers.some((x) => x.id === p.id) || info.downPeers.some((x) => x.peer.id === p.id)) continue;
      const t = loads.get(p.storeId);
      if (!HotRegion.helps(srcLoad, t, load)) continue;
      if (best === undefined || t! < loads.get(best)! || (t === loads.get(best) && p.storeId < best)) best = p.storeId;
    }
    if (best === undefined) return undefined;
    const to = info.region.peers.find((p) => p.storeId === best)!;
    return {
      regionId: info.region.id,
      kind: 'transfer-leader',
      steps: [{ type: 'transferLeader', fromStoreId: src, toStoreId: best, peer: to }],
      description: `hot-region (${dim}): transfer leader of region ${info.region.id} from store ${src} to store ${best}`,
    };
  }

  private movePeer(view: ClusterView, info: RegionInfo, src: number, srcLoad: number, load: number, loads: Map<number, number>, dim: HotDimension): OperatorDraft | undefined {
    if (!isRegionHealthy(view, info)) return undefined;
    const hosted = new Set(info.region.peers.map((p) => p.storeId));
    let best: number | undefined;
    for (const [id, t] of loads) {
      if (hosted.has(id) || !canPlaceReplica(view, id) || !HotRegion.helps(srcLoad, t, load)) continue;
      if (best === undefined || t < loads.get(best)! || (t === loads.get(best) && id < best)) best = id;
    }
    if (best === undefined) return undefined;
    const old = info.region.peers.find((p) => p.storeId === src)!;
    const peer = { id: view.allocId(1)[0]!, storeId: best, role: 'learner' as const };
    const voter = { ...peer, role: 'voter' as const };
    const steps: OperatorStep[] = [
      { type: 'addLearner', peer },
      { type: 'promoteLearner', peer: voter },
      { type: 'transferLeader', fromStoreId: src, toStoreId: best, peer: voter },
      { type: 'removePeer', peer: old },
    ];
    return {
      regionId: info.region.id,
      kind: 'move-region',
      steps,
      description: `hot-region (${dim}): move hot region ${info.region.id} from store ${src} to store ${best}`,
    };
  }
}
