import WebSocket from 'ws';
import { WATCH_LIMITS, WATCH_PATH, decode, encode, parseWith, watchServerFrameSchema, type Logger, type RegionEpoch, type WatchClientFrame, type WatchEvent, type WatchFeedError, type WatchHeldBy, type WatchServerFrame } from '@flotilla/proto';

/** FeedHandlers receive one feed's frames; onEnd is called exactly once. */
export interface FeedHandlers {
  onEvents(events: WatchEvent[]): void;
  /** onProgress: resolved may repeat the last one when lock (the lock holding the feed back, a newer store's hint) is given. */
  onProgress(resolved: bigint, lock?: WatchHeldBy): void;
  onEnd(error: WatchFeedError): void;
}

/** DialOptions: the token and TLS settings a watch socket dials with (the client's own). */
export interface DialOptions {
  token?: string;
  tls?: { ca?: string; rejectUnauthorized?: boolean };
  connectTimeoutMs: number;
  logger: Logger;
}

/**
 * FeedSocket is what a Watch needs from its connection to one store: feeds
 * multiplexed by id, back-pressure, and close. WatchSocket is the product's
 * (a WebSocket to /watch); WatchEnv.openSocket may supply another, so the
 * deterministic simulation (packages/sim/src/watch) runs the same Watch
 * merge and re-subscribe logic over an in-memory link to the stores.
 */
export interface FeedSocket {
  /** usable: false once the connection failed or closed (the watch then opens a new one). */
  readonly usable: boolean;
  /** subscribe opens feed id; h.onEnd is called exactly once (at once, with Unavailable, on a failed socket). */
  subscribe(id: number, regionId: number, epoch: RegionEpoch, start: Uint8Array, end: Uint8Array, fromRevision: bigint, prevValue: boolean, h: FeedHandlers, sole?: boolean): void;
  unsubscribe(id: number): void;
  pause(): void;
  resume(): void;
  close(): void;
}

/** MAX_WATCH_FRAME_BYTES bounds one frame from a store (a frame of events is at most WATCH_LIMITS.maxEventsPerFrame events of up to 8 MiB each in theory; in practice far less). */
const MAX_WATCH_FRAME_BYTES = 256 * 1024 * 1024;

/**
 * WatchSocket is one watch's WebSocket to one store's /watch endpoint; it
 * multiplexes the watch's feeds on that store by feed id. A socket failure
 * ends every feed on it with Unavailable (retryable: the watch subscribes
 * again). A frame that fails validation drops the connection the same way:
 * a store that sends garbage is not trusted with the rest.
 */
export class WatchSocket implements FeedSocket {
  private readonly ws: WebSocket;
  private readonly feeds = new Map<number, FeedHandlers>();
  private readonly queued: Uint8Array[] = [];
  private open = false;
  private failed: string | undefined;

  constructor(
    readonly address: string,
    dial: DialOptions,
  ) {
    const scheme = dial.tls ? 'wss' : 'ws';
    const options: WebSocket.ClientOptions = {
      handshakeTimeout: dial.connectTimeoutMs,
      maxPayload: MAX_WATCH_FRAME_BYTES,
      ...(dial.token ? { headers: { authorization: `Bearer ${dial.token}` } } : {}),
      ...(dial.tls ? { rejectUnauthorized: dial.tls.rejectUnauthorized ?? true, ...(dial.tls.ca ? { ca: dial.tls.ca } : {}) } : {}),
    };
    this.ws = new WebSocket(`${scheme}://${address}${WATCH_PATH}`, options);
    this.ws.binaryType = 'nodebuffer';
    this.ws.on('open', () => {
      this.open = true;
      for (const f of this.queued.splice(0)) this.ws.send(f);
    });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => this.onFrame(data, isBinary));
    this.ws.on('unexpected-response', (_req, res) => {
      res.resume();
      this.fail(res.statusCode === 401 ? 'the store refused the watch: missing or wrong API token (HTTP 401)' : `the store answered the watch upgrade with HTTP ${res.statusCode}`);
      this.ws.terminate();
    });
    this.ws.on('error', (e) => {
      dial.logger.debug({ address, err: e.message }, 'watch socket error');
      this.fail(e.message);
    });
    this.ws.on('close', (code) => this.fail(`watch connection closed (${code})`));
  }

  get usable(): boolean {
    return this.failed === undefined;
  }

  get feedCount(): number {
    return this.feeds.size;
  }

  subscribe(id: number, regionId: number, epoch: RegionEpoch, start: Uint8Array, end: Uint8Array, fromRevision: bigint, prevValue: boolean, h: FeedHandlers, sole = false): void {
    if (this.failed !== undefined) return h.onEnd({ type: 'Unavailable', message: this.failed });
    this.feeds.set(id, h);
    this.send({ t: 'subscribe', id, regionId, epoch, start, end, fromRevision, ...(prevValue ? { prevValue } : {}), ...(sole ? { sole } : {}) });
  }

  unsubscribe(id: number): void {
    if (this.feeds.delete(id) && this.failed === undefined) this.send({ t: 'unsubscribe', id });
  }

  /** pause / resume stop and restart reading the socket: a consumer that does not keep up pushes back on the store. */
  pause(): void {
    if (this.open) this.ws.pause();
  }
  resume(): void {
    if (this.open) this.ws.resume();
  }

  close(): void {
    this.fail('watch closed');
    this.ws.terminate();
  }

  private send(f: WatchClientFrame): void {
    const bytes = encode(f);
    if (this.open) this.ws.send(bytes);
    else this.queued.push(bytes);
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    let frames: WatchServerFrame[];
    try {
      if (!isBinary) throw new Error('text frame');
      const raw = decode(data, MAX_WATCH_FRAME_BYTES);
      // A store sends one frame per message, or an array of them (the progress of many feeds after one resolved-ts pass).
      if (Array.isArray(raw) && raw.length > WATCH_LIMITS.maxEventsPerFrame) throw new Error(`${raw.length} frames in one message (at most ${WATCH_LIMITS.maxEventsPerFrame})`);
      frames = Array.isArray(raw) ? raw.map((r) => parseWith(watchServerFrameSchema, r, 'watch frame') as WatchServerFrame) : [parseWith(watchServerFrameSchema, raw, 'watch frame') as WatchServerFrame];
    } catch (e) {
      this.fail(`bad watch frame from store: ${(e as Error).message}`);
      this.ws.terminate();
      return;
    }
    for (const f of frames) {
      const h = this.feeds.get(f.id);
      if (h === undefined) continue; // a feed this watch already left
      if (f.t === 'events') h.onEvents(f.events);
      else if (f.t === 'progress') h.onProgress(f.resolved, f.lock);
      else {
        this.feeds.delete(f.id);
        h.onEnd(f.error);
      }
    }
  }

  private fail(why: string): void {
    if (this.failed === undefined) this.failed = why;
    this.open = false;
    this.queued.length = 0;
    const feeds = [...this.feeds.values()];
    this.feeds.clear();
    for (const h of feeds) h.onEnd({ type: 'Unavailable', message: why });
  }
}
