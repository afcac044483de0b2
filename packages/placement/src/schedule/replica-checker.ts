import type { Peer } from '@flotilla/proto';
import type { OperatorStep, RegionInfo } from '../types';
import { majority } from './operator';
import type { StoreInfluence } from './operator-controller';
import { isPeerDead, pickTargetStore, type ClusterView, type OperatorDraft, type Scheduler, type SchedulerLimits } from './scheduler';

export interface ReplicaCheckerOptions extends SchedulerLimits {
  /** patrolBatch bounds how many Regions one round inspects (the patrol resumes where it stopped). */
  patrolBatch?: number;
}

/**
 * ReplicaChecker keeps every Region at maxReplicas live voters (PD's
 * replica checker). It patrols the Region tree in key order, a bounded
 * batch per round, and proposes:
 *   - a dead voter (store down/tombstone, or reported down too long):
 *     addLearner on the best store, promote it, then remove the dead peer;
 *     or just remove it when there are more voters than needed;
 *   - a voter on an offline store (being removed): the same replacement,
 *     with its leadership transferred first when it leads (or just the
 *     removal when there are more voters than needed);
 *   - too few voters: addLearner + promote on the best store;
 *   - too many voters: remove a non-leader voter on the fullest store;
 *   - a stray learner: promote it when a voter is missing (unless its store
 *     is offline), else remove it.
 * A Region without a live quorum is skipped: no membership change can
 * commit there, so any operator would only time out.
 */
export class ReplicaChecker implements Scheduler {
  readonly name = 'replica-checker';
  readonly limit: number;
  readonly operatorTimeoutMs: number;
  private readonly patrolBatch: number;
  private cursor = 0;

  constructor(opts: ReplicaCheckerOptions = {}) {
    this.limit = opts.limit ?? 64;
    this.operatorTimeoutMs = opts.operatorTimeoutMs ?? 10 * 60_000;
    this.patrolBatch = opts.patrolBatch ?? 1024;
  }

  schedule(view: ClusterView, budget: number): OperatorDraft[] {
    const out: OperatorDraft[] = [];
    const total = view.regionCount();
    if (total === 0) return out;
    const influence = view.influence();
    const extra = new Map<number, number>();
    const n = Math.min(this.patrolBatch, total);
    for (let i = 0; i < n && out.length < budget; i++) {
      if (this.cursor >= total) this.cursor = 0;
      const info = view.regionAt(this.cursor++);
      if (info === undefined || view.hasOperator(info.region.id)) continue;
      const draft = this.check(view, info, influence, extra);
      if (draft) out.push(draft);
    }
    return out;
  }

