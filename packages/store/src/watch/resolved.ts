import type { WatchFeedError } from '@flotilla/proto';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import type { CommandResult } from '../raft/proposal';
import { err } from '../operation/command/command';
import { wake } from '../operation/hibernate';
import { queueRead } from '../operation/query';
import type { Feed } from './feed';
import type { WatchHub } from './hub';

/** RESOLVED_TS_INTERVAL_MS: how often a store advances the resolved ts of Regions with open feeds (TiKV's advance-ts-interval). */
export const RESOLVED_TS_INTERVAL_MS = 150;
/**
 * MIN_PASS_GAP_MS: after live events a pass runs early (the resolved ts is
 * what lets a watcher deliver them), but passes stay this far apart, so a
 * busy Region costs at most one oracle call and one ReadIndex round per gap.
 */
export const MIN_PASS_GAP_MS = 20;
/** ORACLE_TIMEOUT_MS bounds one wait for the oracle's timestamp; a pass without one sends no progress. */
const ORACLE_TIMEOUT_MS = 2_000;

/** WatchProbe is the PeerMsg a resolved-ts pass sends a Region leader (router/message.ts). */
export interface WatchProbe {
  kind: 'watchProbe';
  /** serve runs inside a poll round once leadership was confirmed after the probe was sent and apply reached the read index. */
  serve: () => void;
  fail: (r: CommandResult) => void;
}

/**
 * onWatchProbe confirms leadership the way a linearizable read does
 * (ReadIndex, or the lease when reads are lease-based: operation/query.ts)
 * and serves once apply has reached the confirmed index, so every entry
 * committed before the probe was sent is applied when serve runs.
 */
export function onWatchProbe(ctx: StoreContext, peer: Peer, m: WatchProbe): void {
  wake(ctx, peer);
  if (!peer.isLeader) return m.fail(err.notLeader(peer.regionId, peer.leaderMeta()));
  if (peer.mergeState) return m.fail(err.epochNotMatch([peer.region]));
  queueRead(ctx, peer, m.fail, () => {
    m.serve();
    return true;
  });
}

/** feedError turns a probe's region error into why the Region's feeds end; undefined when the next pass may simply try again. */
function feedError(r: CommandResult): WatchFeedError | undefined {
  if (r.ok) return undefined;
  const e = r.error;
  switch (e.type) {
    case 'NotLeader':
      return e.leader ? { type: 'NotLeader', regionId: e.regionId, leader: e.leader } : { type: 'NotLeader', regionId: e.regionId };
    case 'EpochNotMatch':
      return { type: 'EpochNotMatch', currentRegions: e.currentRegions };
    case 'RegionNotFound':
      return { type: 'RegionNotFound', regionId: e.regionId };
    default:
      return undefined;
  }
}

/**
 * ResolvedTs advances each watched Region's resolved timestamp (TiKV's
 * resolved-ts): every RESOLVED_TS_INTERVAL_MS it takes T, a fresh oracle
 * timestamp, then probes each Region's leader; when the probe serves (after
 * a ReadIndex round asked for after T was handed out, with apply caught up
 * to it) resolved = min(T, the smallest start_ts of a lock in the feed's
 * range in txn_lock, the smallest start_ts of a 1PC memory lock there).
 * docs/watch-and-leases.md argues why no commit at or below it can appear
 * later. A feed whose peer is gone, no longer leads or has a new epoch ends
 * with the typed error the client re-subscribes on.
 */
export class ResolvedTs {
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private lastPassMs = -Infinity;
  private passing = false;
  private readonly probing = new Set<number>();

  constructor(
    private readonly ctx: StoreContext,
    private readonly hub: WatchHub,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.pass(), RESOLVED_TS_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    clearTimeout(this.soon);
    this.timer = undefined;
    this.soon = undefined;
  }

  /** poke asks for an early pass (live events were published), at most one per MIN_PASS_GAP_MS. */
  poke(): void {
    if (this.timer === undefined || this.soon !== undefined) return;
    const wait = Math.max(0, this.lastPassMs + MIN_PASS_GAP_MS - performance.now());
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.pass();
    }, wait);
  }

  /** pass is one round over every watched Region; at most one runs at a time, and one probe per Region is in flight. */
  private async pass(): Promise<void> {
    const ctx = this.ctx;
    if (this.passing) return;
    if (ctx.closed) return this.hub.close();
    this.passing = true;
    this.lastPassMs = performance.now();
    try {
      const t = await this.oracle();
      if (t === undefined || ctx.closed) return;
      for (const [regionId, feeds] of this.hub.regionFeeds()) {
        const peer = ctx.peers.get(regionId);
        if (peer === undefined || !peer.initialized) {
          this.hub.endRegion(regionId, { type: 'RegionNotFound', regionId });
          continue;
        }
        for (const f of [...feeds]) if (f.peer !== peer) this.hub.end(f, { type: 'RegionNotFound', regionId });
        if (this.probing.has(regionId)) continue;
        this.probing.add(regionId);
        const probe: WatchProbe = {
          kind: 'watchProbe',
          serve: () => {
            this.probing.delete(regionId);
            this.advance(peer, t);
          },
          fail: (r) => {
            this.probing.delete(regionId);
            const e = feedError(r);
            if (e !== undefined) this.hub.endRegion(regionId, e);
          },
        };
        ctx.send(peer, probe);
      }
    } finally {
      this.passing = false;
    }
  }

  private async oracle(): Promise<bigint | undefined> {
    const ts = this.ctx.pd.timestamp;
    if (ts === undefined) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([ts.call(this.ctx.pd), new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ORACLE_TIMEOUT_MS)))]);
    } catch {
      return undefined; // the oracle is away: no progress this pass, the feeds stay open
    } finally {
      clearTimeout(timer);
    }
  }

  /** advance computes and sends each feed's resolved ts; it runs inside a poll round, after apply caught up to the probe's read index. */
  private advance(peer: Peer, t: bigint): void {
    const feeds = this.hub.regionFeeds().get(peer.regionId);
    if (feeds === undefined) return;
    for (const f of [...feeds]) {
      if (f.peer !== peer || !peer.isLeader || peer.region.epoch.version !== f.epochVersion) {
        this.hub.end(f, peer.isLeader ? { type: 'EpochNotMatch', currentRegions: [peer.region] } : notLeader(peer));
        continue;
      }
      f.progress(this.resolvedFor(f, t));
    }
  }

  /** resolvedFor: min(t, every lock's start_ts in the feed's range, every 1PC memory lock's start_ts there). */
  private resolvedFor(f: Feed, t: bigint): bigint {
    let r = t;
    for (const l of this.ctx.sm.mvccRead.locksInRange(f.start, f.end)) {
      // A 'lock'-kind lock commits a lock record, never a put or delete: it cannot add an event.
      if (l.kind !== 'lock' && l.startTs < r) r = l.startTs;
    }
    const m = this.ctx.memLocks.minStartTs(f.start, f.end);
    if (m !== undefined && m < r) r = m;
    return r;
  }
}

function notLeader(peer: Peer): WatchFeedError {
  const leader = peer.leaderMeta();
  return leader ? { type: 'NotLeader', regionId: peer.regionId, leader } : { type: 'NotLeader', regionId: peer.regionId };
}
