import { z } from 'zod';
import { ValidationError, compareKeys, keySchema, nonEmptyKeySchema, parseWith, peerSchema, regionSchema, tsSchema } from '@flotilla/proto';
import { MAX_SERVICE_TTL_MS } from './gc/leader';
import { LEASE_LIMITS } from './lease/leader';
import { PlacementError, PlacementErrorCode } from './errors';
import { checkRegionHeartbeat } from './heartbeat-check';
import type { ParamsOf, PlacementMethod } from './types';

// zod schemas for every placement API method's params. Everything arriving
// on the socket passes through these before the cluster looks at it.

/** LIMITS bound what one request may ask for. */
export const PLACEMENT_LIMITS = {
  maxAllocIdCount: 10_000,
  maxSplitCount: 64,
  maxScanLimit: 10_000,
  maxReportRegions: 1_024,
  /** maxRegionHeartbeats: Region heartbeats in one regionHeartbeats request (a store batches its led Regions). */
  maxRegionHeartbeats: 1_024,
  maxLabels: 32,
  /** maxTsoCount: timestamps per getTimestamps call (a range never crosses a millisecond: at most 2^18). */
  maxTsoCount: 65_536,
} as const;

const id = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const u64 = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** placementRegionSchema is proto's Region plus the rules placement relies on: startKey < endKey, distinct peer IDs and stores. */
export const placementRegionSchema = regionSchema.superRefine((r, ctx) => {
  if (r.endKey.length > 0 && compareKeys(r.startKey, r.endKey) >= 0) {
    ctx.addIssue({ code: 'custom', path: ['endKey'], message: 'endKey must be greater than startKey (or empty for +inf)' });
  }
  for (let i = 0; i < r.peers.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = r.peers[i]!;
      const b = r.peers[j]!;
      if (a.id === b.id) ctx.addIssue({ code: 'custom', path: ['peers', i, 'id'], message: `duplicate peer id ${a.id}` });
      else if (a.storeId === b.storeId) ctx.addIssue({ code: 'custom', path: ['peers', i, 'storeId'], message: `two peers on store ${a.storeId}` });
    }
  }
});

export const storeMetaSchema = z.object({
  id,
  address: z.string().min(1).max(256),
  labels: z
    .record(z.string().max(128), z.string().max(256))
    .refine((l) => Object.keys(l).length <= PLACEMENT_LIMITS.maxLabels, { message: `at most ${PLACEMENT_LIMITS.maxLabels} labels` })
    .optional(),
});

export const storeStatsSchema = z.object({
  storeId: id,
  capacityBytes: u64,
  usedBytes: u64,
  availableBytes: u64,
  regionCount: u64,
  leaderCount: u64,
});

export const regionHeartbeatSchema = z
  .object({
    region: placementRegionSchema,
    leader: peerSchema,
    approximateSizeBytes: u64,
    approximateKeys: u64,
    downPeers: z.array(z.object({ peer: peerSchema, downSeconds: u64 })).max(16).optional(),
    pendingPeers: z.array(peerSchema).max(16).optional(),
    flow: z.object({ readKeysPerSec: z.number().nonnegative().finite(), readBytesPerSec: z.number().nonnegative().finite(), writeKeysPerSec: z.number().nonnegative().finite(), writeBytesPerSec: z.number().nonnegative().finite() }).optional(),
  })
  .superRefine((hb, ctx) => {
    if (!hb.region.peers.some((p) => p.id === hb.leader.id && p.storeId === hb.leader.storeId)) {
      ctx.addIssue({ code: 'custom', path: ['leader'], message: `leader peer ${hb.leader.id} is not a peer of region ${hb.region.id}` });
    }
  });

const empty = z.object({}).optional();

