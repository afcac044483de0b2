import { z } from 'zod';
import { bytesSchema, tsSchema } from '@flotilla/proto';

// txnResultSchema validates a store's TxnResult (ClientResponse.txn). A
// timestamp arrives as a msgpack integer, decoded as number below 2^53 and
// bigint above; tsSchema turns both into bigint.
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const errorList = <T extends z.ZodTypeAny>(s: T) => z.array(s).max(100_000);

export const lockInfoSchema = z.object({
  key: bytesSchema,
  primary: bytesSchema,
  startTs: tsSchema,
  ttlMs: count,
  kind: z.enum(['put', 'delete', 'lock']),
  minCommitTs: tsSchema,
  txnSize: count,
});

export const keyErrorSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('WriteConflict'), key: bytesSchema, primary: bytesSchema, startTs: tsSchema, conflictStartTs: tsSchema, conflictCommitTs: tsSchema }),
  z.object({ type: z.literal('KeyIsLocked'), lock: lockInfoSchema }),
  z.object({ type: z.literal('TxnLockNotFound'), key: bytesSchema, startTs: tsSchema }),
  z.object({ type: z.literal('Rolledback'), key: bytesSchema, startTs: tsSchema }),
  z.object({ type: z.literal('Committed'), key: bytesSchema, startTs: tsSchema, commitTs: tsSchema }),
  z.object({ type: z.literal('CommitTsExpired'), key: bytesSchema, startTs: tsSchema, commitTs: tsSchema, minCommitTs: tsSchema }),
]);

const errors = errorList(keyErrorSchema);
const pair = z.object({ key: bytesSchema, value: bytesSchema, version: tsSchema });

export const txnResultSchema = z.union([
  z.object({ type: z.literal('prewrite'), errors, onePcCommitTs: tsSchema.optional() }),
  z.object({ type: z.literal('commit'), errors, commitTs: tsSchema }),
  z.object({ type: z.literal('rollback'), errors }),
  z.object({ type: z.literal('checkTxnStatus'), status: z.literal('locked'), lock: lockInfoSchema }),
  z.object({ type: z.literal('checkTxnStatus'), status: z.literal('committed'), commitTs: tsSchema }),
  z.object({ type: z.literal('checkTxnStatus'), status: z.literal('rolledBack'), action: z.enum(['none', 'ttlExpireRollback', 'lockNotExistRollback']) }),
  z.object({ type: z.literal('resolveLock'), resolved: count }),
  z.object({ type: z.literal('txnHeartBeat'), ttlMs: count, errors }),
  z.object({ type: z.literal('read'), pairs: z.array(pair).max(1_000_000), errors }),
]);
