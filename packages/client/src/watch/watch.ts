import { compareKeys, isRetryableFeedError, type Logger, type Peer, type WatchEvent, type WatchFeedError, type WatchHeldBy } from '@flotilla/proto';
import type { RegionWithLeader } from '@flotilla/placement/client';
import { ClientError } from '../errors';
import { minEnd } from './range';
import { WatchSocket, type DialOptions, type FeedSocket } from './socket';
import { SafePointRefused, WatchShared } from './shared';
import { DEFAULT_LOCK_RESOLVE_RULE, HeldLockResolver, type ResolveHeldLock } from './lock-resolve';
import { backoffMs, electionWaitMs, MAX_FAST_TRIES, nextLeaderGuess, sleep, StallLog, withoutLease, type Carry, type LeaderMoveStall, type Segment } from './resubscribe';

/** WatchOptions: where a watch starts and what it reports besides events. */
export interface WatchOptions {
  /**
   * fromRevision: deliver the changes committed after this revision (a
   * commit ts, e.g. a version a read returned). Default: a fresh timestamp,
   * so only changes from now on. Below the GC safe point the watch fails
   * with CompactedError. Unlike etcd's WithRev (inclusive), this is the
   * last revision the caller already has: for etcd's start revision N pass N - 1n.
   */
  fromRevision?: bigint;
  /** prevValue: each change also carries the key's value just before it (absent when the key had none). */
  prevValue?: boolean;
  /** progressNotify: also yield { type: 'progress', revision } each time the watch's resolved revision advances. */
  progressNotify?: boolean;
  /** maxBufferedEvents bounds events held while some Region's resolved ts lags (default 200,000); past it the watch fails WatcherTooSlow. */
  maxBufferedEvents?: number;
  /** maxQueuedEvents: delivered events the consumer has not taken; past it the watch stops reading its sockets until half are taken (default 10,000). */
  maxQueuedEvents?: number;
  /**
   * resolveLocksAfterMs: a lock a store names as holding one of the
   * watch's Regions back for this long is resolved as a reader would
   * resolve it (its primary decides; a live transaction is left alone),
   * so a lock an abandoned transaction left behind does not stall the
   * watch (lock-resolve.ts). Default 5,000; false: never (the watch then
   * waits for someone else to touch the key).
   */
  resolveLocksAfterMs?: number | false;
  /**
   * fastResubscribe: when a feed ends NotLeader (a leader moved), subscribe
   * its range again at once on the new leader (the store's hint, else the
   * Region's next voter) from the feed's own resolved ts, keeping the events
   * it had released, instead of scanning placement again from the watch's
   * revision with backoff (default true; false selects the previous path,
   * for side-by-side measurement: bench:watch --watch-old).
   */
  fastResubscribe?: boolean;
}

/** WatchChange is one committed put or delete, at revision = its commit ts. */
export type WatchChange = WatchEvent;
/** WatchProgress: every change of the range at or below revision has been yielded. */
export interface WatchProgress {
  type: 'progress';
  revision: bigint;
}
export type WatchItem = WatchChange | WatchProgress;

/** WatchEnv is the routing a watch needs from the client (FlotillaClient.watch builds it). */
export interface WatchEnv {
  scanRegions(start: Uint8Array, end: Uint8Array, limit: number): Promise<RegionWithLeader[]>;
  storeAddress(storeId: number): Promise<string | null>;
  timestamp(): Promise<bigint>;
  updateServiceSafePoint?(serviceId: string, ts: bigint, ttlMs: number): Promise<{ accepted: boolean; gcSafePoint: bigint }>;
  dial: DialOptions;
  logger: Logger;
  /**
   * openSocket connects to one store's change feeds; default: a WatchSocket
   * (WebSocket) to address. It exists so the simulation can run this Watch
   * over an in-memory link (packages/sim/src/watch/adapter.ts).
   */
  openSocket?: (address: string) => FeedSocket;
  /** shared: the sockets and GC service safe point of the client's watches (FlotillaClient passes one per client); absent, the watch has its own. */
  shared?: WatchShared<FeedSocket>;
  /** resolveLock resolves a lock that holds a feed back (FlotillaClient: its LockResolver); absent, such locks are left for others to resolve. */
  resolveLock?: ResolveHeldLock;
}

