import { WATCH_LIMITS, type WatchFeedError, type WatchHeldBy, type WatchServerFrame } from '@flotilla/proto';
import type { LockRow } from '@flotilla/kv-engine';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import type { CommandResult } from '../raft/proposal';
import { err } from '../operation/command/command';
import { wake } from '../operation/hibernate';
import { queueRead } from '../operation/query';
import type { Feed, WatchConn } from './feed';
import type { WatchHub } from './hub';
import { lockHint } from './lock-hint';

/**
 * The pass cadence is StoreConfig.watchResolvedTsIntervalMs (TiKV's
 * advance-ts-interval, default 150 ms) and, after live events,
 * watchMinPassGapMs (default 20 ms): a pass runs early then (the resolved
 * ts is what lets a watcher deliver them), but passes stay this far apart,
 * so a busy Region costs at most one oracle call and one ReadIndex round
 * per gap.
 */
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
  /** again: a pass was asked for while one was taking its timestamp; it runs once that one is done (not at the next interval). */
  private again = false;
  private readonly probing = new Set<number>();

  constructor(
    private readonly ctx: StoreContext,
    private readonly hub: WatchHub,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.pass(), this.ctx.config.watchResolvedTsIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    clearTimeout(this.soon);
    this.timer = undefined;
    this.soon = undefined;
  }

  /** poke asks for an early pass (live events were published), at most one per watchMinPassGapMs. */
  poke(): void {
    if (this.timer === undefined || this.soon !== undefined) return;
    if (this.passing) {
      // A pass that is waiting for its timestamp may have asked for it before these events committed: run one more after it.
      this.again = true;
      return;
    }
    const wait = Math.max(0, this.lastPassMs + this.ctx.config.watchMinPassGapMs - performance.now());
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
      if (this.again) {
        this.again = false;
        this.poke();
      }
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

  /**
   * advance computes and sends each feed's resolved ts; it runs inside a
   * poll round, after apply caught up to the probe's read index. The locks
   * are looked up once for the whole Region (almost always none, and then
   * every feed resolves to t without a query of its own: 10,000 feeds on one
   * Region cost one lock query, not 10,000), and the progress of the feeds
   * of one connection goes out as one frame per distinct resolved ts.
   */
  private advance(peer: Peer, t: bigint): void {
    const feeds = this.hub.regionFeeds().get(peer.regionId);
    if (feeds === undefined) return;
    const locks = this.regionLocks(peer, t);
    const out = new ProgressBatch();
    for (const f of [...feeds]) {
      if (f.peer !== peer || !peer.isLeader || peer.region.epoch.version !== f.epochVersion) {
        this.hub.end(f, peer.isLeader ? { type: 'EpochNotMatch', currentRegions: [peer.region] } : notLeader(peer));
        continue;
      }
      if (locks === undefined) {
        if (f.takeProgress(t)) out.add(f, t);
        continue;
      }
      const { resolved: r, heldBy } = this.resolvedFor(f, t, locks);
      // The progress names the lock holding it once that lock has held it a while (lock-hint.ts); such a frame may repeat the last resolved.
      const advanced = f.takeProgress(r);
      const lock = lockHint(f, heldBy, t);
      if (advanced || lock !== undefined) out.add(f, f.resolved, lock);
    }
    out.send();
  }

  /** regionLocks: the put/delete locks of the Region's range in txn_lock below t, or undefined when neither they nor 1PC memory locks exist there. */
  private regionLocks(peer: Peer, t: bigint): LockRow[] | undefined {
    const r = peer.region;
    const locks: LockRow[] = [];
    // A 'lock'-kind lock commits a lock record, never a put or delete: it cannot add an event.
    for (const l of this.ctx.sm.mvccRead.locksInRange(r.startKey, r.endKey)) if (l.kind !== 'lock' && l.startTs < t) locks.push(l);
    if (locks.length === 0 && this.ctx.memLocks.minStartTs(r.startKey, r.endKey) === undefined) return undefined;
    return locks;
  }

  /**
   * resolvedFor: min(t, every lock's start_ts in the feed's range, every 1PC
   * memory lock's start_ts there); heldBy is the oldest txn_lock lock of the
   * range (a 1PC memory lock lives only while its entry is in flight: it
   * cannot be left behind).
   */
  private resolvedFor(f: Feed, t: bigint, locks: readonly LockRow[]): { resolved: bigint; heldBy: LockRow | undefined } {
    let r = t;
    let heldBy: LockRow | undefined;
    for (const l of locks) {
      if (l.startTs < r && f.covers(l.key)) {
        r = l.startTs;
        heldBy = l;
      }
    }
    const m = this.ctx.memLocks.minStartTs(f.start, f.end);
    if (m !== undefined && m < r) r = m;
    return { resolved: r, heldBy };
  }
}

/** ProgressBatch gathers one pass's progress frames per connection, sent together (WatchConn.sendMany: one socket message, not one per feed). */
class ProgressBatch {
  private readonly byConn = new Map<WatchConn, WatchServerFrame[]>();

  add(f: Feed, resolved: bigint, lock?: WatchHeldBy): void {
    let frames = this.byConn.get(f.conn);
    if (frames === undefined) this.byConn.set(f.conn, (frames = []));
    frames.push(lock === undefined ? { t: 'progress', id: f.id, resolved } : { t: 'progress', id: f.id, resolved, lock });
  }

  send(): void {
    for (const [conn, frames] of this.byConn) {
      if (conn.sendMany === undefined || frames.length === 1) for (const f of frames) conn.send(f);
      else for (let i = 0; i < frames.length; i += WATCH_LIMITS.maxEventsPerFrame) conn.sendMany(frames.slice(i, i + WATCH_LIMITS.maxEventsPerFrame));
    }
  }
}

function notLeader(peer: Peer): WatchFeedError {
  const leader = peer.leaderMeta();
  return leader ? { type: 'NotLeader', regionId: peer.regionId, leader } : { type: 'NotLeader', regionId: peer.regionId };
}
