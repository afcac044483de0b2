// The fault plan (FoundationDB's swarm, TigerBeetle's VOPR): per-message
// network faults for the whole safety phase, then once per 100 ms slice one
// draw from the weighted table FAULTS, all from the run's seeded PRNG.
import { compareKeys, type ClientRequest } from '@flotilla/proto';
import { ConfChangeType } from '@flotilla/raft-core';
import type { SimCluster } from './cluster';
import type { Recorder } from './report';
import { bytes, keyName, text, type Rng } from './keys';
import { crashMember, cutStoreFromPlacement, healPlacementLinks, jumpMemberClock, partitionMembers, restartMembers } from './placement-faults';

/** FaultSwitches turn single faults off (the CLI's --no-* flags). */
export interface FaultSwitches {
  removePeers: boolean;
  merges: boolean;
  placementCrashes: boolean;
  replaceStores: boolean;
}

/** FaultContext is what a fault may touch: the cluster, the PRNG, the record, and what the plan remembers between slices. */
export interface FaultContext {
  readonly cluster: SimCluster;
  readonly rng: Rng;
  readonly recorder: Recorder;
  readonly switches: FaultSwitches;
  /** nStores is the cluster size at the start (a replacement store gets the next index). */
  readonly nStores: number;
  readonly nKeys: number;
  /** maxDown: at most 1 of 3 (2 of 5) stores are down at once, so a quorum survives. */
  readonly maxDown: number;
  /** downSince: when each crashed store went down (a restart waits 1-4 s). */
  readonly downSince: Map<number, number>;
  placementDownSince: number;
  /** lastConfChangeAt: when the plan last removed a voter (replace-store keeps a quiet period after it). */
  lastConfChangeAt: number;
}

export interface Fault {
  name: string;
  /** weight is the fault's share of the slices, per mille (the table sums to 1000). */
  weight: number;
  /** run does nothing when its precondition does not hold; the slice's draw is then spent. */
  run: (ctx: FaultContext) => void | Promise<void>;
}

/**
 * FAULTS is the swarm table: each slice draws one entry, with probability
 * weight / 1000. The weights are the widths of the threshold ladder this
 * table replaced (crash was x < 0.015, restart x < 0.05, ...), so the
 * relative rates are the same; the ladder, though, fell through to the next
 * band when a fault's precondition failed, and a table entry does not.
 * A fault switched off (FaultSwitches) keeps its weight and does nothing,
 * so turning one fault off leaves the rates of the others as they are.
 * 'none' is the quiet slice. To add a fault, add a row and take its weight
 * from 'none'.
 */
export const FAULTS: readonly Fault[] = [
  { name: 'crash', weight: 15, run: crashStore },
  { name: 'restart', weight: 35, run: restartStores },
  { name: 'partition', weight: 10, run: partition },
  { name: 'isolate', weight: 10, run: isolate },
  { name: 'heal', weight: 30, run: heal },
  { name: 'split', weight: 40, run: adminSplit },
  { name: 'transfer-leader', weight: 50, run: adminTransferLeader },
  { name: 'conf-change', weight: 20, run: adminRemoveFollower },
  { name: 'placement-crash', weight: 15, run: crashPlacement },
  { name: 'merge', weight: 35, run: adminMerge },
  { name: 'replace-store', weight: 5, run: replaceStore },
  { name: 'none', weight: 735, run: () => {} },
];

/**
 * GROUP_FAULTS is the table with placement as 3 members: placement-crash
 * kills one member, two rows (taken from 'none') cut placement's links:
 * between members, and between stores and members, and one sets a member's
 * wall clock back (placement-faults.ts).
 */
export const GROUP_FAULTS: readonly Fault[] = [
  ...FAULTS.filter((f) => f.name !== 'none').map((f) => (f.name === 'placement-crash' ? { ...f, run: crashMember } : f)),
  { name: 'placement-partition', weight: 10, run: partitionMembers },
  { name: 'placement-store-cut', weight: 10, run: cutStoreFromPlacement },
  { name: 'placement-clock-jump', weight: 5, run: jumpMemberClock },
  { name: 'none', weight: 710, run: () => {} },
];

