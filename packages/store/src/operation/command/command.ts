import { decode, encode, parseWith, type Peer as PeerMeta, type RaftCmdRequest, type Region } from '@flotilla/proto';
import { z } from 'zod';
import { adminRequestSchema, kvWriteSchema, requestHeaderSchema, tsSchema, txnCommandSchema } from '@flotilla/proto';
import type { CommandResult } from '../../raft/proposal';
import { gcCommandSchema } from '../../gc/command';

export type { CommandResult, Callback } from '../../raft/proposal';

const raftCmdSchema = z.object({
  header: requestHeaderSchema,
  writes: z.array(kvWriteSchema),
  admin: adminRequestSchema.optional(),
  txn: txnCommandSchema.optional(),
  onePcCommitTs: tsSchema.optional(),
  gc: gcCommandSchema.optional(),
  /** batch: a proposal batch's commands (raft/write-batch.ts). */
  batch: z.array(z.array(kvWriteSchema)).optional(),
});

export function encodeCommand(cmd: RaftCmdRequest): Uint8Array {
  return encode(cmd);
}

/**
 * decodeCommand reads a command back from a committed entry. Entries were
 * validated before proposal, but a log is input too (a peer from another
 * version could have written it), so a bad entry is a typed error the apply
 * loop turns into a skipped command, never a crash.
 */
export function decodeCommand(data: Uint8Array): RaftCmdRequest {
  return parseWith(raftCmdSchema, decode(data), 'raft command') as RaftCmdRequest;
}

export const err = {
  notLeader: (regionId: number, leader?: PeerMeta): CommandResult => ({
    ok: false,
    error: leader ? { type: 'NotLeader', regionId, leader } : { type: 'NotLeader', regionId },
  }),
  epochNotMatch: (currentRegions: Region[]): CommandResult => ({ ok: false, error: { type: 'EpochNotMatch', currentRegions } }),
  regionNotFound: (regionId: number): CommandResult => ({ ok: false, error: { type: 'RegionNotFound', regionId } }),
  busy: (reason: string, backoffMs = 50): CommandResult => ({ ok: false, error: { type: 'ServerIsBusy', reason, backoffMs } }),
  stale: (): CommandResult => ({ ok: false, error: { type: 'StaleCommand' } }),
  invalid: (message: string): CommandResult => ({ ok: false, error: { type: 'InvalidRequest', message } }),
  keyNotInRegion: (key: Uint8Array, region: Region): CommandResult => ({
    ok: false,
    error: { type: 'KeyNotInRegion', key, regionId: region.id, startKey: region.startKey, endKey: region.endKey },
  }),
  unavailable: (message: string): CommandResult => ({ ok: false, error: { type: 'Unavailable', message } }),
  undetermined: (regionId: number, message: string): CommandResult => ({ ok: false, error: { type: 'Undetermined', regionId, message } }),
};
