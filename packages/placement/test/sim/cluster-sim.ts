import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Peer, Region } from '@flotilla/proto';
import { PlacementCluster, type ClusterOptions } from '../../src/cluster';
import type { OperatorStep, RegionHeartbeatResponse } from '../../src/types';
import { majority } from '../../src/schedule/operator';

/** SimRegion is the ground truth a simulated Region's Raft group holds. */
export interface SimRegion {
  region: Region;
  leaderId: number;
  /** pending: learners that have not caught up yet (they catch up after one heartbeat round). */
  pending: Set<number>;
  /** ignoreOperators: this Region's leader never executes steps (to test timeouts). */
  ignoreOperators?: boolean;
  /** sizeBytes / keys: what the leader reports (default 96 MiB / 100,000: too big to merge). */
  sizeBytes?: number;
  keys?: number;
  /** merging: PrepareMerge applied; the target absorbs the source at the start of the next round (or it rolls back). */
  merging?: { targetId: number; targetEpoch: Region['epoch']; commitAtRound: number };
}

const key = (n: number): Uint8Array => (n === 0 ? new Uint8Array() : Buffer.from(`k${String(n).padStart(6, '0')}`));

/**
 * ClusterSim drives a PlacementCluster in process with a virtual clock: simulated
 * stores heartbeat, simulated Region leaders heartbeat and execute operator
 * steps the way Raft would (a conf change commits only with a live quorum),
 * and every step is checked: it must never leave a Region below a quorum of
 * live voters, never remove the leader, never put two peers on one store.
 */
export class ClusterSim {
  clockMs = 1_000_000;
  readonly cluster: PlacementCluster;
  readonly dir: string;
  readonly storeAlive = new Map<number, boolean>();
  readonly storeDiedAt = new Map<number, number>();
  readonly regions = new Map<number, SimRegion>();
  readonly violations: string[] = [];
  readonly maxInFlight = new Map<string, number>();
  readonly stepsApplied = { addLearner: 0, promoteLearner: 0, addPeer: 0, removePeer: 0, transferLeader: 0, merge: 0 };
  /** merges: every committed merge, in order. */
  readonly merges: { source: Region; target: Region; sourceSize: number; targetSize: number; sourceKeys: number; targetKeys: number }[] = [];
  rollbacks = 0;
  /** mergeCommitDelayRounds: rounds between PrepareMerge and CommitMerge (from 2 on, the prepared source heartbeats meanwhile). */
  mergeCommitDelayRounds = 1;
  roundNo = 0;
  roundMs = 1000;
  /** availableBytes: what a store's heartbeat reports available of its 1e12-byte capacity (default 1e12 - 1e9). */
  readonly availableBytes = new Map<number, number>();

  constructor(opts: Omit<ClusterOptions, 'dataDir' | 'clock'>) {
    this.dir = mkdtempSync(join(tmpdir(), 'placement-sim-'));
    this.cluster = new PlacementCluster({ ...opts, dataDir: this.dir, clock: () => this.clockMs });
  }

