// SimWatchLinks: the watch's connections to the stores in the simulation.
// A SimWatchSocket is @flotilla/client's FeedSocket (what a Watch needs of
// one store's /watch connection) over an in-memory link to the store's own
// WatchHub (store.watch), doing what server/watch-server.ts does with a
// WebSocket: client frames go to hub.subscribe / unsubscribe, the hub's
// frames come back through a WatchConn, and a closed connection is
// hub.connectionClosed. So the product's feeds (catch-up, live, resolved
// ts) and the product's Watch (merge by resolved ts, re-subscribe) are both
// in the loop; only the socket is simulated.
//
// Every frame is encoded and decoded with the wire codec and validated with
// the wire schema (no aliasing, as on the wire), and is delivered after a
// seeded delay in order (a TCP stream: FIFO). A link fails like a socket:
// when its store crashes (the store instance it was opened to is gone), or
// when the fault plan cuts it; its in-flight frames are lost and every feed
// on it ends Unavailable. Pause holds frames (the store's bufferedBytes sees
// them), as a WebSocket that stops reading does.
//
// plant (tests only): 'drop' loses one event of a frame, 'duplicate'
// delivers one twice, the plantAfter-th event through any link: the
// checker must catch either.
import type { FeedHandlers, FeedSocket } from '@flotilla/client';
import { decode, encode, parseWith, watchClientFrameSchema, watchServerFrameSchema, type RegionEpoch, type WatchClientFrame, type WatchServerFrame } from '@flotilla/proto';
import type { Store } from '@flotilla/store';
import type { SimCluster } from '../cluster';
import type { Rng } from '../keys';

type WatchConn = Parameters<Store['watch']['subscribe']>[0];

export type PlantedWatchBug = 'drop' | 'duplicate';

export interface WatchLinkOptions {
  /** maxDelayMs: each frame takes 0..maxDelayMs (virtual) to cross, in order. */
  maxDelayMs: number;
  plant?: PlantedWatchBug;
  /** plantAfter: the planted bug hits the event after this many went through (default 20). */
  plantAfter?: number;
}

/** LIVENESS_CHECK_MS: how often a link looks whether its store is still the process it connected to. */
const LIVENESS_CHECK_MS = 50;

/** SimWatchLinks makes the links and knows them all (the fault plan cuts one; the report counts them). */
export class SimWatchLinks {
  readonly open = new Set<SimWatchSocket>();
  opened = 0;
  cuts = 0;
  /** eventsThrough: events delivered to watches over every link (the planted bug's counter). */
  eventsThrough = 0;
  planted = false;

  constructor(
    readonly cluster: SimCluster,
    readonly rng: Rng,
    readonly o: WatchLinkOptions,
  ) {}

  /** address is how storeAddress names a store's /watch endpoint here. */
  static address(storeId: number): string {
    return `sim-store-${storeId}`;
  }

  /** connect opens a link to the store an address names (WatchEnv.openSocket). */
  connect(address: string): FeedSocket {
    const storeId = Number(address.replace('sim-store-', ''));
    const s = new SimWatchSocket(this, storeId);
    this.opened++;
    this.open.add(s);
    return s;
  }

  /** cutRandom fails one open link (a connection reset); returns its store, or undefined when none is open. */
  cutRandom(): number | undefined {
    const all = [...this.open].filter((s) => s.usable);
    const s = all[Math.floor(this.rng() * all.length)];
    if (s === undefined) return undefined;
    this.cuts++;
    s.fail('connection reset (simulated cut)');
    return s.storeId;
  }

  delay(): number {
    return Math.floor(this.rng() * (this.o.maxDelayMs + 1));
  }

  /** tamper applies the planted bug to one frame's events, once. */
  tamper(frame: WatchServerFrame): WatchServerFrame {
    if (frame.t !== 'events') return frame;
    const before = this.eventsThrough;
    this.eventsThrough += frame.events.length;
    const at = this.o.plantAfter ?? 20;
    if (this.o.plant === undefined || this.planted || this.eventsThrough <= at) return frame;
    this.planted = true;
    const i = Math.max(0, at - before);
    const events = [...frame.events];
    if (this.o.plant === 'drop') events.splice(i, 1);
    else events.splice(i, 0, events[i]!);
    return { ...frame, events };
  }
}

