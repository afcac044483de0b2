import { z } from 'zod';
import type { Peer, Region, RegionEpoch } from './region';
import { bytesSchema, keySchema, peerSchema, regionEpochSchema, regionSchema, tsSchema } from './schema';

// watch.ts: the change feed of the transactional keyspace (issue #18,
// docs/watch-and-leases.md). A client opens one WebSocket per store at
// WATCH_PATH (same port, token and TLS as /client) and multiplexes the
// feeds of every Region it watches there: one feed per Region leader,
// [start, end) ∩ Region from a revision (a commit ts). The store answers
// with events (committed put/delete records), progress (the Region's
// resolved ts: no commit at or below it can still appear in the feed) and
// one end frame when the feed stops (a typed error the client retries on).

/** WATCH_PATH is the store's WebSocket endpoint for change feeds (beside /client). */
export const WATCH_PATH = '/watch';

/** WATCH_LIMITS bound what one feed may cost a store (docs/watch-and-leases.md, "Bounds"). */
export const WATCH_LIMITS = {
  /** maxFeedsPerConnection: feeds open on one watch connection; one more is ended InvalidRequest. */
  maxFeedsPerConnection: 4096,
  /** maxBufferedBytes: when a connection's unsent bytes pass this the watcher is too slow and its feeds end (WatcherTooSlow). */
  maxBufferedBytes: 32 * 1024 * 1024,
  /** maxPendingEvents: live events one feed holds while its catch-up scan runs; past it the feed ends (WatcherTooSlow). */
  maxPendingEvents: 100_000,
  /** catchUpPageRows: write records one catch-up step reads before it yields to the event loop. */
  catchUpPageRows: 1024,
  /** maxEventsPerFrame: events one frame carries (a round's events for a feed are cut into frames of this many). */
  maxEventsPerFrame: 4096,
  /** soleProgressIntervalMs: a sole feed (see subscribe) with no new events gets progress at most this often. */
  soleProgressIntervalMs: 1000,
  /** lockHintAfterMs: a lock holds a feed's resolved ts this long (oracle time: the pass's T minus the lock's start_ts) before progress names it (WatchHeldBy). */
  lockHintAfterMs: 1000,
  /** lockHintIntervalMs: while one lock keeps holding a feed, its progress names it at most this often. */
  lockHintIntervalMs: 1000,
} as const;

/**
 * WatchHeldBy is the lock that holds a feed's resolved ts (the oldest
 * put/delete lock of its range below the pass's timestamp), named in a
 * progress frame once it has held the feed for WATCH_LIMITS.lockHintAfterMs,
 * so a watcher can resolve a lock whose transaction was abandoned (TiKV's
 * resolved-ts worker reports it; TiCDC resolves it). It is what a reader's
 * lock resolver needs: the key, its transaction's primary, start_ts and TTL.
 */
export interface WatchHeldBy {
  key: Uint8Array;
  primary: Uint8Array;
  startTs: bigint;
  ttlMs: number;
}

/** WatchEventType: a committed put or delete (lock and rollback records are not events). */
export type WatchEventType = 'put' | 'delete';

/** WatchEvent is one committed write to a key: revision is its commit ts. */
export interface WatchEvent {
  type: WatchEventType;
  key: Uint8Array;
  /** value: the written value (put only). */
  value?: Uint8Array;
  revision: bigint;
  /** prevValue: the key's value just before this change (absent when it had none); only on feeds subscribed with prevValue. */
  prevValue?: Uint8Array;
}

/**
 * WatchFeedError is why a feed ended. All but InvalidRequest and Compacted
 * are retryable: the client re-resolves the Regions of the feed's range and
 * subscribes again from the last revision it delivered.
 */
export type WatchFeedError =
  | { type: 'NotLeader'; regionId: number; leader?: Peer }
  | { type: 'EpochNotMatch'; currentRegions: Region[] }
  | { type: 'RegionNotFound'; regionId: number }
  /** Compacted: fromRevision is below the GC safe point; revisions above safePoint are still complete (etcd's ErrCompacted). */
  | { type: 'Compacted'; regionId: number; safePoint: bigint }
  /** WatcherTooSlow: the watcher did not read its events and the store stopped buffering them (WATCH_LIMITS). */
  | { type: 'WatcherTooSlow'; message: string }
  | { type: 'Unavailable'; message: string }
  | { type: 'InvalidRequest'; message: string };

/** WatchClientFrame is what a watcher sends: open a feed, or close one. */
export type WatchClientFrame =
  /**
   * subscribe: sole says this feed is its watch's only one (the watch's
   * whole range is in this Region, no progress notifications asked): its
   * progress then only releases its own events, so the store sends one
   * after events and otherwise at most every WATCH_LIMITS.soleProgressIntervalMs,
   * not every resolved-ts pass (idle single-key watchers cost a store little).
   */
  | { t: 'subscribe'; id: number; regionId: number; epoch: RegionEpoch; start: Uint8Array; end: Uint8Array; fromRevision: bigint; prevValue?: boolean; sole?: boolean }
  | { t: 'unsubscribe'; id: number };

/** WatchServerFrame is what a store sends about feed id. */
export type WatchServerFrame =
  | { t: 'events'; id: number; events: WatchEvent[] }
  /**
   * progress: every commit of the feed's range at or below resolved was
   * sent before this frame. lock (optional; older stores never send it, and
   * older clients drop it): the lock holding resolved back; such a frame may
   * repeat the last resolved.
   */
  | { t: 'progress'; id: number; resolved: bigint; lock?: WatchHeldBy }
  | { t: 'end'; id: number; error: WatchFeedError };

const feedId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const regionId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

export const watchClientFrameSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('subscribe'), id: feedId, regionId, epoch: regionEpochSchema, start: keySchema, end: keySchema, fromRevision: tsSchema, prevValue: z.boolean().optional(), sole: z.boolean().optional() }),
  z.object({ t: z.literal('unsubscribe'), id: feedId }),
]);

const watchHeldBySchema = z.object({ key: keySchema, primary: keySchema, startTs: tsSchema, ttlMs: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER) });
const watchEventSchema = z.object({ type: z.enum(['put', 'delete']), key: bytesSchema, value: bytesSchema.optional(), revision: tsSchema, prevValue: bytesSchema.optional() });
export const watchFeedErrorSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('NotLeader'), regionId, leader: peerSchema.optional() }),
  z.object({ type: z.literal('EpochNotMatch'), currentRegions: z.array(regionSchema).max(1024) }),
  z.object({ type: z.literal('RegionNotFound'), regionId }),
  z.object({ type: z.literal('Compacted'), regionId, safePoint: tsSchema }),
  z.object({ type: z.literal('WatcherTooSlow'), message: z.string() }),
  z.object({ type: z.literal('Unavailable'), message: z.string() }),
  z.object({ type: z.literal('InvalidRequest'), message: z.string() }),
]);
export const watchServerFrameSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('events'), id: feedId, events: z.array(watchEventSchema).max(WATCH_LIMITS.maxEventsPerFrame) }),
  z.object({ t: z.literal('progress'), id: feedId, resolved: tsSchema, lock: watchHeldBySchema.optional() }),
  z.object({ t: z.literal('end'), id: feedId, error: watchFeedErrorSchema }),
]);

/** isRetryableFeedError: the client subscribes again (after re-resolving Regions) rather than failing the watch. */
export function isRetryableFeedError(e: WatchFeedError): boolean {
  return e.type !== 'InvalidRequest' && e.type !== 'Compacted' && e.type !== 'WatcherTooSlow';
}
