import type { Operator, OperatorInstruction, RegionInfo } from '../types';
import { checkOperatorSafety, describeSteps, instructionOf, isStepDone, type StoreLiveness } from './operator';

/** StoreInfluence is how in-flight operators will change a store's counts once they finish. */
export interface StoreInfluence {
  regions: number;
  leaders: number;
}

/** OperatorControllerStats counts operator outcomes since start. */
export interface OperatorControllerStats {
  added: number;
  finished: number;
  canceled: number;
  timedOut: number;
  rejected: number;
}

/** FinishedOperator is one entry of OperatorController.recent: an operator that left the controller, and how. */
export interface FinishedOperator {
  id: number;
  regionId: number;
  kind: Operator['kind'];
  scheduler: string;
  description: string;
  outcome: 'finished' | 'canceled' | 'timedOut';
  reason?: string;
  /** atMs is wall-clock ms when it finished. */
  atMs: number;
}

/** RECENT_OPERATORS bounds OperatorController.recent (the dashboard's "recent operators"). */
export const RECENT_OPERATORS = 64;

/** OperatorControllerOptions wires the controller to the rest of the cluster. */
export interface OperatorControllerOptions {
  /** persist records an operator change (null = gone); batched by the caller. */
  persist: (regionId: number, op: Operator | null) => void;
  onEvent?: (event: 'added' | 'finished' | 'canceled' | 'timedOut' | 'rejected', op: Operator, reason?: string) => void;
  /** maxOperators bounds the operators in flight across all schedulers. */
  maxOperators?: number;
}

/**
 * OperatorController owns every operator in flight: at most one per Region,
 * per-scheduler counts (for limits), step progress driven by region
 * heartbeats, timeouts, and the safety check every new operator must pass.
 */
export class OperatorController {
  private readonly byRegion = new Map<number, Operator>();
  private readonly perScheduler = new Map<string, number>();
  /**
   * mergeTargets maps the target of every merge operator in flight to its
   * source Region: a target must not change (split, conf change) while a
   * source is being folded into it, or the merge rolls back.
   */
  private readonly mergeTargets = new Map<number, number>();
  private readonly maxOperators: number;
  readonly stats: OperatorControllerStats = { added: 0, finished: 0, canceled: 0, timedOut: 0, rejected: 0 };
  /** finishedRing holds the last RECENT_OPERATORS operators to finish, oldest first (not persisted). */
  private readonly finishedRing: FinishedOperator[] = [];

  constructor(private readonly opts: OperatorControllerOptions) {
    this.maxOperators = opts.maxOperators ?? 10_000;
  }

  get size(): number {
    return this.byRegion.size;
  }

  get(regionId: number): Operator | undefined {
    return this.byRegion.get(regionId);
  }

  has(regionId: number): boolean {
    return this.byRegion.has(regionId);
  }

  all(): Operator[] {
    return [...this.byRegion.values()];
  }

  /** recent returns the last operators to finish, be canceled or time out, newest first. */
  recent(): FinishedOperator[] {
    return [...this.finishedRing].reverse();
  }

  /** isBusy: the Region has an operator, or another Region's merge operator targets it. */
  isBusy(regionId: number): boolean {
    return this.byRegion.has(regionId) || this.mergeTargets.has(regionId);
  }

  /** mergeSourceOf returns the Region whose merge operator targets `regionId`, if any. */
  mergeSourceOf(regionId: number): number | undefined {
    return this.mergeTargets.get(regionId);
  }

  private track(op: Operator): void {
    this.byRegion.set(op.regionId, op);
    this.perScheduler.set(op.scheduler, this.countOf(op.scheduler) + 1);
    const target = mergeTargetOf(op);
    if (target !== undefined) this.mergeTargets.set(target, op.regionId);
  }

  countOf(scheduler: string): number {
    return this.perScheduler.get(scheduler) ?? 0;
  }

  /** restore re-installs operators loaded from disk (no safety re-check: the Region may have moved on; the next heartbeat or the timeout settles them). */
  restore(ops: Operator[]): void {
    for (const op of ops) {
      if (this.byRegion.has(op.regionId)) continue;
      const target = mergeTargetOf(op);
      if (target !== undefined && this.isBusy(target)) {
        this.opts.persist(op.regionId, null); // a persisted pair that no longer fits; the checker re-plans
        continue;
      }
      this.track(op);
    }
  }

