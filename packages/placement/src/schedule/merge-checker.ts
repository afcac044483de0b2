import type { Peer } from '@flotilla/proto';
import type { OperatorStep, RegionInfo } from '../types';
import { isRegionHealthy, type ClusterView, type OperatorDraft, type Scheduler, type SchedulerLimits } from './scheduler';

export interface MergeCheckerOptions extends SchedulerLimits {
  /** maxMergeRegionSizeBytes: both Regions of a pair must be at most this big (default 20 MiB, TiKV's max-merge-region-size). */
  maxMergeRegionSizeBytes?: number;
  /** maxMergeRegionKeys: both Regions of a pair must hold at most this many keys (default 200,000, TiKV's max-merge-region-keys). */
  maxMergeRegionKeys?: number;
  /**
   * splitMergeIntervalMs: a Region split less than this long ago is not
   * merged, and nothing is merged this soon after placement starts (split
   * times are not persisted) (default 1 h; 0 in tests).
   */
  splitMergeIntervalMs?: number;
  /** patrolBatch bounds how many Regions one round inspects (the patrol resumes where it stopped). */
  patrolBatch?: number;
}

/**
 * MergeChecker folds small adjacent Regions together (PD's merge checker),
 * so that Regions emptied by deletes, or split ahead of load that never
 * came, stop costing a Raft group each. It patrols the Region tree in key
 * order and pairs a Region (the source) with its smaller adjacent
 * neighbour (the target) when both:
 *   - are at most maxMergeRegionSizeBytes and maxMergeRegionKeys;
 *   - did not come out of a split within splitMergeIntervalMs (a fresh
 *     split was wanted, by load or by an admin; merging it back would
 *     undo that and invite a split/merge loop);
 *   - are healthy (leader known, a full set of up voters, nothing pending
 *     or down) and have no operator in flight.
 * The store can only merge Regions whose voters are on the same stores
 * (docs/merge.md), so when they differ the operator first moves the
 * source's peers onto the target's stores (addLearner, promoteLearner,
 * leader away, removePeer: one replacement at a time, never below a live
 * quorum), and only then has the step `merge` with the target, sent to
 * the source's leader, as PD's CreateMergeRegionOperator does. One
 * operator for both keeps the pair locked from the start: the target is
 * busy while a merge operator points at it, so no balancer moves it (or
 * the source) between the moves and the merge; two separate operators
 * ping-pong with balance-region. It finishes when the target's heartbeat
 * shows it absorbed the source.
 */
export class MergeChecker implements Scheduler {
  readonly name = 'merge-checker';
  readonly limit: number;
  readonly operatorTimeoutMs: number;
  private readonly maxSizeBytes: number;
  private readonly maxKeys: number;
  private readonly splitMergeIntervalMs: number;
  private readonly patrolBatch: number;
  private cursor = 0;
  /** startedAtMs: the first round's clock; nothing merges until splitMergeIntervalMs after it. */
  private startedAtMs: number | undefined;

  constructor(opts: MergeCheckerOptions = {}) {
    this.limit = opts.limit ?? 8;
    this.operatorTimeoutMs = opts.operatorTimeoutMs ?? 10 * 60_000;
    this.maxSizeBytes = opts.maxMergeRegionSizeBytes ?? 20 * 1024 * 1024;
    this.maxKeys = opts.maxMergeRegionKeys ?? 200_000;
    this.splitMergeIntervalMs = opts.splitMergeIntervalMs ?? 60 * 60_000;
    this.patrolBatch = opts.patrolBatch ?? 1024;
    for (const [name, v] of [
      ['limit', this.limit],
      ['operatorTimeoutMs', this.operatorTimeoutMs],
      ['patrolBatch', this.patrolBatch],
    ] as const) {
      if (!(Number.isSafeInteger(v) && v > 0)) throw new Error(`mergeChecker.${name}: ${v} is not a positive integer`);
    }
    for (const [name, v] of [
      ['maxMergeRegionSizeBytes', this.maxSizeBytes],
      ['maxMergeRegionKeys', this.maxKeys],
      ['splitMergeIntervalMs', this.splitMergeIntervalMs],
    ] as const) {
      if (!(Number.isSafeInteger(v) && v >= 0)) throw new Error(`mergeChecker.${name}: ${v} is not a non-negative integer`);
    }
  }

