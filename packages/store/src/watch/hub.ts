import { compareEndKeys, compareKeys, TXN_LIMITS, WATCH_LIMITS, type WatchClientFrame, type WatchEvent, type WatchFeedError } from '@flotilla/proto';
import { physicalMs, type MvccView, type WriteRow } from '@flotilla/kv-engine';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import { readBelowSafePoint } from '../gc/state';
import { Feed, type WatchConn } from './feed';
import { FeedIndex } from './feed-index';
import { ResolvedTs } from './resolved';

type Subscribe = Extract<WatchClientFrame, { t: 'subscribe' }>;

/** CapturedWrite is a put/delete record applied in the current round on a Region with feeds. */
interface CapturedWrite {
  regionId: number;
  row: WriteRow;
}

/**
 * WatchHub is one store's change feeds (TiKV's CDC endpoint): the feeds
 * open per Region, the write records the current apply round committed on
 * Regions that have feeds, and the resolved-ts driver. Apply calls observe
 * (a view that records put/delete write records); the poller calls
 * publishRound once the round's KV transaction is written, so a feed sees
 * a record only once it is durable in kv.db's view of the round, and
 * always before any progress computed from a later state.
 */
export class WatchHub {
  private readonly byRegion = new Map<number, FeedIndex>();
  private readonly byConn = new Map<WatchConn, Map<number, Feed>>();
  private round: CapturedWrite[] = [];
  private readonly resolvedTs: ResolvedTs;

  constructor(private readonly ctx: StoreContext) {
    this.resolvedTs = new ResolvedTs(ctx, this);
  }

  /** feedCount: feeds open on this store. */
  get feedCount(): number {
    let n = 0;
    for (const s of this.byRegion.values()) n += s.size;
    return n;
  }

  /** regionFeeds: the Regions with open feeds and their feeds (resolved.ts walks them). */
  regionFeeds(): ReadonlyMap<number, Iterable<Feed>> {
    return this.byRegion;
  }

  /** observe wraps a Region's MVCC view for one command's apply when the Region has feeds (else returns it as is). */
  observe(peer: Peer, view: MvccView): MvccView {
    if (!this.byRegion.has(peer.regionId)) return view;
    const round = this.round;
    const regionId = peer.regionId;
    return {
      lock: (k) => view.lock(k),
      writesFrom: (k, from, limit) => view.writesFrom(k, from, limit),
      locksInRange: (s, e) => view.locksInRange(s, e),
      putLock: (l) => view.putLock(l),
      delLock: (k) => view.delLock(k),
      putData: (d) => view.putData(d),
      delData: (k, ts) => view.delData(k, ts),
      delWrite: (k, ts) => view.delWrite(k, ts),
      putWrite: (w) => {
        if (w.kind === 'put' || w.kind === 'delete') round.push({ regionId, row: w });
        view.putWrite(w);
      },
    };
  }

  /** publishRound hands the round's captured records to their feeds, in apply order; called after the round's KV write. */
  publishRound(): void {
    if (this.round.length === 0) return;
    const round = this.round;
    this.round = [];
    const perFeed = new Map<Feed, WatchEvent[]>();
    for (const { regionId, row } of round) {
      const feeds = this.byRegion.get(regionId);
      if (feeds === undefined) continue;
      let event: WatchEvent | undefined;
      feeds.covering(row.key, (f) => {
        // A record at or below the feed's start is not the feed's (its watcher has it): a new leader whose apply lags
        // its log applies, after the subscribe, commits the old leader's feed already delivered (found by the sim's watch checker).
        if (row.commitTs <= f.fromRevision) return;
        event ??= row.kind === 'put' ? { type: 'put', key: row.key, value: this.ctx.sm.txnValue(row), revision: row.commitTs } : { type: 'delete', key: row.key, revision: row.commitTs };
        let list = perFeed.get(f);
        if (list === undefined) perFeed.set(f, (list = []));
        list.push(f.prevValue ? this.withPrev(event) : event);
      });
    }
    if (perFeed.size > 0) this.resolvedTs.poke();
    for (const [f, events] of perFeed) {
      if (!f.live(events)) this.tooSlow(f.conn, `feed ${f.id} held more than ${WATCH_LIMITS.maxPendingEvents} events during its catch-up scan`);
      else this.checkBuffered(f.conn);
    }
  }