/** CompactedError: the watch's start revision is below the GC safe point; compactRevision is the oldest fromRevision still complete (etcd's ErrCompacted). */
export class CompactedError extends ClientError {
  constructor(readonly compactRevision: bigint) {
    super('Compacted', `watch: revisions up to ${compactRevision} were compacted by GC; watch from ${compactRevision} or later`);
  }
}

const REGION_PAGE = 256;

/**
 * Watch merges the change feeds of every Region of [start, end) into one
 * stream in revision order (TiKV CDC's sorter over resolved ts): each
 * Region's events wait in its segment until every Region's resolved ts
 * has passed them, then go out sorted by (revision, key), events of one
 * revision together. `revision` only grows: all changes at or below it
 * were yielded. When a feed ends with a retryable error (leader change,
 * split, merge, store failure) its buffered events are dropped and its
 * range is subscribed again, Region by Region, from `revision`: nothing is
 * missed (the catch-up scan re-reads everything above it) and nothing is
 * yielded twice (everything at or below it was yielded, nothing above).
 */
export class Watch implements AsyncIterable<WatchItem> {
  private readonly segments = new Set<Segment>();
  /** covering: ranges being (re)subscribed; while any is, the revision cannot advance. */
  private covering = 0;
  /** sockets: the socket this watch subscribes on per store; held: every socket it acquired from the pool (released on close). */
  private readonly sockets = new Map<string, FeedSocket>();
  private readonly held = new Set<FeedSocket>();
  private readonly hints = new Map<number, Peer>();
  private readonly avoid = new Map<number, number>();
  private readonly queue: WatchItem[] = [];
  private waiter: (() => void) | undefined;
  private failure: Error | undefined;
  private closed = false;
  private paused = false;
  private buffered = 0;
  private readonly shared: WatchShared<FeedSocket>;
  private readonly maxBuffered: number;
  private readonly maxQueued: number;
  private delivered: bigint;
  private resubscribes = 0;
  /** fastResubscribes: how many of resubscribes went straight to a new leader (fastResubscribe). */
  private fastResubscribes = 0;
  private readonly stalls = new StallLog();
  /** resubscribeReasons: how many feeds ended with each retryable error type (for diagnosis: leader moves vs splits vs failures). */
  private readonly resubscribeReasons: Record<string, number> = {};
  /** heldLocks resolves locks the stores name as holding a feed back (undefined: the env has no resolver or resolveLocksAfterMs is false). */
  private readonly heldLocks: HeldLockResolver | undefined;

  private constructor(
    private readonly env: WatchEnv,
    readonly start: Uint8Array,
    readonly end: Uint8Array,
    readonly startRevision: bigint,
    private readonly opts: WatchOptions,
  ) {
    this.delivered = startRevision;
    this.maxBuffered = opts.maxBufferedEvents ?? 200_000;
    this.maxQueued = opts.maxQueuedEvents ?? 10_000;
    const after = opts.resolveLocksAfterMs ?? DEFAULT_LOCK_RESOLVE_RULE.afterMs;
    if (after !== false && (typeof after !== 'number' || !(after >= 0))) throw new ClientError('InvalidArgument', `watch: resolveLocksAfterMs must be a non-negative number of ms or false, got ${String(after)}`);
    this.heldLocks = env.resolveLock && after !== false ? new HeldLockResolver(env.resolveLock, env.logger, { ...DEFAULT_LOCK_RESOLVE_RULE, afterMs: after }) : undefined;
    this.shared = env.shared ?? new WatchShared<FeedSocket>((address) => openFeedSocket(env, address), env.updateServiceSafePoint?.bind(env), env.logger);
  }

  /** open checks the start revision (not in the future, not compacted), holds a GC service safe point at it and subscribes every Region. */
  static async open(env: WatchEnv, start: Uint8Array, end: Uint8Array, opts: WatchOptions): Promise<Watch> {
    const now = await env.timestamp();
    const from = opts.fromRevision ?? now;
    if (typeof from !== 'bigint' || from < 0n) throw new ClientError('InvalidArgument', `watch: fromRevision must be a non-negative bigint, got ${String(from)}`);
    if (from > now) throw new ClientError('FutureRevision', `watch: fromRevision ${from} is in the future (the timestamp oracle is at ${now})`);
    const w = new Watch(env, start, end, from, opts);
    try {
      await w.shared.hold(w, () => w.delivered);
    } catch (e) {
      throw e instanceof SafePointRefused ? new CompactedError(e.gcSafePoint) : e;
    }
    void w.cover(start, end, 0);
    return w;
  }

