// The checkers. During the run, after every clock slice: placement's Region
// tree invariants, Region epochs that never go back (in placement and in
// every store's peers, across restarts) and, once a virtual second, replica
// consistency. At the end: convergence of the routing table and of every
// replica, and linearizability of the whole history.
//
// Stores are read through store.inspect() (PeerView copies) and
// store.stateMachine only.
import { compareKeys, type Region, type RegionEpoch } from '@flotilla/proto';
import type { Store } from '@flotilla/store';
import { checkKvHistory, explainFailure, type CheckResult, type KvOperation } from './linearizability';
import type { SimCluster } from './cluster';
import { virtualNow } from './clock';
import { text } from './keys';
import { LeaderRouting } from './placement-checkers';
import { termOf } from './placement-group';

/** COMMITTED_SAMPLE_INTERVAL_MS: how often the members' applied Region rows are read for LeaderRouting. */
const COMMITTED_SAMPLE_INTERVAL_MS = 500;

/** REPLICA_CHECK_INTERVAL_MS: replica comparison scans every Region on every store, so it runs once a virtual second. */
const REPLICA_CHECK_INTERVAL_MS = 1000;
/** MAX_SCAN_KEYS bounds a Region scan of a checker (far above the workload's key universe). */
const MAX_SCAN_KEYS = 100_000;

const epochBack = (prev: RegionEpoch, e: RegionEpoch): boolean => e.version < prev.version || e.confVer < prev.confVer;

/** SafetyCheckers run after every slice and report each violation through fail. */
export class SafetyCheckers {
  private readonly placementEpochs = new Map<number, RegionEpoch>();
  /** storeEpochs: by "store/region/peer", the last epoch seen (outlives restarts: it must not go back either). */
  private readonly storeEpochs = new Map<string, RegionEpoch>();
  /** diverged: Regions already reported as diverged (reported once). */
  private readonly diverged = new Set<number>();
  private lastReplicaCheckMs = 0;
  private lastCommittedSampleMs = 0;
  /** routing: the leader routing-table checker (placements: 3). */
  readonly routing = new LeaderRouting();
  private readonly leaderships = new Set<object>();
  private reportedRouting = 0;

  constructor(
    private readonly cluster: SimCluster,
    private readonly fail: (reason: string) => void,
  ) {}

  check(): void {
    this.checkPlacement();
    this.checkStoreEpochs();
    this.checkReplicas();
  }

  /** finish reports what the routing checker found (it reports as it goes; this catches the last slice). */
  finish(): { placementLeaders: number } {
    this.reportRouting();
    return { placementLeaders: this.leaderships.size };
  }

  private reportRouting(): void {
    for (const v of this.routing.violations.slice(this.reportedRouting)) this.fail(`placement routing: ${v}`);
    this.reportedRouting = this.routing.violations.length;
  }

  /**
   * checkGroup: every member serving as leader (a deposed one may not have
   * noticed yet) is checked by LeaderRouting; every half virtual second,
   * the Region rows each live member has applied (committed) feed it.
   */
  private checkGroup(): void {
    const g = this.cluster.group!;
    if (Date.now() - this.lastCommittedSampleMs >= COMMITTED_SAMPLE_INTERVAL_MS) {
      this.lastCommittedSampleMs = Date.now();
      for (const s of g.up()) {
        const m = s.member!;
        this.routing.committed(m.fsm.store.appliedTerm, m.storage.loadState().regions.map((i) => ({ id: i.region.id, epoch: i.region.epoch })));
      }
    }
    for (const m of g.serving()) {
      const c = m.leaderCluster!;
      this.leaderships.add(c);
      let treeError: string | undefined;
      try {
        c.tree.checkInvariants();
      } catch (e) {
        treeError = (e as Error).message;
      }
      const regions = c.tree.all().map((i) => ({ id: i.region.id, epoch: i.region.epoch }));
      this.routing.check(virtualNow(), { leadership: c, member: m.name, term: termOf(m), regions, ...(treeError ? { treeError } : {}) });
    }
    this.reportRouting();
  }

  private checkPlacement(): void {
    if (this.cluster.group) return this.checkGroup();
    if (this.cluster.placementDown) return;
    try {
      this.cluster.placement.tree.checkInvariants();
    } catch (e) {
      this.fail(`placement Region tree invariant broken at ${virtualNow()} ms: ${(e as Error).message}`);
    }
    for (const info of this.cluster.regions()) {
      const r = info.region;
      const prev = this.placementEpochs.get(r.id);
      if (prev && epochBack(prev, r.epoch)) this.fail(`Region ${r.id} epoch went back in placement: ${JSON.stringify(prev)} -> ${JSON.stringify(r.epoch)}`);
      this.placementEpochs.set(r.id, { ...r.epoch });
    }
  }

  private checkStoreEpochs(): void {
    for (const { storeId, peer: p } of this.cluster.peerViews()) {
      if (!p.initialized) continue;
      const k = `${storeId}/${p.regionId}/${p.peerId}`;
      const prev = this.storeEpochs.get(k);
      const e = p.region.epoch;
      if (prev && epochBack(prev, e)) this.fail(`store ${storeId} Region ${p.regionId} peer ${p.peerId} epoch went back: ${JSON.stringify(prev)} -> ${JSON.stringify(e)}`);
      this.storeEpochs.set(k, { ...e });
    }
  }