  close(): void {
    this.cluster.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private call<T>(method: string, params: unknown): T {
    return this.cluster.dispatch(method, params) as T;
  }

  /**
   * setup bootstraps with `storeCount` stores and `regionCount` Regions; layout(i)
   * gives the stores of Region i's voters, the first one leading.
   */
  setup(storeCount: number, regionCount: number, layout: (i: number) => number[]): void {
    const storeIds = this.call<{ ids: number[] }>('allocId', { count: storeCount }).ids;
    const regionIds = this.call<{ ids: number[] }>('allocId', { count: regionCount }).ids;
    const mk = (i: number, version: number): Region => {
      const stores = layout(i).map((s) => storeIds[s]!);
      const peerIds = this.call<{ ids: number[] }>('allocId', { count: stores.length }).ids;
      return {
        id: regionIds[i]!,
        startKey: key(i),
        endKey: i === regionCount - 1 ? new Uint8Array() : key(i + 1),
        epoch: { version, confVer: 1 },
        peers: stores.map((storeId, j) => ({ id: peerIds[j]!, storeId, role: 'voter' as const })),
      };
    };
    const regions = Array.from({ length: regionCount }, (_, i) => mk(i, 2));
    const first = regions[0]!;
    this.call('bootstrap', {
      store: { id: storeIds[0]!, address: `10.0.0.1:20160` },
      region: { ...first, endKey: new Uint8Array(), epoch: { version: 1, confVer: 1 }, peers: [{ id: this.call<{ ids: number[] }>('allocId', { count: 1 }).ids[0]!, storeId: storeIds[0]!, role: 'voter' }] },
    });
    for (let s = 0; s < storeCount; s++) this.addStore(storeIds[s]!);
    this.call('reportBatchSplit', { regions });
    for (const r of regions) this.regions.set(r.id, { region: r, leaderId: r.peers[0]!.id, pending: new Set() });
  }

  addStore(id?: number): number {
    const storeId = id ?? this.call<{ ids: number[] }>('allocId', { count: 1 }).ids[0]!;
    this.call('putStore', { store: { id: storeId, address: `10.0.${storeId >> 8}.${storeId & 0xff}:20160` } });
    this.storeAlive.set(storeId, true);
    return storeId;
  }

  killStore(id: number): void {
    this.storeAlive.set(id, false);
    this.storeDiedAt.set(id, this.clockMs);
  }

  storeIds(): number[] {
    return [...this.storeAlive.keys()];
  }

  private alive(storeId: number): boolean {
    return this.storeAlive.get(storeId) === true;
  }

  private liveVoters(region: Region): { voters: number; live: number } {
    let voters = 0;
    let live = 0;
    for (const p of region.peers) {
      if (p.role !== 'voter') continue;
      voters++;
      if (this.alive(p.storeId)) live++;
    }
    return { voters, live };
  }

  /** round advances the clock by roundMs, heartbeats every live store and Region, applies operator steps, runs the schedulers. */
  round(): void {
    this.clockMs += this.roundMs;
    this.roundNo++;
    for (const id of this.storeIds()) {
      if (!this.alive(id)) continue;
      const availableBytes = this.availableBytes.get(id) ?? 1e12 - 1e9;
      this.call('storeHeartbeat', { stats: { storeId: id, capacityBytes: 1e12, usedBytes: 1e9, availableBytes, regionCount: 0, leaderCount: 0 } });
    }
    this.settleMerges();
    for (const sim of this.regions.values()) this.heartbeatRegion(sim);
    this.cluster.runSchedulers();
    for (const s of this.cluster.schedulers) {
      const n = this.cluster.operators.countOf(s.name);
      this.maxInFlight.set(s.name, Math.max(this.maxInFlight.get(s.name) ?? 0, n));
    }
  }

  private heartbeatRegion(sim: SimRegion): void {
    let leader = sim.region.peers.find((p) => p.id === sim.leaderId);
    if (!leader || !this.alive(leader.storeId)) {
      // Raft elects a new leader among live voters if they form a quorum.
      const { voters, live } = this.liveVoters(sim.region);
      if (live < majority(voters)) return;
      leader = sim.region.peers.find((p) => p.role === 'voter' && this.alive(p.storeId));
      if (!leader) return;
      sim.leaderId = leader.id;
    }
    const downPeers = sim.region.peers
      .filter((p) => !this.alive(p.storeId))
      .map((peer) => ({ peer, downSeconds: Math.floor((this.clockMs - (this.storeDiedAt.get(peer.storeId) ?? this.clockMs)) / 1000) }));
    const pendingPeers = sim.region.peers.filter((p) => sim.pending.has(p.id));
    const resp = this.call<RegionHeartbeatResponse>('regionHeartbeat', {
      region: sim.region,
      leader,
      approximateSizeBytes: sim.sizeBytes ?? 96 << 20,
      approximateKeys: sim.keys ?? 100_000,
      downPeers,
      pendingPeers,
    });
    // Learners on live stores catch up by the next round; on dead stores they stay pending.
    for (const id of sim.pending) {
      const p = sim.region.peers.find((x) => x.id === id);
      if (!p || this.alive(p.storeId)) sim.pending.delete(id);
    }
    if (resp.stale) this.violations.push(`region ${sim.region.id}: heartbeat of the true state was judged stale`);
    if (resp.operator && !sim.ignoreOperators) this.execute(sim, resp.operator.step);
  }

  private confChange(sim: SimRegion, change: (peers: Peer[]) => Peer[], what: string): void {
    const before = this.liveVoters(sim.region);
    if (before.live < majority(before.voters)) return; // cannot commit without a quorum
    const peers = change(sim.region.peers.map((p) => ({ ...p })));
    const region: Region = { ...sim.region, peers, epoch: { ...sim.region.epoch, confVer: sim.region.epoch.confVer + 1 } };
    const after = this.liveVoters(region);
    if (after.live < majority(after.voters)) this.violations.push(`region ${sim.region.id}: ${what} leaves ${after.live} of ${after.voters} voters live`);
    const stores = new Set(peers.map((p) => p.storeId));
    if (stores.size !== peers.length) this.violations.push(`region ${sim.region.id}: ${what} puts two peers on one store`);
    sim.region = region;
  }

  private execute(sim: SimRegion, step: OperatorStep): void {
    const peers = sim.region.peers;
    switch (step.type) {
      case 'addLearner':
      case 'addPeer':
        if (peers.some((p) => p.id === step.peer.id)) return;
        this.stepsApplied[step.type]++;
        // Adding a peer on a store that just died (placement has not noticed yet) is a legal race: the learner stays pending.
        this.confChange(sim, (ps) => [...ps, { ...step.peer, role: step.type === 'addLearner' ? 'learner' : 'voter' }], `${step.type} ${step.peer.id}`);
        sim.pending.add(step.peer.id);
        return;
      case 'promoteLearner':
        if (peers.find((p) => p.id === step.peer.id)?.role !== 'learner') return;
        this.stepsApplied.promoteLearner++;
        this.confChange(sim, (ps) => ps.map((p) => (p.id === step.peer.id ? { ...p, role: 'voter' } : p)), `promote ${step.peer.id}`);
        return;
      case 'removePeer':
        if (!peers.some((p) => p.id === step.peer.id)) return;
        if (step.peer.id === sim.leaderId) {
          this.violations.push(`region ${sim.region.id}: asked to remove its leader ${step.peer.id}`);
          return;
        }
        this.stepsApplied.removePeer++;
        this.confChange(sim, (ps) => ps.filter((p) => p.id !== step.peer.id), `remove ${step.peer.id}`);
        return;
      case 'transferLeader': {
        const to = peers.find((p) => p.storeId === step.toStoreId && p.role === 'voter');
        if (!to || !this.alive(to.storeId)) return;
        this.stepsApplied.transferLeader++;
        sim.leaderId = to.id;
        return;
      }
      case 'merge': {
        if (sim.merging) return; // already prepared; the store ignores the repeated step
        const target = this.regions.get(step.target.id);
        const why = this.mergeRefusal(sim, target);
        if (why !== null) {
          this.violations.push(`region ${sim.region.id}: merge into region ${step.target.id} refused: ${why}`);
          return;
        }
        this.stepsApplied.merge++;
        // PrepareMerge: the source's epoch bumps (version and confVer) and it stops serving.
        sim.region = { ...sim.region, epoch: { version: sim.region.epoch.version + 1, confVer: sim.region.epoch.confVer + 1 } };
        sim.merging = { targetId: target!.region.id, targetEpoch: target!.region.epoch, commitAtRound: this.roundNo + this.mergeCommitDelayRounds };
        return;
      }
    }
  }

  /** mergeRefusal checks what the store's startMerge checks (docs/merge.md), or null when the merge may start. */
  private mergeRefusal(src: SimRegion, tgt: SimRegion | undefined): string | null {
    if (!tgt) return 'target does not exist';
    if (tgt.merging) return 'target is itself merging';
    const a = src.region;
    const b = tgt.region;
    const eq = (x: Uint8Array, y: Uint8Array): boolean => Buffer.compare(Buffer.from(x), Buffer.from(y)) === 0;
    const adjacent = (a.endKey.length > 0 && eq(a.endKey, b.startKey)) || (b.endKey.length > 0 && eq(b.endKey, a.startKey));
    if (!adjacent) return 'not adjacent';
    const stores = (r: Region): string => r.peers.map((p) => p.storeId).sort((x, y) => x - y).join(',');
    if (stores(a) !== stores(b)) return `stores differ (${stores(a)} vs ${stores(b)})`;
    if ([...a.peers, ...b.peers].some((p) => p.role !== 'voter')) return 'a learner takes part';
    return null;
  }

  /** settleMerges commits every prepared merge whose target's epoch is unchanged (CommitMerge), else rolls it back. */
  private settleMerges(): void {
    for (const src of [...this.regions.values()]) {
      const m = src.merging;
      if (!m || this.roundNo < m.commitAtRound) continue;
      const tgt = this.regions.get(m.targetId);
      if (!tgt || tgt.region.epoch.version !== m.targetEpoch.version || tgt.region.epoch.confVer !== m.targetEpoch.confVer) {
        this.rollbacks++;
        delete src.merging;
        src.region = { ...src.region, epoch: { ...src.region.epoch, version: src.region.epoch.version + 1 } };
        continue;
      }
      const a = src.region;
      const b = tgt.region;
      const leftIsSource = a.endKey.length > 0 && Buffer.compare(Buffer.from(a.endKey), Buffer.from(b.startKey)) === 0;
      this.merges.push({ source: a, target: b, sourceSize: src.sizeBytes ?? 96 << 20, targetSize: tgt.sizeBytes ?? 96 << 20, sourceKeys: src.keys ?? 100_000, targetKeys: tgt.keys ?? 100_000 });
      tgt.region = {
        ...b,
        startKey: leftIsSource ? a.startKey : b.startKey,
        endKey: leftIsSource ? b.endKey : a.endKey,
        epoch: { version: Math.max(a.epoch.version, b.epoch.version) + 1, confVer: b.epoch.confVer },
      };
      if (src.sizeBytes !== undefined || tgt.sizeBytes !== undefined) tgt.sizeBytes = (src.sizeBytes ?? 96 << 20) + (tgt.sizeBytes ?? 96 << 20);
      if (src.keys !== undefined || tgt.keys !== undefined) tgt.keys = (src.keys ?? 100_000) + (tgt.keys ?? 100_000);
      this.regions.delete(a.id);
    }
  }

  /** split splits a Region at the middle of its keys the way a store does: the left half keeps the ID, reported with reportBatchSplit. */
  split(regionId: number): number {
    const sim = this.regions.get(regionId)!;
    const r = sim.region;
    const ids = this.call<{ ids: { newRegionId: number; newPeerIds: number[] }[] }>('askBatchSplit', { region: r, count: 1 }).ids[0]!;
    // Keys are 'k' + decimal digits; padded to 30 digits, string order is numeric order, so the numeric midpoint splits.
    const DIGITS = 30;
    const num = (k: Uint8Array, empty: bigint): bigint => (k.length === 0 ? empty : BigInt(Buffer.from(k).toString().slice(1).padEnd(DIGITS, '0')));
    const lo = num(r.startKey, 0n);
    const hi = num(r.endKey, 10n ** BigInt(DIGITS) - 1n);
    const m = (lo + hi) / 2n;
    if (m <= lo) throw new Error(`region ${regionId} is too narrow to split`);
    const mid = Buffer.from(`k${m.toString().padStart(DIGITS, '0')}`);
    const version = r.epoch.version + 1;
    const left: Region = { ...r, endKey: mid, epoch: { ...r.epoch, version } };
    const right: Region = { ...r, id: ids.newRegionId, startKey: mid, epoch: { ...r.epoch, version }, peers: r.peers.map((p, i) => ({ ...p, id: ids.newPeerIds[i]! })) };
    this.call('reportBatchSplit', { regions: [left, right] });
    sim.region = left;
    const leader = r.peers.findIndex((p) => p.id === sim.leaderId);
    this.regions.set(right.id, { ...sim, region: right, leaderId: right.peers[leader]!.id, pending: new Set() });
    return right.id;
  }

  /** runUntil rounds until done() holds (returns the rounds used) or maxRounds pass (returns -1). */
  runUntil(done: () => boolean, maxRounds: number): number {
    for (let i = 1; i <= maxRounds; i++) {
      this.round();
      if (done()) return i;
    }
    return -1;
  }

  leaderCounts(): Map<number, number> {
    const out = new Map<number, number>(this.storeIds().map((id) => [id, 0]));
    for (const sim of this.regions.values()) {
      const l = sim.region.peers.find((p) => p.id === sim.leaderId)!;
      out.set(l.storeId, (out.get(l.storeId) ?? 0) + 1);
    }
    return out;
  }

  regionCounts(): Map<number, number> {
    const out = new Map<number, number>(this.storeIds().map((id) => [id, 0]));
    for (const sim of this.regions.values()) for (const p of sim.region.peers) out.set(p.storeId, (out.get(p.storeId) ?? 0) + 1);
    return out;
  }

  /** allHealthy: every Region has exactly `replicas` voters, all on live stores, and no learners. */
  allHealthy(replicas: number): boolean {
    for (const sim of this.regions.values()) {
      const ps = sim.region.peers;
      if (ps.length !== replicas || ps.some((p) => p.role !== 'voter' || !this.alive(p.storeId))) return false;
    }
    return true;
  }
}

export function spread(counts: Map<number, number>, only?: (storeId: number) => boolean): number {
  const vals = [...counts].filter(([id]) => !only || only(id)).map(([, v]) => v);
  return Math.max(...vals) - Math.min(...vals);
}