  /** revision: every change of the range at or below it was yielded (or queued to be). */
  get revision(): bigint {
    return this.delivered;
  }

  /** stats: feeds open now, how many times a feed ended and its range was subscribed again (leader changes, splits, merges, failures), and locks left behind that the watch resolved. */
  get stats(): { feeds: number; resubscribes: number; fastResubscribes: number; resubscribeReasons: Readonly<Record<string, number>>; locksResolved: number } {
    return { feeds: this.segments.size, resubscribes: this.resubscribes, fastResubscribes: this.fastResubscribes, resubscribeReasons: { ...this.resubscribeReasons }, locksResolved: this.heldLocks?.resolved ?? 0 };
  }

  /** leaderMoveStalls: for the last leader moves (NotLeader ends), ms from the end to the new feed's subscribe and to its first progress. */
  get leaderMoveStalls(): readonly LeaderMoveStall[] {
    return this.stalls.list();
  }

  /** close ends the watch: its feeds, sockets and service safe point go; the iterator finishes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // The sockets may carry other watches' feeds (WatchShared): leave them with this watch's feeds unsubscribed.
    for (const seg of this.segments) {
      seg.done = true;
      seg.socket?.unsubscribe(seg.feedId);
    }
    this.segments.clear();
    for (const s of this.held) {
      if (this.paused) this.shared.resume(s);
      this.shared.release(s);
    }
    this.held.clear();
    this.sockets.clear();
    this.shared.unhold(this);
    this.wake();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchItem> {
    try {
      for (;;) {
        const item = this.queue.shift();
        if (item !== undefined) {
          if (this.paused && this.queue.length <= this.maxQueued / 2) this.setPaused(false);
          yield item;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.closed) return;
        await new Promise<void>((r) => (this.waiter = r));
      }
    } finally {
      this.close();
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private fail(e: Error): void {
    if (this.failure || this.closed) return;
    this.failure = e;
    this.close();
  }

  /** cover subscribes [start, end) Region by Region from the watch's revision, with backoff while routing is not there. */
  private async cover(start: Uint8Array, end: Uint8Array, attempt: number, movedAtMs?: number): Promise<void> {
    this.covering++;
    try {
      let cur = start;
      for (let tries = attempt; !this.closed; tries++) {
        if (tries > 0) await sleep(backoffMs(tries));
        if (this.closed) return;
        let regions: RegionWithLeader[];
        try {
          regions = await this.env.scanRegions(cur, end, REGION_PAGE);
        } catch (e) {
          this.env.logger.debug({ err: (e as Error).message }, 'watch: scanRegions failed; retrying');
          continue;
        }
        for (const rw of regions) {
          if (compareKeys(rw.region.startKey, cur) > 0) break; // a hole in placement's answer: scan again from cur
          const pieceEnd = minEnd(rw.region.endKey, end);
          this.subscribe(cur, pieceEnd, rw, tries, undefined, movedAtMs);
          if (pieceEnd.length === 0 || compareKeys(pieceEnd, end) === 0) return;
          cur = pieceEnd;
          tries = -1;
        }
      }
    } finally {
      this.covering--;
      this.advance();
    }
  }