  /** check returns the operator one Region needs, if any. */
  check(view: ClusterView, info: RegionInfo, influence: Map<number, StoreInfluence>, extra: Map<number, number>): OperatorDraft | undefined {
    const region = info.region;
    const voters = region.peers.filter((p) => p.role === 'voter');
    const learners = region.peers.filter((p) => p.role === 'learner');
    const dead = voters.filter((p) => isPeerDead(view, info, p));
    if (voters.length - dead.length < majority(voters.length)) return undefined;
    const leaderId = info.leader?.id;
    const stores = new Set(region.peers.map((p) => p.storeId));
    const newPeer = (): Peer | undefined => {
      const target = pickTargetStore(view, stores, influence, extra);
      if (target === undefined) return undefined;
      extra.set(target, (extra.get(target) ?? 0) + 1);
      return { id: view.allocId(1)[0]!, storeId: target, role: 'learner' };
    };

    const stray = learners[0];
    if (stray !== undefined) {
      // A learner left behind by a timed-out operator is promoted if a live voter is missing (the safety check vets it).
      if (!isPeerDead(view, info, stray) && !isOffline(view, stray) && voters.length - dead.length < view.maxReplicas) {
        return { regionId: region.id, kind: 'add-replica', steps: [{ type: 'promoteLearner', peer: stray }], description: `promote stray learner ${stray.id}` };
      }
      return { regionId: region.id, kind: 'remove-replica', steps: [{ type: 'removePeer', peer: stray }], description: `remove stray learner ${stray.id}` };
    }
    const firstDead = dead.find((p) => p.id !== leaderId);
    if (firstDead !== undefined) {
      if (voters.length > view.maxReplicas) {
        return { regionId: region.id, kind: 'remove-replica', steps: [{ type: 'removePeer', peer: firstDead }], description: `remove dead peer ${firstDead.id} (store ${firstDead.storeId})` };
      }
      const p = newPeer();
      if (p === undefined) return undefined;
      return {
        regionId: region.id,
        kind: 'replace-replica',
        steps: [
          { type: 'addLearner', peer: p },
          { type: 'promoteLearner', peer: { ...p, role: 'voter' } },
          { type: 'removePeer', peer: firstDead },
        ],
        description: `replace dead peer ${firstDead.id} (store ${firstDead.storeId}) with peer ${p.id} on store ${p.storeId}`,
      };
    }
    const leaving = voters.find((p) => isOffline(view, p));
    if (leaving !== undefined) return moveOffOffline(view, info, leaving, voters.length, newPeer);
    if (voters.length < view.maxReplicas) {
      const p = newPeer();
      if (p === undefined) return undefined;
      return {
        regionId: region.id,
        kind: 'add-replica',
        steps: [
          { type: 'addLearner', peer: p },
          { type: 'promoteLearner', peer: { ...p, role: 'voter' } },
        ],
        description: `add peer ${p.id} on store ${p.storeId} (${voters.length} of ${view.maxReplicas} voters)`,
      };
    }
    if (voters.length > view.maxReplicas) {
      let victim: Peer | undefined;
      let victimScore = -Infinity;
      for (const p of voters) {
        if (p.id === leaderId) continue;
        const score = view.regionCountOf(p.storeId) + (influence.get(p.storeId)?.regions ?? 0);
        if (score > victimScore) {
          victim = p;
          victimScore = score;
        }
      }
      if (victim === undefined) return undefined;
      return { regionId: region.id, kind: 'remove-replica', steps: [{ type: 'removePeer', peer: victim }], description: `remove extra peer ${victim.id} on store ${victim.storeId}` };
    }
    return undefined;
  }
}

/** isOffline: the peer's store is being removed (`flotilla store remove`), so the peer must move. */
function isOffline(view: ClusterView, p: Peer): boolean {
  return view.storeState(p.storeId) === 'offline';
}

/**
 * moveOffOffline plans the move of one voter off an offline store: add a
 * learner on the best store, promote it, hand over leadership if the
 * leaving peer leads, then remove it. With more voters than needed, only
 * the leadership handover and the removal.
 */
function moveOffOffline(view: ClusterView, info: RegionInfo, leaving: Peer, voterCount: number, newPeer: () => Peer | undefined): OperatorDraft | undefined {
  const regionId = info.region.id;
  const leads = info.leader?.id === leaving.id;
  const handover = (fallback: Peer | undefined): OperatorStep[] | undefined => {
    if (!leads) return [];
    const to = leaderTarget(view, info, leaving) ?? fallback;
    return to ? [{ type: 'transferLeader', fromStoreId: leaving.storeId, toStoreId: to.storeId, peer: to }] : undefined;
  };
  const what = `peer ${leaving.id} off offline store ${leaving.storeId}`;
  if (voterCount > view.maxReplicas) {
    const steps = handover(undefined);
    if (steps === undefined) return undefined;
    return { regionId, kind: 'remove-replica', steps: [...steps, { type: 'removePeer', peer: leaving }], description: `remove ${what}` };
  }
  const p = newPeer();
  if (p === undefined) return undefined;
  const voter: Peer = { ...p, role: 'voter' };
  const steps = handover(voter);
  if (steps === undefined) return undefined;
  return {
    regionId,
    kind: 'replace-replica',
    steps: [{ type: 'addLearner', peer: p }, { type: 'promoteLearner', peer: voter }, ...steps, { type: 'removePeer', peer: leaving }],
    description: `move ${what} to peer ${p.id} on store ${p.storeId}`,
  };
}

/** leaderTarget: a voter other than `leaving` on an up store, neither pending nor down, to take over leadership. */
function leaderTarget(view: ClusterView, info: RegionInfo, leaving: Peer): Peer | undefined {
  return info.region.peers.find(
    (p) =>
      p.id !== leaving.id &&
      p.role === 'voter' &&
      view.storeState(p.storeId) === 'up' &&
      !info.pendingPeers.some((x) => x.id === p.id) &&
      !info.downPeers.some((x) => x.peer.id === p.id),
  );
}