/** drawFault picks the entry of table that the uniform draw x in [0, 1) falls in, by cumulative weight. */
export function drawFault(table: readonly Fault[], x: number): Fault {
  const total = table.reduce((a, f) => a + f.weight, 0);
  let at = x * total;
  for (const f of table) {
    if (at < f.weight) return f;
    at -= f.weight;
  }
  return table[table.length - 1]!;
}

export function newFaultContext(cluster: SimCluster, rng: Rng, recorder: Recorder, switches: FaultSwitches, nStores: number, nKeys: number): FaultContext {
  return { cluster, rng, recorder, switches, nStores, nKeys, maxDown: nStores >= 5 ? 2 : 1, downSince: new Map(), placementDownSince: 0, lastConfChangeAt: -Infinity };
}

/** startNetworkFaults sets the safety phase's per-message faults: drop 0-5 %, duplicate 0-5 %, reorder 0-20 %, delay 0-30 ms. */
export function startNetworkFaults(ctx: FaultContext): void {
  const { rng } = ctx;
  const f = {
    dropProbability: Math.floor(rng() * 6) / 100,
    duplicateProbability: Math.floor(rng() * 6) / 100,
    reorderProbability: Math.floor(rng() * 21) / 100,
    delay: [0, Math.floor(rng() * 30)] as [number, number],
  };
  ctx.cluster.network.setFaults(f);
  // The placement members' network and the store-placement links get the same faults.
  ctx.cluster.group?.setFaults(f);
  ctx.cluster.rpc?.setFaults(f);
  ctx.recorder.fault('network', JSON.stringify(f));
}

/** injectFaults is one slice of the plan: one draw from FAULTS, then placement's restart if it is due. */
export async function injectFaults(ctx: FaultContext): Promise<void> {
  const { cluster } = ctx;
  if (cluster.group) {
    await drawFault(GROUP_FAULTS, ctx.rng()).run(ctx);
    restartMembers(ctx);
    return;
  }
  await drawFault(FAULTS, ctx.rng()).run(ctx);
  if (cluster.placementDown && Date.now() - ctx.placementDownSince >= 500 + ctx.rng() * 1500) {
    ctx.recorder.fault('placement-restart', '');
    cluster.restartPlacement();
  }
}

/** healEverything starts the liveness phase: placement up, the network healed and calm, every store that is down restarted. */
export async function healEverything(cluster: SimCluster, recorder: Recorder, ctx?: FaultContext, advance?: (ms: number) => Promise<void>): Promise<void> {
  if (cluster.group) {
    if (ctx) restartMembers(ctx, true);
    healPlacementLinks({ cluster });
    cluster.group.setFaults({});
    cluster.rpc!.setFaults({});
    // Stores restart once the group can commit again (bounded; the liveness bound still applies after).
    for (let t = 0; advance && t < 10_000 && !cluster.placementHealthy(); t += 100) await advance(100);
  } else if (cluster.placementDown) {
    recorder.fault('placement-restart', '(liveness)');
    cluster.restartPlacement();
  }
  cluster.network.heal();
  cluster.network.setFaults({});
  for (const id of cluster.down()) {
    recorder.fault('restart', `store ${id} (liveness)`);
    await cluster.restart(id);
  }
}

// ------------------------------------------------------------ process and network faults

/** crashStore closes one live store (a crash at a poll-round boundary), while fewer than maxDown are down. */
async function crashStore(ctx: FaultContext): Promise<void> {
  const up = ctx.cluster.up();
  if (ctx.cluster.down().length >= ctx.maxDown || up.length === 0) return;
  const id = up[Math.floor(ctx.rng() * up.length)]!;
  ctx.recorder.fault('crash', `store ${id}`);
  ctx.downSince.set(id, Date.now());
  await ctx.cluster.crash(id);
}