/** SimWatchSocket is one watch's link to one store (see the file header). */
export class SimWatchSocket implements FeedSocket {
  private readonly feeds = new Map<number, FeedHandlers>();
  private readonly store: Store | undefined;
  private readonly conn: WatchConn;
  private failed: string | undefined;
  private paused = false;
  private readonly held: WatchServerFrame[] = [];
  private inFlightBytes = 0;
  private heldBytes = 0;
  /** lastUp / lastDown: when the last frame each way arrives (frames keep their order). */
  private lastUp = 0;
  private lastDown = 0;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly watchdog: ReturnType<typeof setInterval>;

  constructor(
    private readonly links: SimWatchLinks,
    readonly storeId: number,
  ) {
    this.store = links.cluster.store(storeId);
    this.conn = {
      send: (frame) => this.fromStore(frame),
      bufferedBytes: () => this.inFlightBytes + this.heldBytes,
      // The server closes the connection after the feeds' end frames: they arrive first, then the close.
      tooSlow: () => this.later('down', 0, () => this.fail('watcher too slow (closed by the store)')),
    };
    if (this.store === undefined) this.later('down', 0, () => this.fail(`connect ECONNREFUSED (store ${storeId} is down)`));
    this.watchdog = setInterval(() => {
      if (this.failed === undefined && this.links.cluster.store(storeId) !== this.store) this.fail(`store ${storeId} went away (crash)`);
    }, LIVENESS_CHECK_MS);
  }

  get usable(): boolean {
    return this.failed === undefined;
  }

  subscribe(id: number, regionId: number, epoch: RegionEpoch, start: Uint8Array, end: Uint8Array, fromRevision: bigint, prevValue: boolean, h: FeedHandlers): void {
    if (this.failed !== undefined) return h.onEnd({ type: 'Unavailable', message: this.failed });
    this.feeds.set(id, h);
    this.toStore({ t: 'subscribe', id, regionId, epoch, start, end, fromRevision, ...(prevValue ? { prevValue } : {}) });
  }

  unsubscribe(id: number): void {
    if (this.feeds.delete(id) && this.failed === undefined) this.toStore({ t: 'unsubscribe', id });
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const f of this.held.splice(0)) this.deliver(f);
    this.heldBytes = 0;
  }

  close(): void {
    this.fail('watch closed');
  }

  /** fail ends the link like a socket closing: in-flight frames are lost, the store drops the connection's feeds, every feed here ends Unavailable. */
  fail(why: string): void {
    if (this.failed !== undefined) return;
    this.failed = why;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    clearInterval(this.watchdog);
    this.held.length = 0;
    this.links.open.delete(this);
    if (this.store !== undefined && this.links.cluster.store(this.storeId) === this.store) this.store.watch.connectionClosed(this.conn);
    const feeds = [...this.feeds.values()];
    this.feeds.clear();
    for (const h of feeds) h.onEnd({ type: 'Unavailable', message: why });
  }

  /** later runs fn after ms, behind every earlier frame of the same direction. */
  private later(dir: 'up' | 'down', ms: number, fn: () => void): void {
    const at = Math.max(Date.now() + ms, dir === 'up' ? this.lastUp : this.lastDown);
    if (dir === 'up') this.lastUp = at;
    else this.lastDown = at;
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, at - Date.now());
    this.timers.add(t);
  }

  private toStore(frame: WatchClientFrame): void {
    const bytes = encode(frame);
    this.later('up', this.links.delay(), () => {
      const store = this.store;
      if (this.failed !== undefined || store === undefined) return;
      const f = parseWith(watchClientFrameSchema, decode(bytes), 'watch frame') as WatchClientFrame;
      if (f.t === 'unsubscribe') store.watch.unsubscribe(this.conn, f.id);
      else store.watch.subscribe(this.conn, f);
    });
  }

  private fromStore(frame: WatchServerFrame): void {
    if (this.failed !== undefined) return;
    const bytes = encode(frame);
    this.inFlightBytes += bytes.length;
    this.later('down', this.links.delay(), () => {
      this.inFlightBytes -= bytes.length;
      const f = parseWith(watchServerFrameSchema, decode(bytes), 'watch frame') as WatchServerFrame;
      if (this.paused) {
        this.held.push(f);
        this.heldBytes += bytes.length;
        return;
      }
      this.deliver(f);
    });
  }

  private deliver(frame: WatchServerFrame): void {
    if (this.failed !== undefined) return;
    const h = this.feeds.get(frame.id);
    if (h === undefined) return; // a feed this watch already left
    const f = this.links.tamper(frame);
    if (f.t === 'events') h.onEvents(f.events);
    else if (f.t === 'progress') h.onProgress(f.resolved, f.lock);
    else {
      this.feeds.delete(f.id);
      h.onEnd(f.error);
    }
  }
}
