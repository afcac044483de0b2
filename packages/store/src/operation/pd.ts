import type { RegionHeartbeat, RegionHeartbeatResponse, RegionHeartbeatResult } from '@flotilla/placement/client';
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
 * regionHeartbeats reports every led Region to placement. A hibernated
 * Region has nothing new to say, so it reports only every
 * HIBERNATED_HEARTBEAT_FACTOR intervals: 10,000 idle Regions must cost
 * almost nothing. One that served traffic since its last report (the
 * writes just before it went idle) reports at the normal pace once more,
 * so the hot Regions and the key visualizer see that traffic when it
 * happened, not a minute later. The reports go in batches (see regionHeartbeat); against
 * a placement without batches, a bounded number of single reports at a time.
 */
export async function regionHeartbeats(ctx: StoreContext): Promise<void> {
  if (ctx.closed) return;
  const now = ctx.now();
  const slow = ctx.config.regionHeartbeatIntervalMs * HIBERNATED_HEARTBEAT_FACTOR;
  const due = [...ctx.peers.values()].filter(
    (p) =>
      p.isLeader &&
      p.initialized &&
      (!p.hibernating || p.operatorActive || underReplicated(ctx, p) || p.flow.hasUnreported || now - p.lastRegionHeartbeatMs >= slow),
  );
  if (batching(ctx)) {
    await Promise.all(due.map((p) => regionHeartbeat(ctx, p)));
    return;
  }
  const step = ctx.config.regionHeartbeatConcurrency;
  for (let i = 0; i < due.length; i += step) {
    await Promise.all(due.slice(i, i + step).map((p) => reportOne(ctx, p)));
  }
}

/** underReplicated: fewer voters than placement keeps; placement has work for it, so it reports at the normal pace. */
function underReplicated(ctx: StoreContext, p: Peer): boolean {
  let voters = 0;
  for (const x of p.region.peers) if (x.role === 'voter') voters++;
  return voters < ctx.maxReplicas;
}

/** REGION_HEARTBEAT_BATCH: Region heartbeats per request (placement takes up to PLACEMENT_LIMITS.maxRegionHeartbeats, 1024). */
export const REGION_HEARTBEAT_BATCH = 256;
/** REGION_HEARTBEAT_REQUESTS: batches in flight at once; Regions that fall due meanwhile wait for the next batch. */
export const REGION_HEARTBEAT_REQUESTS = 2;

/** HeartbeatQueue: the Regions waiting for the next batch (each Region once: its report is built when its batch goes). */
interface HeartbeatQueue {
  due: Map<number, { peer: Peer; waiters: (() => void)[] }>;
  inFlight: number;
  scheduled: boolean;
  /** batched: false once placement answered UnknownMethod (an older placement): single reports from then on. */
  batched: boolean;
}

const queues = new WeakMap<StoreContext, HeartbeatQueue>();

function queueOf(ctx: StoreContext): HeartbeatQueue {
  let q = queues.get(ctx);
  if (!q) queues.set(ctx, (q = { due: new Map(), inFlight: 0, scheduled: false, batched: true }));
  return q;
}

function batching(ctx: StoreContext): boolean {
  return ctx.pd.regionHeartbeats !== undefined && queueOf(ctx).batched;
}

/**
 * regionHeartbeat reports one led Region (its peers, the down and pending
 * ones, its size) and resolves once placement answered. Reports are
 * batched per store, as PD's region heartbeat stream is: every Region
 * that falls due while a batch is on the wire joins the next one (at most
 * REGION_HEARTBEAT_BATCH per request, REGION_HEARTBEAT_REQUESTS requests
 * in flight; the queue holds each Region at most once, so it is bounded
 * by the store's Regions). An operator step in placement's answer is sent
 * to the peer as an `operator` message; it runs in the next poll round.
 */
export function regionHeartbeat(ctx: StoreContext, p: Peer): Promise<void> {
  if (ctx.closed || !p.isLeader || !p.initialized) return Promise.resolve();
  if (!batching(ctx)) return reportOne(ctx, p);
  const q = queueOf(ctx);
  return new Promise<void>((resolve) => {
    const queued = q.due.get(p.regionId);
    if (queued?.peer === p) queued.waiters.push(resolve);
    else {
      if (queued) for (const w of queued.waiters) w(); // a replaced peer of the same Region: nothing to report for it
      q.due.set(p.regionId, { peer: p, waiters: [resolve] });
    }
    if (q.scheduled) return;
    // Reports asked for in the same turn (a periodic round, a split's Regions) leave together.
    q.scheduled = true;
    queueMicrotask(() => {
      q.scheduled = false;
      pump(ctx, q);
    });
  });
}