  /** subscribe opens one segment's feed on the Region's leader (a NotLeader hint first, then placement's leader, then the other voters). */
  private subscribe(start: Uint8Array, end: Uint8Array, rw: RegionWithLeader, attempt: number, carry?: Carry, movedAtMs?: number): void {
    const from = carry?.from ?? this.delivered;
    const seg: Segment = { start, end, region: rw.region, fastTries: carry?.fastTries ?? 0, feedId: this.shared.feedId(), socket: undefined, from, resolved: from, buffer: carry?.buffer ?? [], done: false, ...(movedAtMs !== undefined ? { moved: { atMs: movedAtMs } } : {}) };
    this.segments.add(seg);
    const region = rw.region;
    const now = Date.now();
    const voters = region.peers.filter((p) => p.role === 'voter');
    const hint = this.hints.get(region.id);
    const candidates = [hint, rw.leader, ...voters].filter((p): p is Peer => p !== undefined && voters.some((v) => v.id === p.id));
    const peer = candidates.find((p) => (this.avoid.get(p.storeId) ?? 0) <= now) ?? candidates[attempt % Math.max(1, candidates.length)];
    if (peer === undefined) return this.retry(seg, { type: 'Unavailable', message: `region ${region.id} has no voter` }, attempt);
    void this.env.storeAddress(peer.storeId).then(
      (address) => {
        if (seg.done) return;
        if (address === null) return this.retry(seg, { type: 'Unavailable', message: `store ${peer.storeId} has no address` }, attempt);
        const socket = this.socketTo(address);
        seg.socket = socket;
        if (seg.moved) seg.moved.subscribedAtMs ??= performance.now();
        // sole: this feed is the whole watch (one Region holds the range) and nobody asked for progress: the store then
        // sends progress only after events (and every second), not every resolved-ts pass: idle watchers cost it little.
        const sole = this.opts.progressNotify !== true && compareKeys(start, this.start) === 0 && compareKeys(end, this.end) === 0;
        socket.subscribe(seg.feedId, region.id, region.epoch, start, end, seg.from, this.opts.prevValue === true, {
          onEvents: (events) => this.onEvents(seg, events),
          onProgress: (resolved, lock) => this.onProgress(seg, resolved, lock),
          onEnd: (error) => {
            if (error.type === 'Unavailable') this.avoid.set(peer.storeId, Date.now() + 2_000);
            if (error.type === 'NotLeader' && error.leader) this.hints.set(region.id, error.leader);
            else this.hints.delete(region.id);
            if (error.type === 'NotLeader') seg.moved ??= { atMs: performance.now() }; // a chain of tries counts from the first end
            if (error.type === 'NotLeader' && this.opts.fastResubscribe !== false && this.fastResubscribe(seg, peer, error.leader)) return;
            this.retry(seg, error, attempt);
          },
        }, sole);
      },
      (e: unknown) => this.retry(seg, { type: 'Unavailable', message: (e as Error).message }, attempt),
    );
  }

  private socketTo(address: string): FeedSocket {
    let s = this.sockets.get(address);
    if (s === undefined || !s.usable || this.shared.full(s)) {
      if (s !== undefined && !s.usable) {
        if (this.paused) this.shared.resume(s);
        this.shared.release(s);
        this.held.delete(s);
      }
      // A full socket stays held (this watch's feeds on it go on); new feeds go on another.
      s = this.shared.acquire(address);
      this.sockets.set(address, s);
      if (!this.held.has(s)) {
        this.held.add(s);
        if (this.paused) this.shared.pause(s);
      } else this.shared.release(s); // acquired again: count this watch once
    }
    return s;
  }

  /**
   * fastResubscribe replaces a feed that ended NotLeader by one on the
   * Region's new leader (the hint, else the next voter after the one that
   * refused), opened from the feed's resolved ts R rather than the watch's
   * revision: the old feed sent every event of its range at or below R
   * before the progress that carried R, so its buffered events at or below
   * R are complete and stay, and the new feed's catch-up sends exactly
   * those above R (nothing missed, nothing twice). The range never leaves
   * the segment set, so the watch's revision may go on up to R meanwhile.
   * A leader move keeps the epoch; if the Region changed too, the store
   * answers EpochNotMatch and the range is covered through placement.
   * Without a hint (the leader steps down before it knows its successor, as
   * in a transfer) the try waits a few ms for the election. False: the
   * caller takes the ordinary retry.
   */
  private fastResubscribe(seg: Segment, refused: Peer, hint: Peer | undefined): boolean {
    if (seg.done || this.closed) return false;
    const progressed = seg.resolved > seg.from;
    const tries = progressed ? 0 : seg.fastTries;
    if (tries >= MAX_FAST_TRIES) return false;
    const next = nextLeaderGuess(seg.region, refused, hint, tries);
    if (next === undefined) return false;
    seg.done = true;
    this.segments.delete(seg);
    seg.socket?.unsubscribe(seg.feedId);
    const keep = seg.buffer.filter((e) => e.revision <= seg.resolved);
    this.buffered -= seg.buffer.length - keep.length;
    this.resubscribes++;
    this.resubscribeReasons.NotLeader = (this.resubscribeReasons.NotLeader ?? 0) + 1;
    this.fastResubscribes++;
    const open = (buffer: WatchEvent[]): void => {
      if (this.closed) return;
      this.hints.set(seg.region.id, next);
      this.subscribe(seg.start, seg.end, { region: seg.region, leader: next }, 0, { from: seg.resolved, buffer, fastTries: tries + 1 }, seg.moved?.atMs);
    };
    if (hint !== undefined) {
      open(keep);
      return true;
    }
    // Until the try, a placeholder without a feed holds the range at R (advance may release its events at or below R).
    const hold: Segment = { ...seg, fastTries: tries + 1, feedId: 0, socket: undefined, from: seg.resolved, buffer: keep, done: true };
    this.segments.add(hold);
    setTimeout(() => {
      this.segments.delete(hold);
      open(hold.buffer);
    }, electionWaitMs(tries));
    return true;
  }