/** restartStores restarts each store that has been down for 1-4 s. A store cannot start while placement is down, so restarts wait. */
async function restartStores(ctx: FaultContext): Promise<void> {
  if (ctx.cluster.placementDown) return;
  const now = Date.now();
  for (const id of ctx.cluster.down()) {
    if (now - (ctx.downSince.get(id) ?? 0) >= 1_000 + ctx.rng() * 3_000) {
      // With a placement group: not while its leader cannot commit or this store's links to it are cut.
      if (!ctx.cluster.placementReachableFrom(id)) continue;
      ctx.recorder.fault('restart', `store ${id}`);
      await ctx.cluster.restart(id);
    }
  }
}

/** partition cuts the stores into two random non-empty groups. */
function partition(ctx: FaultContext): void {
  const ids = ctx.cluster.storeIds();
  const cut = 1 + Math.floor(ctx.rng() * (ids.length - 1));
  const shuffled = [...ids].sort(() => ctx.rng() - 0.5);
  const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
  ctx.recorder.fault('partition', JSON.stringify(groups));
  ctx.cluster.network.partition(groups);
}

function isolate(ctx: FaultContext): void {
  const ids = ctx.cluster.storeIds();
  const id = ids[Math.floor(ctx.rng() * ids.length)]!;
  ctx.recorder.fault('isolate', `store ${id}`);
  ctx.cluster.network.isolate(id);
}

function heal(ctx: FaultContext): void {
  ctx.recorder.fault('heal', '');
  ctx.cluster.network.heal();
  healPlacementLinks(ctx);
}

/** crashPlacement stops placement without its final flush; injectFaults restarts it 0.5-2 s later. */
function crashPlacement(ctx: FaultContext): void {
  if (!ctx.switches.placementCrashes || ctx.cluster.placementDown) return;
  ctx.recorder.fault('placement-crash', '');
  ctx.cluster.crashPlacement();
  ctx.placementDownSince = Date.now();
}

/**
 * replaceStore loses one store's disk for good and starts a brand-new store;
 * placement must move the lost store's replicas. At most once per run, and
 * only when every store is up and every Region has three voters.
 */
async function replaceStore(ctx: FaultContext): Promise<void> {
  const { cluster } = ctx;
  if (!ctx.switches.replaceStores || cluster.lost.size !== 0 || cluster.down().length !== 0 || !cluster.placementHealthy() || !allRegionsFull(ctx)) return;
  const up = cluster.up();
  const victim = up[Math.floor(ctx.rng() * up.length)]!;
  ctx.recorder.fault('replace-store', `store ${victim} lost for good; a new store joins`);
  await cluster.loseStore(victim);
  const id = await cluster.startNew(ctx.nStores + cluster.lost.size);
  ctx.recorder.note(`new-store ${id}`);
}

/**
 * allRegionsFull: losing a disk for good is survivable only where every
 * Region still has three voters: a 2-voter Region (mid conf change) with one
 * voter on the lost store has no quorum left. Placement's view lags a
 * just-proposed conf change, so check the stores' own views too and keep a
 * quiet period after the last conf change the plan issued.
 */
function allRegionsFull(ctx: FaultContext): boolean {
  const threeVoters = (peers: { role: string }[]) => peers.filter((p) => p.role === 'voter').length >= 3;
  return (
    Date.now() - ctx.lastConfChangeAt > 5_000 &&
    ctx.cluster.regions().every((i) => threeVoters(i.region.peers)) &&
    ctx.cluster.peerViews().every(({ peer }) => !peer.initialized || threeVoters(peer.region.peers))
  );
}

// ------------------------------------------------------------ admin faults (sent to the Region's leader)

/** admin sends one admin request to a store's facade (below the client API's admin gate) and logs a failed answer. */
function admin(ctx: FaultContext, storeId: number, req: ClientRequest, kind: string, detail: string): void {
  const store = ctx.cluster.store(storeId);
  if (!store) return;
  ctx.recorder.fault(kind, detail);
  store.handleClientRequest(req, (r) => {
    if (!r.ok) ctx.recorder.note(`${kind}-failed ${r.error.type}`);
  });
}