  /**
   * add installs an operator if the Region has none, the total limit allows
   * it and checkOperatorSafety accepts it. Returns the rejection reason or null.
   */
  add(op: Operator, info: RegionInfo, isStoreLive: StoreLiveness): string | null {
    let reason: string | null = null;
    if (op.regionId !== info.region.id) reason = `operator for region ${op.regionId} checked against region ${info.region.id}`;
    else if (op.steps.length === 0) reason = 'operator has no steps';
    else if (this.byRegion.has(op.regionId)) reason = `region ${op.regionId} already has operator ${this.byRegion.get(op.regionId)!.id}`;
    else if (this.mergeTargets.has(op.regionId)) reason = `region ${op.regionId} is the target of region ${this.mergeTargets.get(op.regionId)}'s merge`;
    else if (this.byRegion.size >= this.maxOperators) reason = `${this.maxOperators} operators already in flight`;
    else {
      const target = mergeTargetOf(op);
      if (target === op.regionId) reason = `region ${op.regionId} cannot merge into itself`;
      else if (target !== undefined && this.isBusy(target)) reason = `merge target region ${target} is busy with another operator`;
      else reason = checkOperatorSafety(info, op.steps, isStoreLive);
    }
    if (reason !== null) {
      this.stats.rejected++;
      this.opts.onEvent?.('rejected', op, reason);
      return reason;
    }
    this.track(op);
    this.stats.added++;
    this.opts.persist(op.regionId, op);
    this.opts.onEvent?.('added', op, describeSteps(op.steps));
    return null;
  }

  private finish(op: Operator, outcome: 'finished' | 'canceled' | 'timedOut', reason?: string): void {
    if (this.byRegion.get(op.regionId) !== op) return;
    this.byRegion.delete(op.regionId);
    this.perScheduler.set(op.scheduler, this.countOf(op.scheduler) - 1);
    const target = mergeTargetOf(op);
    if (target !== undefined && this.mergeTargets.get(target) === op.regionId) this.mergeTargets.delete(target);
    this.stats[outcome]++;
    this.finishedRing.push({ id: op.id, regionId: op.regionId, kind: op.kind, scheduler: op.scheduler, description: op.description, outcome, ...(reason !== undefined ? { reason } : {}), atMs: Date.now() });
    if (this.finishedRing.length > RECENT_OPERATORS) this.finishedRing.shift();
    this.opts.persist(op.regionId, null);
    this.opts.onEvent?.(outcome, op, reason);
  }

  /**
   * onRegionReplaced settles the operator of a Region that another Region's
   * report replaced: finished if it was merging into exactly that Region
   * (the merge took effect), cancelled otherwise.
   */
  onRegionReplaced(regionId: number, byRegionId: number): void {
    const op = this.byRegion.get(regionId);
    if (!op) return;
    const step = op.steps[op.currentStep];
    if (step?.type === 'merge' && step.target.id === byRegionId && op.currentStep === op.steps.length - 1) this.finish(op, 'finished');
    else this.finish(op, 'canceled', `region ${regionId} replaced by region ${byRegionId}`);
  }

  /** cancel drops the Region's operator, if any (its Region split, merged or vanished). */
  cancel(regionId: number, reason: string): void {
    const op = this.byRegion.get(regionId);
    if (op) this.finish(op, 'canceled', reason);
  }