/** methodSchemas validates params per method. Unknown methods are not in it. */
export const methodSchemas: { [M in PlacementMethod]: z.ZodType } = {
  bootstrap: z.object({ store: storeMetaSchema, region: placementRegionSchema }),
  isBootstrapped: empty,
  allocId: z.object({ count: z.number().int().positive().max(PLACEMENT_LIMITS.maxAllocIdCount) }),
  putStore: z.object({ store: storeMetaSchema }),
  removeStore: z.object({ storeId: id }),
  storeHeartbeat: z.object({ stats: storeStatsSchema }),
  regionHeartbeat: regionHeartbeatSchema,
  // Each heartbeat is checked on its own by the handler (region-heartbeats.ts), so one malformed heartbeat
  // gets its own InvalidArgument and the rest of the store's batch is still applied.
  regionHeartbeats: z.object({ heartbeats: z.array(z.unknown()).min(1).max(PLACEMENT_LIMITS.maxRegionHeartbeats) }),
  // The same, items packed (packed-heartbeat.ts) or ordinary objects; each checked by the handler.
  regionHeartbeatsPacked: z.object({ heartbeats: z.array(z.unknown()).min(1).max(PLACEMENT_LIMITS.maxRegionHeartbeats) }),
  askBatchSplit: z.object({ region: placementRegionSchema, count: z.number().int().positive().max(PLACEMENT_LIMITS.maxSplitCount) }),
  reportBatchSplit: z.object({ regions: z.array(placementRegionSchema).min(1).max(PLACEMENT_LIMITS.maxReportRegions) }),
  getRegion: z.object({ key: keySchema }),
  getRegionById: z.object({ regionId: id }),
  scanRegions: z.object({ startKey: keySchema, endKey: keySchema, limit: z.number().int().positive().max(PLACEMENT_LIMITS.maxScanLimit) }),
  getStore: z.object({ storeId: id }),
  getAllStores: empty,
  getClusterInfo: empty,
  getOperator: z.object({ regionId: id }),
  getTimestamps: z.object({ count: z.number().int().positive().max(PLACEMENT_LIMITS.maxTsoCount) }),
  getMembers: empty,
  addMember: z.object({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "_" or "-", at most 64'), address: z.string().regex(/^\[?[^\]\s/]+\]?:\d{1,5}$/, 'HOST:PORT') }),
  removeMember: z.object({ name: z.string().min(1).max(64) }),
  updateServiceSafePoint: z.object({
    serviceId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits, ".", "_", ":" or "-", at most 128'),
    ts: tsSchema,
    ttlMs: z.number().int().nonnegative().max(MAX_SERVICE_TTL_MS),
  }),
  getGcSafePoint: z.object({ progress: z.object({ storeId: id, safePoint: tsSchema, regionsDone: u64, versionsRemoved: u64 }).optional() }).optional(),
  getGcStatus: empty,
  leaseGrant: z.object({ ttlMs: z.number().int().min(LEASE_LIMITS.minTtlMs).max(LEASE_LIMITS.maxTtlMs) }),
  leaseKeepAlive: z.object({ id }),
  leaseRevoke: z.object({ id }),
  leaseKeepAlives: z.object({ ids: z.array(id).min(1).max(LEASE_LIMITS.maxKeepAlivesPerRequest) }),
  leaseTimeToLive: z.object({ id, keys: z.boolean().optional() }),
  leaseList: empty,
  leaseAttach: z.object({ id, key: nonEmptyKeySchema }),
  leaseAttachBatch: z.object({ items: z.array(z.object({ id, key: nonEmptyKeySchema })).min(1).max(LEASE_LIMITS.maxAttachesPerRequest) }),
};

/** parseParams validates one method's params; a bad field is an InvalidArgument naming it. */
export function parseParams<M extends PlacementMethod>(method: M, params: unknown): ParamsOf<M> {
  if (method === 'regionHeartbeat') {
    // The hot path: the hand-written check (heartbeat-check.ts); zod decides and words anything it is unsure of.
    const hb = checkRegionHeartbeat(params);
    if (hb !== undefined) return hb as ParamsOf<M>;
  }
  try {
    return parseWith(methodSchemas[method], params, `${method} params`) as ParamsOf<M>;
  } catch (err) {
    if (err instanceof ValidationError) throw new PlacementError(PlacementErrorCode.InvalidArgument, err.message);
    throw err;
  }
}

export function isPlacementMethod(m: string): m is PlacementMethod {
  return Object.prototype.hasOwnProperty.call(methodSchemas, m);
}

/** requestEnvelopeSchema checks the frame around the params. */
export const requestEnvelopeSchema = z.object({
  id: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  method: z.string().min(1).max(64),
  params: z.unknown().optional(),
});