  /** withPrev adds the key's value before the change (read after the change applied: settled then, see prevValueOf). */
  private withPrev(e: WatchEvent): WatchEvent {
    const prevValue = this.ctx.sm.txnPrevValue(e.key, e.revision);
    return prevValue === undefined ? e : { ...e, prevValue };
  }

  /** dropRound forgets a round's captured records (its KV write failed: they never became visible). */
  dropRound(): void {
    this.round = [];
  }

  /** subscribe opens a feed, or answers why not with an end frame. */
  subscribe(conn: WatchConn, f: Subscribe): void {
    const feeds = this.byConn.get(conn) ?? new Map<number, Feed>();
    const refuse = (error: WatchFeedError): void => conn.send({ t: 'end', id: f.id, error });
    if (feeds.has(f.id)) return refuse({ type: 'InvalidRequest', message: `feed ${f.id} is already open on this connection` });
    if (feeds.size >= WATCH_LIMITS.maxFeedsPerConnection) return refuse({ type: 'InvalidRequest', message: `more than ${WATCH_LIMITS.maxFeedsPerConnection} feeds on one connection (WATCH_LIMITS.maxFeedsPerConnection)` });
    const checked = this.check(f);
    if ('error' in checked) return refuse(checked.error);
    const feed = new Feed(f.id, conn, checked.peer, checked.peer.region.epoch.version, checked.start, checked.end, f.fromRevision, f.prevValue === true, f.sole === true);
    feeds.set(f.id, feed);
    this.byConn.set(conn, feeds);
    let set = this.byRegion.get(feed.regionId);
    if (set === undefined) this.byRegion.set(feed.regionId, (set = new FeedIndex()));
    set.add(feed);
    this.resolvedTs.start();
    this.catchUp(feed, feed.start);
  }

  /** check validates a subscription against this store's peer of the Region: leader, epoch, range, revision, GC. */
  private check(f: Subscribe): { peer: Peer; start: Uint8Array; end: Uint8Array } | { error: WatchFeedError } {
    const ctx = this.ctx;
    if (ctx.closed) return { error: { type: 'Unavailable', message: 'store is shutting down' } };
    const peer = ctx.peers.get(f.regionId);
    if (peer === undefined || !peer.initialized) return { error: { type: 'RegionNotFound', regionId: f.regionId } };
    const leader = peer.leaderMeta();
    if (!peer.isLeader) return { error: leader ? { type: 'NotLeader', regionId: f.regionId, leader } : { type: 'NotLeader', regionId: f.regionId } };
    if (peer.mergeState || f.epoch.version !== peer.region.epoch.version) return { error: { type: 'EpochNotMatch', currentRegions: [peer.region] } };
    if (f.end.length > 0 && compareKeys(f.start, f.end) >= 0) return { error: { type: 'InvalidRequest', message: 'watch range is empty: start must be below end (an empty end is unbounded)' } };
    const r = peer.region;
    const start = compareKeys(f.start, r.startKey) < 0 ? r.startKey : f.start;
    const end = compareEndKeys(f.end, r.endKey) <= 0 ? f.end : r.endKey;
    if (end.length > 0 && compareKeys(start, end) >= 0) return { error: { type: 'InvalidRequest', message: `watch range does not overlap region ${r.id}` } };
    if (physicalMs(f.fromRevision) > ctx.now() + TXN_LIMITS.maxFutureMs) {
      return { error: { type: 'InvalidRequest', message: `fromRevision ${f.fromRevision} is in the future (${physicalMs(f.fromRevision) - ctx.now()} ms ahead of this store's clock)` } };
    }
    const sp = readBelowSafePoint(ctx, peer, f.fromRevision);
    if (sp !== undefined) return { error: { type: 'Compacted', regionId: r.id, safePoint: sp } };
    return { peer, start, end };
  }

