import { z } from 'zod';
import { keySchema, tsSchema, type RaftCmdRequest } from '@flotilla/proto';
import type { GcDelete } from '@flotilla/kv-engine';

/**
 * GcCommand is the Raft command of one GC batch: the safe point it was
 * planned at and the write records (with their long values) to remove. The
 * Region leader plans it from its applied state (kv-engine mvcc/gc.ts) and
 * every replica removes exactly these rows (apply.ts), so replicas converge
 * whatever their apply rounds look like - the way TiKV's GC worker proposes
 * its deletes from the leader rather than have each replica decide.
 */
export interface GcCommand {
  safePoint: bigint;
  deletes: GcDelete[];
}

/** MAX_GC_DELETES bounds one command (a log entry of at most a few hundred KiB). */
export const MAX_GC_DELETES = 8192;

export const gcCommandSchema = z.object({
  safePoint: tsSchema,
  deletes: z.array(z.object({ key: keySchema, commitTs: tsSchema, dataStartTs: tsSchema.optional() })).max(MAX_GC_DELETES),
});

/** RaftCmdWithGc: a RaftCmdRequest that carries a GC batch (set alone: writes empty, no admin, no txn). */
export type RaftCmdWithGc = RaftCmdRequest & { gc?: GcCommand };

/** gcOf: the GC batch a decoded command carries, if any. */
export function gcOf(cmd: RaftCmdRequest): GcCommand | undefined {
  return (cmd as RaftCmdWithGc).gc;
}
