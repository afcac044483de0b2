import { z } from 'zod';
import { bytesSchema, parseWith, peerSchema, regionSchema, type ClientResponse } from '@flotilla/proto';
import { txnResultSchema } from './txn/result-schema';

// responseSchema: what a store may answer on /client. Frames from a socket
// are validated before the client acts on them (a bad hint must not send it
// looping), per the house rule that bytes from outside are never trusted.
const id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const regionErrorSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('NotLeader'), regionId: id, leader: peerSchema.optional().nullable() }),
  z.object({ type: z.literal('EpochNotMatch'), currentRegions: z.array(regionSchema).max(1024) }),
  z.object({ type: z.literal('KeyNotInRegion'), key: bytesSchema, regionId: id, startKey: bytesSchema, endKey: bytesSchema }),
  z.object({ type: z.literal('RegionNotFound'), regionId: id }),
  z.object({ type: z.literal('ServerIsBusy'), reason: z.string(), backoffMs: z.number().nonnegative() }),
  z.object({ type: z.literal('StaleCommand') }),
  z.object({ type: z.literal('StoreNotMatch'), requestStoreId: id, actualStoreId: id }),
  z.object({ type: z.literal('InvalidRequest'), message: z.string() }),
  z.object({ type: z.literal('Unavailable'), message: z.string() }),
  z.object({ type: z.literal('Undetermined'), regionId: id, message: z.string() }),
]);
const pairSchema = z.object({ key: bytesSchema, value: bytesSchema });
const responseSchema = z.union([
  z.object({
    id,
    ok: z.literal(true),
    value: bytesSchema.nullable().optional(),
    values: z.array(bytesSchema.nullable()).optional(),
    pairs: z.array(pairSchema).optional(),
    cas: z.array(z.object({ succeeded: z.boolean(), previous: bytesSchema.nullable() })).optional(),
    regions: z.array(regionSchema).optional(),
    txn: txnResultSchema.optional(),
  }),
  z.object({ id, ok: z.literal(false), error: regionErrorSchema }),
]);

/** parseClientResponse validates one decoded frame from a store; throws ValidationError naming the field. */
export function parseClientResponse(raw: unknown): ClientResponse {
  const r = parseWith(responseSchema, raw, 'store response');
  if (!r.ok && r.error.type === 'NotLeader' && r.error.leader == null) {
    return { id: r.id, ok: false, error: { type: 'NotLeader', regionId: r.error.regionId } };
  }
  return r as ClientResponse;
}
