import { compareKeys, WATCH_LIMITS, type WatchEvent, type WatchFeedError, type WatchServerFrame } from '@flotilla/proto';
import type { Peer } from '../raft/peer';

/**
 * WatchConn is one watcher's connection as a feed sees it: where frames go,
 * and how to tell it that it fell too far behind. server.ts implements it
 * over a WebSocket; tests implement it in memory.
 */
export interface WatchConn {
  send(frame: WatchServerFrame): void;
  /** sendMany, when the connection has it, sends several frames as one message (a resolved-ts pass over many feeds); else each goes by send. */
  sendMany?(frames: WatchServerFrame[]): void;
  /** bufferedBytes: what was sent on the connection and not yet written to its socket (the watcher is not reading). */
  bufferedBytes(): number;
  /** tooSlow is told once the connection's feeds ended WatcherTooSlow; it closes the connection. */
  tooSlow(): void;
}

const hex = (k: Uint8Array): string => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');

/**
 * Feed is one Region leader's change feed for a watcher: the committed
 * puts and deletes of [start, end) (already clipped to the Region) with
 * commit_ts > fromRevision. It starts with a catch-up scan of the tables
 * in pages; live events applied meanwhile wait in `pending` (bounded) and
 * are sent after it, and a catch-up row that is also pending is skipped,
 * so each record is sent exactly once. Progress (the resolved ts) is sent
 * only once catch-up is over. Invariant: resolved only grows, and every
 * event at or below it was sent before the progress frame that carried it.
 */
export class Feed {
  /** resolved: the last resolved ts sent (starts at fromRevision: nothing at or below it is ever sent). */
  resolved: bigint;
  catchingUp = true;
  ended = false;
  private pending: WatchEvent[] = [];
  /** unreleased: events were sent since the last progress (a sole feed's watcher waits on the next one). */
  private unreleased = false;
  /** progressAtMs: when the last progress was sent (performance.now()). */
  private progressAtMs = -Infinity;
  private readonly pendingKeys = new Set<string>();

  constructor(
    readonly id: number,
    readonly conn: WatchConn,
    readonly peer: Peer,
    readonly epochVersion: number,
    readonly start: Uint8Array,
    readonly end: Uint8Array,
    readonly fromRevision: bigint,
    /** prevValue: events carry the key's value before the change. */
    readonly prevValue = false,
    /** sole: the feed is its watch's only one; its progress is needed only after events (and now and then: WATCH_LIMITS.soleProgressIntervalMs). */
    readonly sole = false,
  ) {
    this.resolved = fromRevision;
  }

  get regionId(): number {
    return this.peer.regionId;
  }

  covers(key: Uint8Array): boolean {
    return compareKeys(key, this.start) >= 0 && (this.end.length === 0 || compareKeys(key, this.end) < 0);
  }

  /** live takes events applied after the feed opened (in apply order); false when the feed must end as too slow. */
  live(events: WatchEvent[]): boolean {
    if (!this.catchingUp) {
      this.sendEvents(events);
      return true;
    }
    if (this.pending.length + events.length > WATCH_LIMITS.maxPendingEvents) return false;
    for (const e of events) {
      this.pending.push(e);
      this.pendingKeys.add(`${hex(e.key)}@${e.revision}`);
    }
    return true;
  }

  /** caughtUp sends one catch-up page, skipping records the live path holds already. */
  catchUpPage(events: WatchEvent[]): void {
    const fresh = this.pendingKeys.size === 0 ? events : events.filter((e) => !this.pendingKeys.has(`${hex(e.key)}@${e.revision}`));
    this.sendEvents(fresh);
  }

  /** finishCatchUp sends what the live path held during catch-up and switches the feed to live. */
  finishCatchUp(): void {
    this.catchingUp = false;
    const held = this.pending;
    this.pending = [];
    this.pendingKeys.clear();
    this.sendEvents(held);
  }

  /** progress sends a resolved ts above the last one (and never during catch-up). */
  progress(resolved: bigint): void {
    if (this.takeProgress(resolved)) this.conn.send({ t: 'progress', id: this.id, resolved });
  }

  /**
   * takeProgress records a resolved ts above the last one and says whether
   * the caller must send it now (never during catch-up); resolved.ts sends
   * the progress of many feeds of one connection in one frame.
   */
  takeProgress(resolved: bigint, nowMs = performance.now()): boolean {
    if (this.ended || this.catchingUp || resolved <= this.resolved) return false;
    if (this.sole && !this.unreleased && nowMs - this.progressAtMs < WATCH_LIMITS.soleProgressIntervalMs) return false;
    this.resolved = resolved;
    this.unreleased = false;
    this.progressAtMs = nowMs;
    return true;
  }

  endWith(error: WatchFeedError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.pending = [];
    this.pendingKeys.clear();
    if (error !== undefined) this.conn.send({ t: 'end', id: this.id, error });
  }

  private sendEvents(events: WatchEvent[]): void {
    if (this.ended || events.length === 0) return;
    this.unreleased = true;
    for (let i = 0; i < events.length; i += WATCH_LIMITS.maxEventsPerFrame) {
      this.conn.send({ t: 'events', id: this.id, events: events.slice(i, i + WATCH_LIMITS.maxEventsPerFrame) });
    }
  }
}
