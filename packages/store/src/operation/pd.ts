import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import { HIBERNATED_HEARTBEAT_FACTOR, wakeRegionsLedFrom } from './hibernate';

/**
 * storeHeartbeat reports this store to placement (Regions, leaders, and
 * the data directory's capacity and available bytes, which placement's
 * low-space rule reads), refreshes the replica target and wakes Regions led
 * from stores placement says are down.
 */
export async function storeHeartbeat(ctx: StoreContext): Promise<void> {
  if (ctx.closed) return;
  let leaders = 0;
  for (const p of ctx.peers.values()) if (p.isLeader) leaders++;
  const disk = ctx.diskUsage() ?? { capacityBytes: 0, usedBytes: 0, availableBytes: 0 };
  try {
    await ctx.pd.storeHeartbeat({
      storeId: ctx.storeId,
      capacityBytes: disk.capacityBytes,
      usedBytes: disk.usedBytes,
      availableBytes: disk.availableBytes,
      regionCount: ctx.peers.size,
      leaderCount: leaders,
    });
  } catch (e) {
    // After `flotilla store remove` has drained this store, placement refuses its heartbeats for good.
    if ((e as { code?: unknown }).code === 'StoreTombstone') ctx.logger.error({ storeId: ctx.storeId }, 'placement removed this store (tombstone): its Regions now live on other stores; stop this process and wipe its data dir');
    else ctx.logger.warn({ err: (e as Error).message }, 'store heartbeat failed');
  }
  if (ctx.pd.getClusterInfo) {
    try {
      ctx.maxReplicas = (await ctx.pd.getClusterInfo()).maxReplicas;
    } catch {
      // keep the last known value
    }
  }
  if (ctx.hibernated.size > 0) {
    try {
      const stores = await ctx.pd.getAllStores();
      wakeRegionsLedFrom(ctx, new Set(stores.filter((s) => s.state !== 'up').map((s) => s.id)));
    } catch {
      // placement unreachable: the transport's unreachable reports still wake Regions.
    }
  }
}

/**
 * regionHeartbeats reports every led Region to placement, a bounded
 * number at a time. A hibernated Region has nothing new to say, so it
 * reports only every HIBERNATED_HEARTBEAT_FACTOR intervals: 10,000 idle
 * Regions must cost almost nothing.
 */
export async function regionHeartbeats(ctx: StoreContext): Promise<void> {
  if (ctx.closed) return;
  const now = ctx.now();
  const slow = ctx.config.regionHeartbeatIntervalMs * HIBERNATED_HEARTBEAT_FACTOR;
  const due = [...ctx.peers.values()].filter(
    (p) =>
      p.isLeader &&
      p.initialized &&
      (!p.hibernating || p.operatorActive || underReplicated(ctx, p) || now - p.lastRegionHeartbeatMs >= slow),
  );
  const step = ctx.config.regionHeartbeatConcurrency;
  for (let i = 0; i < due.length; i += step) {
    await Promise.all(due.slice(i, i + step).map((p) => regionHeartbeat(ctx, p)));
  }
}

/** underReplicated: fewer voters than placement keeps; placement has work for it, so it reports at the normal pace. */
function underReplicated(ctx: StoreContext, p: Peer): boolean {
  let voters = 0;
  for (const x of p.region.peers) if (x.role === 'voter') voters++;
  return voters < ctx.maxReplicas;
}

/**
 * regionHeartbeat reports one led Region (its peers, the down and pending
 * ones, its size). An operator step in placement's answer is sent to the
 * peer as an `operator` message; it runs in the next poll round.
 */
export async function regionHeartbeat(ctx: StoreContext, p: Peer): Promise<void> {
  if (ctx.closed || !p.isLeader || !p.initialized) return;
  const now = ctx.now();
  p.lastRegionHeartbeatMs = now;
  const downPeers = [];
  const pendingPeers = [];
  const r = p.raw.raft;
  for (const x of p.region.peers) {
    if (x.id === p.peerId) continue;
    const heard = p.lastHeard.get(x.id);
    if (heard !== undefined && now - heard > ctx.config.peerDownAfterMs && !p.hibernating) {
      downPeers.push({ peer: x, downSeconds: Math.floor((now - heard) / 1000) });
    }
    const pr = r.prs.progress.get(x.id);
    if (pr && pr.match < p.apply.truncatedIndex) pendingPeers.push(x);
  }
  try {
    const resp = await ctx.pd.regionHeartbeat({
      region: p.region,
      leader: p.meta(),
      approximateSizeBytes: p.approximateSizeBytes,
      approximateKeys: p.approximateKeys,
      downPeers,
      pendingPeers,
      flow: p.flow.take(now),
    });
    // While placement has an operator for the Region, keep reporting at the
    // normal pace even when hibernated: each step waits for a heartbeat.
    p.operatorActive = resp.operator !== undefined;
    if (resp.operator && ctx.peers.get(p.regionId) === p) ctx.send(p, { kind: 'operator', op: resp.operator });
  } catch (e) {
    ctx.logger.warn({ regionId: p.regionId, err: (e as Error).message }, 'region heartbeat failed');
  }
}
