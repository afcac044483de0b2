import type { CasResult, KvPair, Peer as PeerMeta, Region, RegionError, TxnResult } from '@flotilla/proto';

/** CommandResult is what an applied (or rejected) command answers; `batch` (a batched entry's per-command results) never reaches a client: flushWriteBatch fans it out. */
export type CommandResult =
  | { ok: true; value?: Uint8Array | null; values?: (Uint8Array | null)[]; pairs?: KvPair[]; cas?: CasResult[]; regions?: Region[]; txn?: TxnResult; batch?: CommandResult[] }
  | { ok: false; error: RegionError };

export type Callback = (result: CommandResult) => void;

/** Proposal is a command waiting for its entry at (index, term) to apply. */
export interface Proposal {
  index: number;
  term: number;
  cb: Callback;
  /** proposedAtMs feeds the apply-latency histogram. */
  proposedAtMs: number;
}

/** ReadWaiter is a read waiting for its ReadIndex and then for apply to reach it. */
export interface ReadWaiter {
  ctx: string;
  /** index is set once raft returned the read index. */
  index: number;
  /** serve answers the read; false keeps it waiting (a snapshot read meeting a 1PC's memory lock) until the next serveReads or expiry. */
  serve: () => boolean | void;
  fail: (leader?: PeerMeta) => void;
  startedTick: number;
  /** issuedAtMs: the store's clock when the ReadIndex was asked for; a confirmed round renews the lease from it. */
  issuedAtMs: number;
}