/** pump sends queued Regions in batches while fewer than REGION_HEARTBEAT_REQUESTS are in flight. */
function pump(ctx: StoreContext, q: HeartbeatQueue): void {
  while (q.inFlight < REGION_HEARTBEAT_REQUESTS && q.due.size > 0) {
    const taken: { peer: Peer; waiters: (() => void)[] }[] = [];
    for (const [id, e] of q.due) {
      q.due.delete(id);
      taken.push(e);
      if (taken.length >= REGION_HEARTBEAT_BATCH) break;
    }
    const done = (): void => {
      for (const e of taken) for (const w of e.waiters) w();
    };
    const now = ctx.now();
    const sent = taken.filter((e) => !ctx.closed && e.peer.isLeader && e.peer.initialized && ctx.peers.get(e.peer.regionId) === e.peer);
    if (sent.length === 0 || !ctx.pd.regionHeartbeats) {
      done();
      continue;
    }
    const heartbeats = sent.map((e) => buildHeartbeat(ctx, e.peer, now));
    q.inFlight++;
    ctx.pd
      .regionHeartbeats(heartbeats)
      .then(
        (results) => onBatchAnswer(ctx, sent.map((e) => e.peer), results),
        (e: unknown) => onBatchFailure(ctx, q, sent.map((e) => e.peer), e),
      )
      .catch((e: unknown) => ctx.logger.warn({ err: (e as Error).message }, 'region heartbeat answers not handled'))
      .finally(() => {
        q.inFlight--;
        done();
        pump(ctx, q);
      });
  }
}

function onBatchAnswer(ctx: StoreContext, peers: Peer[], results: RegionHeartbeatResult[]): void {
  for (let i = 0; i < peers.length; i++) {
    const r = results[i]!;
    if ('error' in r) ctx.logger.warn({ regionId: peers[i]!.regionId, code: r.error.code, err: r.error.message }, 'placement refused a region heartbeat');
    else onHeartbeatAnswer(ctx, peers[i]!, r);
  }
}

async function onBatchFailure(ctx: StoreContext, q: HeartbeatQueue, peers: Peer[], e: unknown): Promise<void> {
  if ((e as { code?: unknown }).code === 'UnknownMethod' && q.batched) {
    // An older placement: report Region by Region from now on (these Regions again, now).
    q.batched = false;
    ctx.logger.info({}, 'placement does not take batched region heartbeats; reporting Regions one by one');
    await Promise.all(peers.map((p) => reportOne(ctx, p)));
    return;
  }
  // One line per batch, not per Region: a placement outage must not flood the log. The next round reports again.
  ctx.logger.warn({ regions: peers.length, err: (e as Error).message }, 'region heartbeats failed');
}

/** reportOne reports one Region in a request of its own (a placement without batches, or a simulation's). */
async function reportOne(ctx: StoreContext, p: Peer): Promise<void> {
  if (ctx.closed || !p.isLeader || !p.initialized) return;
  try {
    onHeartbeatAnswer(ctx, p, await ctx.pd.regionHeartbeat(buildHeartbeat(ctx, p, ctx.now())));
  } catch (e) {
    ctx.logger.warn({ regionId: p.regionId, err: (e as Error).message }, 'region heartbeat failed');
  }
}

/** buildHeartbeat is one led Region's report as of now: peers, the down and pending ones, size, and its traffic since the last report. */
function buildHeartbeat(ctx: StoreContext, p: Peer, now: number): RegionHeartbeat {
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
  return {
    region: p.region,
    leader: p.meta(),
    approximateSizeBytes: p.approximateSizeBytes,
    approximateKeys: p.approximateKeys,
    downPeers,
    pendingPeers,
    flow: p.flow.take(now),
  };
}

function onHeartbeatAnswer(ctx: StoreContext, p: Peer, resp: RegionHeartbeatResponse): void {
  // While placement has an operator for the Region, keep reporting at the
  // normal pace even when hibernated: each step waits for a heartbeat.
  p.operatorActive = resp.operator !== undefined;
  if (resp.operator && ctx.peers.get(p.regionId) === p) ctx.send(p, { kind: 'operator', op: resp.operator });
}
