import type { Peer, Region } from '@flotilla/proto';
import type { Operator, OperatorInstruction, OperatorStep, RegionInfo } from '../types';

/**
 * isStepDone decides from a Region's latest heartbeat whether a step has
 * taken effect (PD's Step.IsFinish). Steps are never acknowledged
 * explicitly: the Region's reported meta is the only truth.
 */
export function isStepDone(step: OperatorStep, info: RegionInfo): boolean {
  const peers = info.region.peers;
  const find = (id: number): Peer | undefined => peers.find((p) => p.id === id);
  const pending = (id: number): boolean => info.pendingPeers.some((p) => p.id === id);
  switch (step.type) {
    case 'addLearner': {
      const p = find(step.peer.id);
      return p !== undefined && !pending(p.id);
    }
    case 'addPeer': {
      const p = find(step.peer.id);
      return p !== undefined && p.role === 'voter' && !pending(p.id);
    }
    case 'promoteLearner':
      return find(step.peer.id)?.role === 'voter';
    case 'removePeer':
      return find(step.peer.id) === undefined;
    case 'transferLeader':
      return info.leader?.storeId === step.toStoreId;
    case 'merge':
      // Never done by the source's own meta: the operator finishes when the target's report replaces the
      // source in the tree (OperatorController.onRegionReplaced).
      return false;
  }
}

/** instructionOf renders the operator's current step for a heartbeat response. */
export function instructionOf(op: Operator): OperatorInstruction {
  const step = op.steps[op.currentStep];
  if (step === undefined) throw new Error(`operator ${op.id} has no step ${op.currentStep}`);
  return { operatorId: op.id, kind: op.kind, step, stepIndex: op.currentStep, stepCount: op.steps.length };
}

/** majority is the quorum size of n voters. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** LivenessProbe says whether a store can currently serve a live peer. */
export type StoreLiveness = (storeId: number) => boolean;

/**
 * checkOperatorSafety replays `steps` on the Region's membership and returns
 * why the operator would be unsafe, or null. Unsafe means: at some point the
 * live voters would be fewer than a quorum of all voters, the leader would
 * be removed, a step contradicts the membership (promote a non-learner,
 * two peers on one store), or leadership would go to a non-voter.
 *
 * Steps already applied (the peer exists, is a voter, is gone) are skipped,
 * so a running operator can be re-checked from its current step.
 *
 * A voter is live when its store is live and the leader does not report it
 * down. A peer added directly as a voter (addPeer) is not counted live: it
 * has not caught up yet, which is why schedulers add learners first.
 */
export function checkOperatorSafety(info: RegionInfo, steps: readonly OperatorStep[], isStoreLive: StoreLiveness): string | null {
  interface SimPeer {
    storeId: number;
    role: 'voter' | 'learner';
    live: boolean;
  }
  const downIds = new Set(info.downPeers.map((d) => d.peer.id));
  const sim = new Map<number, SimPeer>();
  for (const p of info.region.peers) sim.set(p.id, { storeId: p.storeId, role: p.role, live: isStoreLive(p.storeId) && !downIds.has(p.id) });
  let leaderId = info.leader?.id;
  const quorumOk = (): string | null => {
    let voters = 0;
    let live = 0;
    for (const p of sim.values()) {
      if (p.role !== 'voter') continue;
      voters++;
      if (p.live) live++;
    }
    if (voters === 0) return 'no voters left';
    return live >= majority(voters) ? null : `only ${live} of ${voters} voters live (quorum ${majority(voters)})`;
  };
  const initial = quorumOk();
  if (initial !== null) return `region ${info.region.id} has no live quorum before the operator: ${initial}`;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    const where = `step ${i} (${step.type})`;
    switch (step.type) {
      case 'addLearner':
      case 'addPeer': {
        const existing = sim.get(step.peer.id);
        if (existing && existing.storeId === step.peer.storeId) break; // already applied (re-check of a running operator)
        if (existing) return `${where}: peer ${step.peer.id} already exists on store ${existing.storeId}`;
        for (const p of sim.values()) if (p.storeId === step.peer.storeId) return `${where}: store ${step.peer.storeId} already hosts a peer`;
        const live = step.type === 'addLearner' && isStoreLive(step.peer.storeId);
        sim.set(step.peer.id, { storeId: step.peer.storeId, role: step.type === 'addLearner' ? 'learner' : 'voter', live });
        break;
      }
      case 'promoteLearner': {
        const p = sim.get(step.peer.id);
        if (p?.role === 'voter') break; // already applied
        if (!p) return `${where}: peer ${step.peer.id} is not a learner`;
        p.role = 'voter';
        break;
      }
      case 'removePeer': {
        if (!sim.has(step.peer.id)) break; // already applied
        if (leaderId === undefined) return `${where}: leader unknown, cannot remove safely`;
        if (leaderId === step.peer.id) return `${where}: would remove the leader (transfer it first)`;
        sim.delete(step.peer.id);
        break;
      }
      case 'transferLeader': {
        let target: number | undefined;
        for (const [id, p] of sim) if (p.storeId === step.toStoreId && p.role === 'voter' && p.live) target = id;
        if (target === undefined) return `${where}: no live voter on store ${step.toStoreId}`;
        leaderId = target;
        break;
      }
      case 'merge':
        break;
    }
    const q = quorumOk();
    if (q !== null) return `${where}: ${q}`;
  }
  return null;
}

/** describeSteps renders steps for logs and status pages. */
export function describeSteps(steps: readonly OperatorStep[]): string {
  return steps
    .map((s) => {
      switch (s.type) {
        case 'transferLeader':
          return `transferLeader(${s.fromStoreId}->${s.toStoreId})`;
        case 'merge':
          return `merge(->${s.target.id})`;
        default:
          return `${s.type}(peer ${s.peer.id}@store ${s.peer.storeId})`;
      }
    })
    .join(', ');
}

/** regionStores lists the stores hosting a peer of the Region. */
export function regionStores(region: Region): Set<number> {
  return new Set(region.peers.map((p) => p.storeId));
}
