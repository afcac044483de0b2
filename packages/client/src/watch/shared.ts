import { ClientError } from '../errors';
import { WATCH_LIMITS, type Logger } from '@flotilla/proto';

/** PooledSocket is what the pool needs of a watch socket (WatchSocket, or a test's stand-in). */
export interface PooledSocket {
  readonly usable: boolean;
  /** feedCount: feeds open on it now (a store refuses more than WATCH_LIMITS.maxFeedsPerConnection on one connection). */
  readonly feedCount?: number;
  pause(): void;
  resume(): void;
  close(): void;
}

interface PoolEntry<S> {
  address: string;
  socket: S;
  users: number;
  paused: number;
}

/** FEEDS_PER_SOCKET: feeds the pool puts on one connection, below the store's WATCH_LIMITS.maxFeedsPerConnection with room for a watch's in-flight subscribes. */
const FEEDS_PER_SOCKET = WATCH_LIMITS.maxFeedsPerConnection - 256;

/** SERVICE_SAFE_POINT_TTL_MS / _REFRESH_MS: a client's watch GC service safe point lives this long and is moved this often. */
export const SERVICE_SAFE_POINT_TTL_MS = 60_000;
export const SERVICE_SAFE_POINT_REFRESH_MS = 10_000;

/** UpdateServiceSafePoint is placement's updateServiceSafePoint (ttlMs 0 removes it). */
export type UpdateServiceSafePoint = (serviceId: string, ts: bigint, ttlMs: number) => Promise<{ accepted: boolean; gcSafePoint: bigint }>;

/** SafePointRefused is how the keeper reports a start below the GC safe point (watch.ts turns it into CompactedError). */
export class SafePointRefused extends Error {
  constructor(readonly gcSafePoint: bigint) {
    super(`GC safe point ${gcSafePoint} is above the watch's start`);
  }
}

/**
 * WatchShared is what the watches of one client share, so that thousands
 * of watches on one client cost the stores and placement like one:
 *
 * - **sockets**: one watch connection per store, multiplexing every feed
 *   of every watch (feed IDs are unique per client). A store allows 1,024
 *   client connections (maxClientConnections), so one socket per watch
 *   capped a client at about a thousand watches per store. The socket stays
 *   while a watch uses it; a paused watch pauses it (back-pressure then
 *   reaches the store for all the client's watches on it: the price of
 *   sharing, as with etcd's one gRPC stream per client).
 * - **the GC service safe point**: one per client (placement keeps at most
 *   1,024), at the smallest revision of its open watches, moved every 10 s
 *   and removed when the last watch closes.
 *
 * A watch opened without a WatchShared gets one of its own (the old shape:
 * its own sockets and safe point).
 */
export class WatchShared<S extends PooledSocket = PooledSocket> {
  /** sockets: per address, the sockets in use (one, unless its feeds filled one connection: then another is opened beside it). */
  private readonly sockets = new Map<string, PoolEntry<S>[]>();
  private readonly byId = new Map<S, PoolEntry<S>>();
  private nextFeedId = 1;
  private readonly holders = new Map<object, () => bigint>();
  private chain: Promise<unknown> = Promise.resolve();
  private refresh: ReturnType<typeof setInterval> | undefined;
  readonly serviceId = `watch-${typeof process === 'object' ? process.pid : 0}-${Math.random().toString(36).slice(2, 10)}`;

  constructor(
    private readonly open: (address: string) => S,
    private readonly update: UpdateServiceSafePoint | undefined,
    private readonly logger: Logger,
  ) {}

  /** feedId: a feed ID unique among every feed this client opens (they share sockets). */
  feedId(): number {
    return this.nextFeedId++;
  }

  /** acquire: a usable socket to address with room for more feeds (opened if there is none), counted as used once more. */
  acquire(address: string): S {
    const list = (this.sockets.get(address) ?? []).filter((x) => x.socket.usable);
    let e = list.find((x) => (x.socket.feedCount ?? 0) < FEEDS_PER_SOCKET);
    if (e === undefined) {
      e = { address, socket: this.open(address), users: 0, paused: 0 };
      list.push(e);
      this.byId.set(e.socket, e);
    }
    this.sockets.set(address, list);
    e.users++;
    return e.socket;
  }

  /** full: the socket holds as many feeds as the pool puts on one connection (the watch then acquires another). */
  full(s: S): boolean {
    return (s.feedCount ?? 0) >= FEEDS_PER_SOCKET;
  }

  /** release: one user fewer; the last one closes the socket. */
  release(s: S): void {
    const e = this.byId.get(s);
    if (e === undefined) return;
    if (--e.users > 0) return;
    this.byId.delete(s);
    const list = (this.sockets.get(e.address) ?? []).filter((x) => x !== e);
    if (list.length > 0) this.sockets.set(e.address, list);
    else this.sockets.delete(e.address);
    s.close();
  }

  /** pause / resume: a socket is paused while any of its watches asks (counted). */
  pause(s: S): void {
    const e = this.byId.get(s);
    if (e !== undefined && e.paused++ === 0) s.pause();
  }
  resume(s: S): void {
    const e = this.byId.get(s);
    if (e !== undefined && e.paused > 0 && --e.paused === 0) s.resume();
  }

  /**
   * hold registers a watch's revision with the client's service safe point
   * (revision() is read at each send); the first send for it checks the
   * start: a refusal (below the GC safe point) is SafePointRefused. Sends
   * go one at a time, each with the smallest revision at that moment, so a
   * late answer never moves the safe point above a watch registered meanwhile.
   */
  async hold(watch: object, revision: () => bigint): Promise<void> {
    if (this.update === undefined) return;
    this.holders.set(watch, revision);
    let r: { accepted: boolean; gcSafePoint: bigint };
    try {
      r = await this.send();
    } catch (e) {
      this.holders.delete(watch);
      throw new ClientError('Unavailable', `watch: could not register a GC service safe point: ${(e as Error).message}`, undefined, e);
    }
    if (!r.accepted) {
      this.holders.delete(watch);
      throw new SafePointRefused(r.gcSafePoint);
    }
    if (this.refresh === undefined) {
      this.refresh = setInterval(() => {
        this.send().catch((e: unknown) => this.logger.debug({ err: (e as Error).message }, 'watch: service safe point refresh failed; next try in 10 s'));
      }, SERVICE_SAFE_POINT_REFRESH_MS);
      (this.refresh as { unref?: () => void }).unref?.();
    }
  }

  /** unhold: the watch closed; with none left the service safe point is removed. */
  unhold(watch: object): void {
    if (!this.holders.delete(watch) || this.holders.size > 0) return;
    clearInterval(this.refresh);
    this.refresh = undefined;
    void this.send().catch(() => {});
  }

  private send(): Promise<{ accepted: boolean; gcSafePoint: bigint }> {
    const update = this.update!;
    const next = this.chain.then(() => {
      let min: bigint | undefined;
      for (const rev of this.holders.values()) {
        const v = rev();
        if (min === undefined || v < min) min = v;
      }
      return min === undefined ? update(this.serviceId, 0n, 0) : update(this.serviceId, min, SERVICE_SAFE_POINT_TTL_MS);
    });
    this.chain = next.catch(() => {});
    return next;
  }
}