  /**
   * checkReplicas: peers of a Region at the same epoch and the same applied
   * index must hold the same data in its range (state-machine safety).
   */
  private checkReplicas(): void {
    if (Date.now() - this.lastReplicaCheckMs < REPLICA_CHECK_INTERVAL_MS) return;
    this.lastReplicaCheckMs = Date.now();
    const byState = new Map<string, { storeId: number; data: string }[]>();
    for (const { storeId, store, peer: p } of this.cluster.peerViews()) {
      if (!p.initialized || this.diverged.has(p.regionId)) continue;
      const k = `${p.regionId}/${p.region.epoch.version}/${p.region.epoch.confVer}/${p.appliedIndex}`;
      let list = byState.get(k);
      if (!list) byState.set(k, (list = []));
      list.push({ storeId, data: regionData(store, p.region) });
    }
    for (const [k, list] of byState) {
      const first = list[0]!;
      const other = list.find((x) => x.data !== first.data);
      if (!other) continue;
      const regionId = Number(k.split('/')[0]);
      this.diverged.add(regionId);
      const diff = diffData(first.data, other.data, `store ${first.storeId}`, `store ${other.storeId}`);
      this.fail(`replicas diverged at ${virtualNow()} ms: Region ${regionId} (epoch/applied ${k.split('/').slice(1).join('/')}) on stores ${first.storeId} and ${other.storeId}: ${diff.slice(0, 6).join('; ')}`);
    }
  }
}

/** regionData renders a store's data in a Region's range, for comparing replicas. */
function regionData(store: Store, region: Region): string {
  return JSON.stringify(store.stateMachine.scan(region.startKey, region.endKey, MAX_SCAN_KEYS).map((p) => [text(p.key), text(p.value)]));
}

/** diffData lists the keys on which two regionData renderings differ. */
function diffData(a: string, b: string, aName: string, bName: string): string[] {
  const x = new Map(JSON.parse(a) as [string, string][]);
  const y = new Map(JSON.parse(b) as [string, string][]);
  const diff: string[] = [];
  for (const k of new Set([...x.keys(), ...y.keys()])) if (x.get(k) !== y.get(k)) diff.push(`${k}: ${aName} ${x.get(k) ?? 'absent'}, ${bName} ${y.get(k) ?? 'absent'}`);
  return diff;
}

/**
 * convergence says what keeps the cluster from having converged, or
 * undefined when it has: placement's routing table covers the key space
 * with no gap or overlap, every Region has a leader (in placement and on a
 * store), and every replica is initialized, at the leader's applied index,
 * with the leader's data.
 */
export function convergence(cluster: SimCluster): string | undefined {
  const gap = rangeCovered(cluster.regions().map((i) => i.region));
  if (gap) return `placement routing table: ${gap}`;
  for (const info of cluster.regions()) {
    const r = info.region;
    if (!info.leader) return `Region ${r.id} has no leader in placement`;
    const leader = cluster.leaderOf(r.id);
    if (!leader) return `Region ${r.id} has no leader`;
    const lp = leader.peer;
    const data = regionData(cluster.store(leader.storeId)!, lp.region);
    for (const peer of lp.region.peers) {
      const s = cluster.store(peer.storeId);
      const fp = s?.inspectRegion(r.id);
      if (!s || !fp || !fp.initialized) return `Region ${r.id}: peer ${peer.id} on store ${peer.storeId} not initialized`;
      if (fp.appliedIndex !== lp.appliedIndex) return `Region ${r.id}: peer ${peer.id} applied ${fp.appliedIndex}, leader ${lp.appliedIndex}`;
      const d = regionData(s, lp.region);
      if (d !== data) {
        const diff = diffData(data, d, 'leader', `store ${peer.storeId}`);
        return `Region ${r.id}: replica on store ${peer.storeId} differs from the leader's (store ${leader.storeId}) data at the same applied index ${lp.appliedIndex}: ${diff.slice(0, 8).join('; ')}`;
      }
    }
  }
  return undefined;
}

/** rangeCovered says where Regions leave a gap or overlap in the key space, or undefined when they tile it. */
function rangeCovered(regions: Region[]): string | undefined {
  const sorted = [...regions].sort((a, b) => compareKeys(a.startKey, b.startKey));
  if (sorted.length === 0) return 'placement knows no Region';
  if (sorted[0]!.startKey.length !== 0) return `gap before Region ${sorted[0]!.id}`;
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!;
    const r = sorted[i]!;
    if (p.endKey.length === 0 || compareKeys(p.endKey, r.startKey) !== 0) return `gap or overlap between Regions ${p.id} and ${r.id}`;
  }
  if (sorted[sorted.length - 1]!.endKey.length !== 0) return `gap after Region ${sorted[sorted.length - 1]!.id}`;
  return undefined;
}

/** checkHistory runs the linearizability checker over the whole history; failure is set when it found a violation. */
export function checkHistory(history: KvOperation[], maxStepsPerKey: number): { check: CheckResult; failure?: string } {
  const check = checkKvHistory(history, { maxStepsPerPartition: maxStepsPerKey });
  if (check.verdict !== 'illegal') return { check };
  return { check, failure: `linearizability violated: ${explainFailure(history, check)}` };
}
