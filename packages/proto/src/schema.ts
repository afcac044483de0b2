import { z } from 'zod';
import { TXN_LIMITS } from './txn';

// zod schemas for everything that arrives from outside the process: client
// requests, store-to-store envelopes, config files. Internal calls trust the
// TypeScript types; bytes from a socket or a file never do.

/** Limits on what one request may carry; the store enforces them too. */
export const LIMITS = {
  maxKeyBytes: 8 * 1024,
  maxValueBytes: 8 * 1024 * 1024,
  maxBatchKeys: 10_000,
  maxScanLimit: 100_000,
  maxPeers: 16,
} as const;

const u64 = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const id = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
export const bytesSchema = z.instanceof(Uint8Array, { message: 'expected bytes (Uint8Array)' });
export const keySchema = bytesSchema.refine((b) => b.length <= LIMITS.maxKeyBytes, {
  message: `key longer than ${LIMITS.maxKeyBytes} bytes`,
});
export const nonEmptyKeySchema = keySchema.refine((b) => b.length > 0, { message: 'key must not be empty' });
export const valueSchema = bytesSchema.refine((b) => b.length <= LIMITS.maxValueBytes, {
  message: `value longer than ${LIMITS.maxValueBytes} bytes`,
});

export const peerSchema = z.object({ id, storeId: id, role: z.enum(['voter', 'learner']) });
export const regionEpochSchema = z.object({ confVer: u64, version: u64 });
export const regionSchema = z.object({
  id,
  startKey: keySchema,
  endKey: keySchema,
  epoch: regionEpochSchema,
  peers: z.array(peerSchema).max(LIMITS.maxPeers),
});
export const storeSchema = z.object({
  id,
  address: z.string().min(1).max(256),
  state: z.enum(['up', 'disconnected', 'offline', 'down', 'tombstone']),
  labels: z.record(z.string(), z.string()).optional(),
});

const entrySchema = z.object({
  entryType: z.union([z.literal(0), z.literal(1), z.literal(2)]),
  term: u64,
  index: u64,
  data: bytesSchema,
  context: bytesSchema.optional(),
});
const confStateSchema = z.object({
  voters: z.array(u64),
  learners: z.array(u64),
  votersOutgoing: z.array(u64),
  learnersNext: z.array(u64),
  autoLeave: z.boolean(),
});
export const raftMessageBodySchema = z.object({
  msgType: z.number().int().min(0).max(127),
  to: u64,
  from: u64,
  term: u64,
  logTerm: u64,
  index: u64,
  entries: z.array(entrySchema),
  commit: u64,
  commitTerm: u64,
  snapshot: z
    .object({ data: bytesSchema, metadata: z.object({ confState: confStateSchema, index: u64, term: u64 }) })
    .optional(),
  requestSnapshot: u64,
  reject: z.boolean(),
  rejectHint: u64,
  context: bytesSchema.optional(),
  priority: z.number().int(),
});
export const raftMessageSchema = z.object({
  regionId: id,
  fromPeer: peerSchema,
  toPeer: peerSchema,
  regionEpoch: regionEpochSchema,
  message: raftMessageBodySchema,
  startKey: keySchema,
  endKey: keySchema,
  isTombstone: z.boolean(),
});

export const requestHeaderSchema = z.object({
  regionId: id,
  regionEpoch: regionEpochSchema,
  peer: peerSchema.optional(),
});
export const kvWriteSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('put'), key: nonEmptyKeySchema, value: valueSchema }),
  z.object({ type: z.literal('delete'), key: nonEmptyKeySchema }),
  z.object({ type: z.literal('deleteRange'), startKey: keySchema, endKey: keySchema }),
  z.object({ type: z.literal('cas'), key: nonEmptyKeySchema, expected: valueSchema.nullable(), value: valueSchema.nullable() }),
]);
export const kvReadSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('get'), key: nonEmptyKeySchema }),
  z.object({ type: z.literal('batchGet'), keys: z.array(nonEmptyKeySchema).min(1).max(LIMITS.maxBatchKeys) }),
  z.object({
    type: z.literal('scan'),
    startKey: keySchema,
    endKey: keySchema,
    limit: z.number().int().positive().max(LIMITS.maxScanLimit),
  }),
]);
const changePeerType = z.union([z.literal(0), z.literal(1), z.literal(2)]);
export const adminRequestSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('changePeer'), changeType: changePeerType, peer: peerSchema }),
  z.object({
    type: z.literal('changePeerV2'),
    changes: z.array(z.object({ changeType: changePeerType, peer: peerSchema })).min(1).max(LIMITS.maxPeers),
  }),
  z.object({ type: z.literal('transferLeader'), peer: peerSchema }),
  z.object({ type: z.literal('compactLog'), compactIndex: u64, compactTerm: u64 }),
  z.object({
    type: z.literal('batchSplit'),
    splits: z
      .array(z.object({ splitKey: nonEmptyKeySchema, newRegionId: id, newPeerIds: z.array(id).max(LIMITS.maxPeers) }))
      .min(1)
      .max(64),
    rightDerive: z.boolean(),
  }),
  z.object({ type: z.literal('prepareMerge'), target: regionSchema, minIndex: u64 }),
  z.object({ type: z.literal('commitMerge'), source: regionSchema, commit: u64, entries: z.array(bytesSchema) }),
  z.object({ type: z.literal('rollbackMerge'), commit: u64 }),
]);
// Transactional commands and snapshot reads (txn.ts has the types and their meaning).
/** tsSchema accepts a msgpack integer decoded as number or bigint and gives bigint (>= 0, < 2^63). */
export const tsSchema = z
  .union([z.bigint(), z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)])
  .transform((v) => BigInt(v))
  .refine((v) => v >= 0n && v < 1n << 63n, { message: 'timestamp out of range' });