/** adminSplit splits the Region holding a random key at that key (the client `split` op). */
function adminSplit(ctx: FaultContext): void {
  const k = bytes(keyName(1 + Math.floor(ctx.rng() * (ctx.nKeys - 1))));
  if (ctx.cluster.placementDown) return;
  const found = ctx.cluster.placement.call('getRegion', { key: k }).region;
  if (!found) return;
  const l = ctx.cluster.leaderOf(found.region.id);
  if (!l || compareKeys(l.peer.region.startKey, k) === 0) return;
  const r = l.peer.region;
  admin(ctx, l.storeId, { id: 0, header: { regionId: r.id, regionEpoch: r.epoch }, op: 'split', splitKeys: [k] }, 'split', `region ${r.id} at ${text(k)}`);
}

/** adminMerge merges a random Region into one of its neighbours (the client `merge` op). */
function adminMerge(ctx: FaultContext): void {
  const { cluster, rng } = ctx;
  if (!ctx.switches.merges || cluster.placementDown) return;
  const all = cluster.regions();
  if (all.length < 2) return;
  const i = Math.floor(rng() * (all.length - 1));
  const [a, b] = rng() < 0.5 ? [all[i]!, all[i + 1]!] : [all[i + 1]!, all[i]!];
  const l = cluster.leaderOf(a.region.id);
  if (!l) return;
  admin(ctx, l.storeId, { id: 0, header: { regionId: a.region.id, regionEpoch: l.peer.region.epoch }, op: 'merge', targetRegionId: b.region.id }, 'merge', `region ${a.region.id} into ${b.region.id}`);
}

/** adminTransferLeader moves a random Region's leadership to another of its voters. */
function adminTransferLeader(ctx: FaultContext): void {
  const r = ctx.cluster.randomRegion(ctx.rng);
  if (!r) return;
  const l = ctx.cluster.leaderOf(r.id);
  if (!l) return;
  const others = l.peer.region.peers.filter((p) => p.role === 'voter' && p.id !== l.peer.peerId);
  const to = others[Math.floor(ctx.rng() * others.length)];
  if (!to) return;
  const req: ClientRequest = { id: 0, header: { regionId: r.id, regionEpoch: l.peer.region.epoch }, op: 'admin', admin: { type: 'transferLeader', peer: to } };
  admin(ctx, l.storeId, req, 'transfer-leader', `region ${r.id} to store ${to.storeId}`);
}

/** adminRemoveFollower removes a follower voter of a random 3-voter Region (admin changePeer); placement's replica checker re-adds one. */
function adminRemoveFollower(ctx: FaultContext): void {
  if (!ctx.switches.removePeers) return;
  const r = ctx.cluster.randomRegion(ctx.rng);
  if (!r) return;
  const l = ctx.cluster.leaderOf(r.id);
  if (!l) return;
  const voters = l.peer.region.peers.filter((p) => p.role === 'voter');
  if (voters.length < 3) return;
  // Never shrink a Region that has a voter on a lost store (see allRegionsFull).
  if (voters.some((p) => ctx.cluster.lost.has(p.storeId))) return;
  const others = voters.filter((p) => p.id !== l.peer.peerId);
  const victim = others[Math.floor(ctx.rng() * others.length)];
  if (!victim) return;
  ctx.lastConfChangeAt = Date.now();
  const req: ClientRequest = { id: 0, header: { regionId: r.id, regionEpoch: l.peer.region.epoch }, op: 'admin', admin: { type: 'changePeer', changeType: ConfChangeType.RemoveNode, peer: victim } };
  admin(ctx, l.storeId, req, 'conf-change', `region ${r.id} remove peer ${victim.id} (store ${victim.storeId}); placement re-adds a replica`);
}