  /** catchUp sends the feed's history page by page, yielding between pages; live events wait in the feed meanwhile. */
  private catchUp(feed: Feed, from: Uint8Array): void {
    if (feed.ended) return;
    const page = this.ctx.sm.txnChanges(from, feed.end, feed.fromRevision, WATCH_LIMITS.catchUpPageRows);
    feed.catchUpPage(feed.prevValue ? page.events.map((e) => this.withPrev(e)) : page.events);
    this.checkBuffered(feed.conn);
    if (page.next === undefined) {
      feed.finishCatchUp();
      // The watch's revision waits on this feed's first progress (a resubscribed Region holds the whole watch): ask for a pass now.
      this.resolvedTs.poke();
      return;
    }
    const next = page.next;
    setImmediate(() => this.catchUp(feed, next));
  }

  /** unsubscribe closes one feed (nothing is sent). */
  unsubscribe(conn: WatchConn, id: number): void {
    const f = this.byConn.get(conn)?.get(id);
    if (f) this.end(f, undefined);
  }

  /** connectionClosed drops every feed of a connection that went away. */
  connectionClosed(conn: WatchConn): void {
    for (const f of [...(this.byConn.get(conn)?.values() ?? [])]) this.end(f, undefined);
  }

  /** end stops a feed, telling the watcher why (undefined: it asked). */
  end(f: Feed, error: WatchFeedError | undefined): void {
    f.endWith(error);
    const set = this.byRegion.get(f.regionId);
    set?.delete(f);
    if (set?.size === 0) this.byRegion.delete(f.regionId);
    const feeds = this.byConn.get(f.conn);
    feeds?.delete(f.id);
    if (feeds?.size === 0) this.byConn.delete(f.conn);
    if (this.byRegion.size === 0) this.resolvedTs.stop();
  }

  /** endRegion ends every feed of a Region (leadership, epoch or the peer changed). */
  endRegion(regionId: number, error: WatchFeedError): void {
    for (const f of [...(this.byRegion.get(regionId) ?? [])]) this.end(f, error);
  }

  /** close ends every feed (the store is stopping). */
  close(): void {
    for (const feeds of [...this.byConn.values()]) for (const f of [...feeds.values()]) this.end(f, { type: 'Unavailable', message: 'store is shutting down' });
    this.resolvedTs.stop();
  }

  private checkBuffered(conn: WatchConn): void {
    if (conn.bufferedBytes() > WATCH_LIMITS.maxBufferedBytes) this.tooSlow(conn, `more than ${WATCH_LIMITS.maxBufferedBytes} bytes of events not read (WATCH_LIMITS.maxBufferedBytes)`);
  }

  /** tooSlow ends every feed of a watcher that does not keep up, then lets its connection close. */
  private tooSlow(conn: WatchConn, why: string): void {
    const feeds = this.byConn.get(conn);
    if (feeds === undefined) return;
    this.ctx.logger.warn({ feeds: feeds.size, why }, 'watcher too slow; its feeds end');
    for (const f of [...feeds.values()]) this.end(f, { type: 'WatcherTooSlow', message: why });
    conn.tooSlow();
  }
}

const hubs = new WeakMap<StoreContext, WatchHub>();

/** watchHub is the store's hub, made on first use. */
export function watchHub(ctx: StoreContext): WatchHub {
  let h = hubs.get(ctx);
  if (h === undefined) hubs.set(ctx, (h = new WatchHub(ctx)));
  return h;
}

/** watchView is apply's hook: the view to run one transactional command with (the same view when no feed watches the Region). */
export function watchView(ctx: StoreContext, peer: Peer, view: MvccView): MvccView {
  return hubs.get(ctx)?.observe(peer, view) ?? view;
}

/**
 * watchLeadershipLost is ready.ts's hook when a peer steps down: its
 * Region's feeds end NotLeader at once (with the new leader when known),
 * instead of at the next resolved-ts pass's failed probe, up to a pass
 * interval later, all that time holding every watch that spans the Region.
 */
export function watchLeadershipLost(ctx: StoreContext, peer: Peer): void {
  const h = hubs.get(ctx);
  if (h === undefined || !h.regionFeeds().has(peer.regionId)) return;
  const leader = peer.leaderMeta();
  h.endRegion(peer.regionId, leader ? { type: 'NotLeader', regionId: peer.regionId, leader } : { type: 'NotLeader', regionId: peer.regionId });
}

/** publishWatchRound is the poller's hook after a round's KV write. */
export function publishWatchRound(ctx: StoreContext): void {
  hubs.get(ctx)?.publishRound();
}