  schedule(view: ClusterView, budget: number): OperatorDraft[] {
    const now = view.nowMs();
    this.startedAtMs ??= now;
    const out: OperatorDraft[] = [];
    if (now - this.startedAtMs < this.splitMergeIntervalMs) return out;
    const total = view.regionCount();
    if (total < 2) return out;
    // Regions already paired this round: each takes part in at most one operator.
    const taken = new Set<number>();
    const n = Math.min(this.patrolBatch, total);
    for (let i = 0; i < n && out.length < budget; i++) {
      if (this.cursor >= total) this.cursor = 0;
      const info = view.regionAt(this.cursor++);
      if (info === undefined || taken.has(info.region.id)) continue;
      const draft = this.check(view, info, taken, now);
      if (draft === undefined) continue;
      out.push(draft.op);
      taken.add(info.region.id);
      taken.add(draft.target);
    }
    return out;
  }

  /** qualifies: the Region may take part in a merge now (either side). */
  qualifies(view: ClusterView, info: RegionInfo, now: number): boolean {
    if (view.hasOperator(info.region.id)) return false;
    if (info.approximateSizeBytes > this.maxSizeBytes || info.approximateKeys > this.maxKeys) return false;
    const split = view.lastSplitMs(info.region.id);
    if (split !== undefined && now - split < this.splitMergeIntervalMs) return false;
    return isRegionHealthy(view, info);
  }

  /** check returns the operator that merges `source` into its smaller qualifying neighbour (moving its peers first when their stores differ), if any. */
  check(view: ClusterView, source: RegionInfo, taken: ReadonlySet<number>, now: number): { op: OperatorDraft; target: number } | undefined {
    if (!this.qualifies(view, source, now)) return undefined;
    const { prev, next } = view.adjacentRegions(source.region.id);
    let target: RegionInfo | undefined;
    for (const cand of [prev, next]) {
      if (cand === undefined || taken.has(cand.region.id) || !this.qualifies(view, cand, now)) continue;
      if (target === undefined || smaller(cand, target)) target = cand;
    }
    if (target === undefined) return undefined;
    const sourceStores = new Set(source.region.peers.map((p) => p.storeId));
    const targetStores = new Set(target.region.peers.map((p) => p.storeId));
    const missing = [...targetStores].filter((s) => !sourceStores.has(s));
    const extra = source.region.peers.filter((p) => !targetStores.has(p.storeId));
    const regionId = source.region.id;
    // Both are healthy, so both have maxReplicas voters: every missing store pairs with one extra peer.
    if (missing.length !== extra.length) return undefined;
    // Moving the source's peers there would add its data to a store low on space.
    if (missing.some((s) => view.isLowSpace(s))) return undefined;
    const steps: OperatorStep[] = [];
    const ids = missing.length > 0 ? view.allocId(missing.length) : [];
    let leaderId = source.leader!.id;
    for (let i = 0; i < missing.length; i++) {
      const learner: Peer = { id: ids[i]!, storeId: missing[i]!, role: 'learner' };
      const voter: Peer = { ...learner, role: 'voter' };
      const old = extra[i]!;
      steps.push({ type: 'addLearner', peer: learner }, { type: 'promoteLearner', peer: voter });
      if (old.id === leaderId) {
        steps.push({ type: 'transferLeader', fromStoreId: old.storeId, toStoreId: voter.storeId, peer: voter });
        leaderId = voter.id;
      }
      steps.push({ type: 'removePeer', peer: old });
    }
    steps.push({ type: 'merge', target: target.region });
    const moved = missing.length === 0 ? '' : ` after moving its peers from stores [${extra.map((p) => p.storeId).join(',')}] to [${missing.join(',')}]`;
    return {
      target: target.region.id,
      op: { regionId, kind: 'merge', steps, description: `merge region ${regionId} into region ${target.region.id}${moved}` },
    };
  }
}

/** smaller orders merge targets the way PD does: fewer bytes first, then fewer keys. */
function smaller(a: RegionInfo, b: RegionInfo): boolean {
  if (a.approximateSizeBytes !== b.approximateSizeBytes) return a.approximateSizeBytes < b.approximateSizeBytes;
  return a.approximateKeys < b.approximateKeys;
}