const positiveTs = tsSchema.refine((v) => v > 0n, { message: 'timestamp must be positive' });
const ttl = z.number().int().positive().max(TXN_LIMITS.maxLockTtlMs);
const txnKeys = z.array(nonEmptyKeySchema).min(1).max(TXN_LIMITS.maxKeys);

export const mutationSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('put'), key: nonEmptyKeySchema, value: valueSchema }),
  z.object({ op: z.literal('delete'), key: nonEmptyKeySchema }),
  z.object({ op: z.literal('lock'), key: nonEmptyKeySchema }),
]);

export const txnCommandSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('prewrite'),
    mutations: z.array(mutationSchema).min(1).max(TXN_LIMITS.maxKeys),
    primary: nonEmptyKeySchema,
    startTs: positiveTs,
    lockTtlMs: ttl,
    txnSize: z.number().int().positive().max(TXN_LIMITS.maxKeys),
    minCommitTs: tsSchema.optional(),
    onePc: z.boolean().optional(),
  }),
  z.object({ type: z.literal('commit'), keys: txnKeys, startTs: positiveTs, commitTs: positiveTs }),
  z.object({ type: z.literal('rollback'), keys: txnKeys, startTs: positiveTs }),
  z.object({
    type: z.literal('checkTxnStatus'),
    primary: nonEmptyKeySchema,
    startTs: positiveTs,
    currentTs: positiveTs,
    callerStartTs: tsSchema,
    rollbackIfNotExist: z.boolean(),
  }),
  z.object({ type: z.literal('resolveLock'), startTs: positiveTs, commitTs: tsSchema, keys: txnKeys.optional() }),
  z.object({ type: z.literal('txnHeartBeat'), primary: nonEmptyKeySchema, startTs: positiveTs, adviseTtlMs: ttl }),
]);

export const txnReadSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('get'), key: nonEmptyKeySchema, ts: positiveTs }),
  z.object({ type: z.literal('batchGet'), keys: z.array(nonEmptyKeySchema).min(1).max(LIMITS.maxBatchKeys), ts: positiveTs }),
  z.object({
    type: z.literal('scan'),
    startKey: keySchema,
    endKey: keySchema,
    limit: z.number().int().positive().max(LIMITS.maxScanLimit),
    ts: positiveTs,
    keyOnly: z.boolean().optional(),
  }),
]);

const requestId = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
export const clientRequestSchema = z.discriminatedUnion('op', [
  z.object({ id: requestId, header: requestHeaderSchema, op: z.literal('read'), read: kvReadSchema }),
  z.object({
    id: requestId,
    header: requestHeaderSchema,
    op: z.literal('write'),
    writes: z.array(kvWriteSchema).min(1).max(LIMITS.maxBatchKeys),
  }),
  z.object({ id: requestId, header: requestHeaderSchema, op: z.literal('admin'), admin: adminRequestSchema }),
  z.object({
    id: requestId,
    header: requestHeaderSchema,
    op: z.literal('split'),
    splitKeys: z.array(nonEmptyKeySchema).min(1).max(64),
  }),
  z.object({ id: requestId, header: requestHeaderSchema, op: z.literal('merge'), targetRegionId: id }),
  z.object({ id: requestId, header: requestHeaderSchema, op: z.literal('txn'), txn: txnCommandSchema }),
  z.object({ id: requestId, header: requestHeaderSchema, op: z.literal('txnRead'), read: txnReadSchema }),
]);

/** ValidationError: external input that does not have the expected shape; names the field. */
export class ValidationError extends Error {
  constructor(
    message: string,
    readonly fields: string[],
  ) {
    super(message);
    this.name = 'ValidationError';
  }
}

/** formatIssuePath renders a zod issue path the way a user would write it: `writes[0].key`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(root)' : out;
}

/**
 * parseWith validates `value` against `schema`. On failure it throws a
 * ValidationError whose message names every offending field, e.g.
 * `client request: writes[0].key: key must not be empty`.
 */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 5);
  const fields = issues.map((i) => formatIssuePath(i.path));
  const detail = issues.map((i) => `${formatIssuePath(i.path)}: ${i.message}`).join('; ');
  throw new ValidationError(`${what}: ${detail}`, fields);
}