  /** retry ends a segment: its held events go, and its range is covered again from the watch's revision (or the watch fails). */
  private retry(seg: Segment, error: WatchFeedError, attempt: number): void {
    if (seg.done || this.closed) return;
    seg.done = true;
    this.segments.delete(seg);
    this.buffered -= seg.buffer.length;
    seg.socket?.unsubscribe(seg.feedId);
    if (!isRetryableFeedError(error)) {
      if (error.type === 'Compacted') return this.fail(new CompactedError(error.safePoint));
      if (error.type === 'WatcherTooSlow') return this.fail(new ClientError('WatcherTooSlow', `watch: the store cancelled it: ${error.message}`));
      return this.fail(new ClientError('InvalidArgument', `watch: the store refused it: ${error.type === 'InvalidRequest' ? error.message : error.type}`));
    }
    this.env.logger.debug({ error }, 'watch: feed ended; subscribing again');
    this.resubscribes++;
    this.resubscribeReasons[error.type] = (this.resubscribeReasons[error.type] ?? 0) + 1;
    // A segment that made progress starts its retries over; one that never did backs off further.
    const next = seg.resolved > seg.from ? 1 : attempt + 1;
    void this.cover(seg.start, seg.end, next, seg.moved?.atMs);
  }

  private onEvents(seg: Segment, events: WatchEvent[]): void {
    if (seg.done) return;
    for (const e of events) {
      // Invariant of the feed protocol: events are above the revision the feed started from and above its last progress.
      if (e.revision <= seg.resolved) return this.fail(new Error(`watch: a store sent revision ${e.revision} at or below the feed's resolved ${seg.resolved}`));
      seg.buffer.push(withoutLease(e));
    }
    this.buffered += events.length;
    if (this.buffered > this.maxBuffered) this.fail(new ClientError('WatcherTooSlow', `watch: more than ${this.maxBuffered} events held while a Region's resolved revision lags (maxBufferedEvents)`));
  }

  private onProgress(seg: Segment, resolved: bigint, lock?: WatchHeldBy): void {
    if (seg.done) return;
    if (lock !== undefined) this.heldLocks?.named(lock);
    if (resolved <= seg.resolved) return;
    if (seg.moved) {
      this.stalls.add(seg.moved, performance.now(), this.opts.fastResubscribe !== false);
      delete seg.moved;
    }
    seg.resolved = resolved;
    this.advance();
  }

  /** advance yields every held event at or below the smallest resolved ts of the range's Regions, in (revision, key) order. */
  private advance(): void {
    if (this.covering > 0 || this.closed || this.segments.size === 0) return;
    let w: bigint | undefined;
    for (const s of this.segments) if (w === undefined || s.resolved < w) w = s.resolved;
    if (w === undefined || w <= this.delivered) return;
    const out: WatchEvent[] = [];
    for (const s of this.segments) {
      if (s.buffer.length === 0) continue;
      const keep: WatchEvent[] = [];
      for (const e of s.buffer) (e.revision <= w ? out : keep).push(e);
      s.buffer = keep;
    }
    this.buffered -= out.length;
    out.sort((a, b) => (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : compareKeys(a.key, b.key)));
    this.delivered = w;
    for (const e of out) this.queue.push(e);
    if (this.opts.progressNotify) this.queue.push({ type: 'progress', revision: w });
    if (!this.paused && this.queue.length > this.maxQueued) this.setPaused(true);
    this.wake();
  }

  private setPaused(p: boolean): void {
    this.paused = p;
    for (const s of this.held) (p ? this.shared.pause(s) : this.shared.resume(s));
  }
}

/** openFeedSocket connects to one store's feeds: env.openSocket (the simulation's link) or a WebSocket. */
export function openFeedSocket(env: Pick<WatchEnv, 'openSocket' | 'dial'>, address: string): FeedSocket {
  return env.openSocket ? env.openSocket(address) : new WatchSocket(address, env.dial);
}