  /**
   * onHeartbeat advances the Region's operator past every step the heartbeat
   * shows done, finishes or cancels it, and returns the step to execute now.
   */
  onHeartbeat(info: RegionInfo, nowMs: number, isStoreLive?: StoreLiveness, isQuorumLive?: StoreLiveness): OperatorInstruction | undefined {
    const op = this.byRegion.get(info.region.id);
    if (op === undefined) return undefined;
    if (nowMs > op.deadlineMs) {
      this.finish(op, 'timedOut', `deadline passed at step ${op.currentStep}`);
      return undefined;
    }
    // PrepareMerge bumps the source's version by one (docs/merge.md): that is the merge step in progress, not a
    // split. Finished when the target absorbs the source (onRegionReplaced); a rollback bumps it again and cancels.
    const preparing = op.steps[op.currentStep]?.type === 'merge' && info.region.epoch.version === op.regionVersion + 1;
    if (info.region.epoch.version !== op.regionVersion && !preparing) {
      this.finish(op, 'canceled', `region version changed ${op.regionVersion} -> ${info.region.epoch.version}`);
      return undefined;
    }
    const before = op.currentStep;
    while (op.currentStep < op.steps.length && isStepDone(op.steps[op.currentStep]!, info)) op.currentStep++;
    if (op.currentStep >= op.steps.length) {
      this.finish(op, 'finished');
      return undefined;
    }
    if (op.currentStep !== before) this.opts.persist(op.regionId, op);
    if (isStoreLive) {
      // The cluster may have changed since the operator was planned: re-check before every instruction.
      const step = op.steps[op.currentStep]!;
      const target = step.type === 'transferLeader' ? step.toStoreId : step.type === 'merge' || step.type === 'removePeer' ? undefined : step.peer.storeId;
      if (target !== undefined && !isStoreLive(target)) {
        this.finish(op, 'canceled', `target store ${target} of step ${op.currentStep} (${step.type}) is no longer live`);
        return undefined;
      }
      if (step.type === 'removePeer' && info.leader?.id === step.peer.id) {
        // The peer to remove became leader (an election since planning): move leadership away first, then remove.
        const to = info.region.peers.find(
          (p) =>
            p.id !== step.peer.id &&
            p.role === 'voter' &&
            isStoreLive(p.storeId) &&
            !info.pendingPeers.some((x) => x.id === p.id) &&
            !info.downPeers.some((x) => x.peer.id === p.id),
        );
        if (!to) {
          this.finish(op, 'canceled', `peer ${step.peer.id} to remove leads and no live voter can take over`);
          return undefined;
        }
        return {
          operatorId: op.id,
          kind: op.kind,
          step: { type: 'transferLeader', fromStoreId: step.peer.storeId, toStoreId: to.storeId, peer: to },
          stepIndex: op.currentStep,
          stepCount: op.steps.length,
        };
      }
      // Removing a voter is where a wrong liveness guess loses the quorum: for
      // that step, count only stores heard from since placement started.
      const rest = op.steps.slice(op.currentStep);
      const unsafe = checkOperatorSafety(info, rest, rest[0]?.type === 'removePeer' && isQuorumLive ? isQuorumLive : isStoreLive);
      if (unsafe !== null) {
        this.finish(op, 'canceled', `no longer safe: ${unsafe}`);
        return undefined;
      }
    }
    return instructionOf(op);
  }

  /** expire times out every operator past its deadline (Regions that stopped heartbeating). */
  expire(nowMs: number): void {
    for (const op of this.byRegion.values()) if (nowMs > op.deadlineMs) this.finish(op, 'timedOut', 'deadline passed without heartbeat');
  }

  /** influence sums what the unfinished steps of all operators will do to each store's counts. */
  influence(): Map<number, StoreInfluence> {
    const out = new Map<number, StoreInfluence>();
    const get = (storeId: number): StoreInfluence => {
      let v = out.get(storeId);
      if (!v) out.set(storeId, (v = { regions: 0, leaders: 0 }));
      return v;
    };
    for (const op of this.byRegion.values()) {
      for (let i = op.currentStep; i < op.steps.length; i++) {
        const s = op.steps[i]!;
        if (s.type === 'addLearner' || s.type === 'addPeer') get(s.peer.storeId).regions++;
        else if (s.type === 'removePeer') get(s.peer.storeId).regions--;
        else if (s.type === 'transferLeader') {
          get(s.fromStoreId).leaders--;
          get(s.toStoreId).leaders++;
        } else if (s.type === 'merge') {
          // The source (on the target's stores, or the store refuses) disappears; its leadership goes with it.
          for (const p of s.target.peers) get(p.storeId).regions--;
        }
      }
    }
    return out;
  }
}

/** mergeTargetOf returns the Region ID an operator merges its Region into, if it has a merge step. */
export function mergeTargetOf(op: Operator): number | undefined {
  for (const s of op.steps) if (s.type === 'merge') return s.target.id;
  return undefined;
}
