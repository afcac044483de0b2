import { DEFAULT_INTEGRITY_FULL_MAX_BYTES } from '@flotilla/log-engine';
import { z } from 'zod';

/**
 * StoreConfig holds every tunable of a store. Two profiles: `production`
 * (split thresholds in TiKV's range) and `demo` (tiny thresholds so a demo
 * splits after a few thousand keys).
 */
export interface StoreConfig {
  /** tickIntervalMs is the base tick: one raft tick for every awake peer. */
  tickIntervalMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  /** maxSizePerMsgBytes bounds one MsgApp. */
  maxSizePerMsgBytes: number;
  maxInflightMsgs: number;
  /** readOnly: 'safe' = ReadIndex with a heartbeat round; 'lease-based' = the store's wall-clock leader lease (Store.startRead). */
  readOnly: 'safe' | 'lease-based';
  /** maxPeersPerPoll bounds one poll round so hot Regions cannot starve others. */
  maxPeersPerPoll: number;
  /** maxMessagesPerPeerPerPoll bounds how many mailbox items one peer handles per round. */
  maxMessagesPerPeerPerPoll: number;
  /** mailboxCapacity bounds each peer's mailbox; beyond it, messages are dropped and proposals answered ServerIsBusy. */
  mailboxCapacity: number;
  /** maxPendingProposalsPerPeer bounds proposals awaiting apply per peer. */
  maxPendingProposalsPerPeer: number;
  /** splitSizeBytes / splitKeys: a Region over either is split at about half its size. */
  regionMaxSizeBytes: number;
  regionSplitSizeBytes: number;
  regionMaxKeys: number;
  regionSplitKeys: number;
  splitCheckIntervalMs: number;
  /**
   * loadSplitQps / loadSplitBytesPerSec: a led Region over either (requests
   * or bytes per second) for loadSplitWindows windows of loadSplitWindowMs
   * in a row splits at a key that balances its load (TiKV's load-base-split,
   * operation/load-split.ts). 0 disables that threshold; both 0 disable it.
   */
  loadSplitQps: number;
  loadSplitBytesPerSec: number;
  loadSplitWindowMs: number;
  loadSplitWindows: number;
  /** raftLogGcCountLimit / raftLogGcThreshold: the leader proposes CompactLog past these. */
  raftLogGcCountLimit: number;
  raftLogGcThreshold: number;
  raftLogGcIntervalMs: number;
  storeHeartbeatIntervalMs: number;
  regionHeartbeatIntervalMs: number;
  /** hibernateAfterTicks: idle ticks before a caught-up Region stops ticking. */
  hibernateAfterTicks: number;
  hibernate: boolean;
  /** peerDownAfterMs: a follower silent this long is reported as a down peer. */
  peerDownAfterMs: number;
  /** maxClientConnections bounds open connections to the client port (WebSocket and HTTP); one more is refused with HTTP 503. */
  maxClientConnections: number;
  maxPendingRequestsPerConnection: number;
  /** maxBufferedBytesPerConnection: a client connection whose unread answers reach this is not read from until it catches up. */
  maxBufferedBytesPerConnection: number;
  /** clientHeadersTimeoutMs: a connection to the client port that has not sent a whole request head within this is closed (408). */
  clientHeadersTimeoutMs: number;
  /** maxRaftConnections bounds inbound connections to the raft port (raft and snapshot, all peers); one more is refused with HTTP 503. */
  maxRaftConnections: number;
  /** expireReadsIntervalMs: how often reads that waited over two election timeouts are failed (NotLeader). */
  expireReadsIntervalMs: number;
  /** mergeCheckIntervalMs: how often a merging source leader drives its merge (commit or roll back). */
  mergeCheckIntervalMs: number;
  /** purgeLogIntervalMs / purgeLogMaxRows: how often, and how many rows at most, compacted log rows are deleted. */
  purgeLogIntervalMs: number;
  purgeLogMaxRows: number;
  /** splitRetryAfterMs: a split asked for at one epoch is asked again only after this long. */
  splitRetryAfterMs: number;
  /** mergeTargetCheckAfterMs: a prepared merge whose target peer is gone asks placement about it after this long. */
  mergeTargetCheckAfterMs: number;
  /** regionHeartbeatConcurrency: Region heartbeats in flight to placement at once. */
  regionHeartbeatConcurrency: number;
  /** maxSplitKeysPerBatch bounds the split keys of one BatchSplit (pre-split). */
  maxSplitKeysPerBatch: number;
  /** snapshotChunkBytes: the size of one streamed snapshot chunk. */
  snapshotChunkBytes: number;
  /** logDeferMaxBytes: a round's commit-only log changes wait for the next fsync unless they exceed this. */
  logDeferMaxBytes: number;
  /**
   * writePipeline: how a poll round persists its log batch. 'sync' writes
   * and fsyncs it on the event loop before anything of the round is
   * applied or answered (the old path, kept selectable to measure against);
   * 'async' hands it to the log engine's writer thread and goes on: entries
   * that are durable are applied while later ones are written, and each
   * Ready's persisted messages (MsgAppResp, votes) leave only once its
   * write completed (batch/log-pipeline.ts).
   */
  writePipeline: 'sync' | 'async';
  /**
   * proposalBatchMaxCommands / proposalBatchMaxBytes: a leader's client
   * writes of one poll round go into one Raft entry, up to this many
   * commands and about this many bytes of keys and values (then the next
   * entry starts); each command is still answered on its own. 1 (the
   * default) = every write its own entry (the old path).
   */
  proposalBatchMaxCommands: number;
  proposalBatchMaxBytes: number;
  /** maxInflightLogWrites bounds the async round writes not yet durable; at the bound a round writes synchronously (waiting for them). */
  maxInflightLogWrites: number;
  /** maxPendingReadsPerPeer bounds reads waiting on one Region; one more is answered ServerIsBusy. */
  maxPendingReadsPerPeer: number;
  /**
   * maxTombstones bounds the Regions this store remembers having left (the
   * newest are kept). A forgotten one only loses the fast path: a message to
   * its old peer may create an uninitialized peer, which the stale-peer
   * check then removes.
   */
  maxTombstones: number;
  /**
   * integrityCheckFullMaxBytes: on start, raft.db and kv.db up to this size
   * (with their WAL) get a whole PRAGMA quick_check; a larger one a bounded
   * check (small tables whole, the bulk table's edges). 0 = always bounded.
   */
  integrityCheckFullMaxBytes: number;
  /** gcIntervalMs: how often the store asks placement for the GC safe point and runs a pass over the Regions it leads (store/src/gc/). */
  gcIntervalMs: number;
  /** gcBatchRows: write records one GC batch scans (one Raft proposal of deletes; batches of a Region follow each other, yielding between). */
  gcBatchRows: number;
  /**
   * gcMaxRowsPerSec caps the write records this store's GC removes per
   * second (TiKV's gc.max-write-bytes-per-sec, in rows); 0 = no cap. GC
   * paces itself between batches to stay under it, so a large backlog
   * costs foreground writes a bounded share instead of a burst.
   */
  gcMaxRowsPerSec: number;
  /**
   * watchResolvedTsIntervalMs: how often a store with open change feeds
   * advances their Regions' resolved ts (TiKV's advance-ts-interval,
   * watch/resolved.ts): one oracle call and one leadership probe per
   * watched Region per pass. A watcher over several Regions releases an
   * event once every Region's resolved ts passed it, so on a quiet store
   * this bounds the delay; shorter costs more idle CPU.
   */
  watchResolvedTsIntervalMs: number;
  /** watchMinPassGapMs: after live events a pass runs early (they wait on the resolved ts), but passes stay at least this far apart. */
  watchMinPassGapMs: number;
}

export const PRODUCTION: StoreConfig = {
  tickIntervalMs: 100,
  electionTicks: 10,
  heartbeatTicks: 2,
  maxSizePerMsgBytes: 1024 * 1024,
  maxInflightMsgs: 256,
  readOnly: 'safe',
  maxPeersPerPoll: 1024,
  maxMessagesPerPeerPerPoll: 256,
  mailboxCapacity: 4096,
  maxPendingProposalsPerPeer: 16384,
  regionMaxSizeBytes: 144 * 1024 * 1024,
  regionSplitSizeBytes: 96 * 1024 * 1024,
  regionMaxKeys: 1_440_000,
  regionSplitKeys: 960_000,
  splitCheckIntervalMs: 10_000,
  // Off by default until a full CI run has covered it on (TiKV's split.qps-threshold 3000,
  // split.byte-threshold 30 MiB, detect-times 10 are the values to turn it on with).
  loadSplitQps: 0,
  loadSplitBytesPerSec: 0,
  loadSplitWindowMs: 1_000,
  loadSplitWindows: 10,
  raftLogGcCountLimit: 10_000,
  raftLogGcThreshold: 50,
  raftLogGcIntervalMs: 5_000,
  storeHeartbeatIntervalMs: 10_000,
  regionHeartbeatIntervalMs: 10_000,
  hibernateAfterTicks: 20,
  hibernate: true,
  peerDownAfterMs: 30_000,
  maxClientConnections: 1024,
  maxPendingRequestsPerConnection: 4096,
  maxBufferedBytesPerConnection: 16 * 1024 * 1024,
  clientHeadersTimeoutMs: 10_000,
  maxRaftConnections: 512,
  expireReadsIntervalMs: 1_000,
  mergeCheckIntervalMs: 200,
  purgeLogIntervalMs: 2_000,
  purgeLogMaxRows: 10_000,
  splitRetryAfterMs: 10_000,
  mergeTargetCheckAfterMs: 2_000,
  regionHeartbeatConcurrency: 256,
  maxSplitKeysPerBatch: 64,
  snapshotChunkBytes: 1024 * 1024,
  logDeferMaxBytes: 1024 * 1024,
  writePipeline: 'sync',
  maxInflightLogWrites: 8,
  // Off by default: apps/node's store-processes test counts applied entries as writes (see docs/benchmarks.md).
  proposalBatchMaxCommands: 1,
  proposalBatchMaxBytes: 256 * 1024,
  maxPendingReadsPerPeer: 16_384,
  maxTombstones: 100_000,
  integrityCheckFullMaxBytes: DEFAULT_INTEGRITY_FULL_MAX_BYTES,
  gcIntervalMs: 10_000,
  gcBatchRows: 256,
  gcMaxRowsPerSec: 0,
  watchResolvedTsIntervalMs: 150,
  watchMinPassGapMs: 20,
};

export const DEMO: StoreConfig = {
  ...PRODUCTION,
  regionMaxSizeBytes: 96 * 1024,
  regionSplitSizeBytes: 64 * 1024,
  regionMaxKeys: 1_500,
  regionSplitKeys: 1_000,
  splitCheckIntervalMs: 500,
  raftLogGcCountLimit: 2_000,
  raftLogGcIntervalMs: 2_000,
  storeHeartbeatIntervalMs: 1_000,
  regionHeartbeatIntervalMs: 1_000,
  peerDownAfterMs: 10_000,
};

export const PROFILES = { production: PRODUCTION, demo: DEMO } as const;
export type ProfileName = keyof typeof PROFILES;

const positive = z.number().int().positive();
/** storeConfigOverridesSchema validates overrides from a config file; errors name the field. */
export const storeConfigOverridesSchema = z
  .object({
    tickIntervalMs: positive.max(10_000),
    electionTicks: positive.max(1000),
    heartbeatTicks: positive.max(100),
    maxSizePerMsgBytes: positive,
    maxInflightMsgs: positive.max(65536),
    readOnly: z.enum(['safe', 'lease-based']),
    maxPeersPerPoll: positive,
    maxMessagesPerPeerPerPoll: positive,
    mailboxCapacity: positive,
    maxPendingProposalsPerPeer: positive,
    regionMaxSizeBytes: positive,
    regionSplitSizeBytes: positive,
    regionMaxKeys: positive,
    regionSplitKeys: positive,
    splitCheckIntervalMs: positive,
    loadSplitQps: z.number().int().nonnegative(),
    loadSplitBytesPerSec: z.number().int().nonnegative(),
    loadSplitWindowMs: positive.min(100).max(60_000),
    loadSplitWindows: positive.max(1_000),
    raftLogGcCountLimit: positive,
    raftLogGcThreshold: positive,
    raftLogGcIntervalMs: positive,
    storeHeartbeatIntervalMs: positive,
    regionHeartbeatIntervalMs: positive,
    hibernateAfterTicks: positive,
    hibernate: z.boolean(),
    peerDownAfterMs: positive,
    maxClientConnections: positive,
    maxPendingRequestsPerConnection: positive,
    maxBufferedBytesPerConnection: positive,
    clientHeadersTimeoutMs: positive.max(600_000),
    maxRaftConnections: positive,
    expireReadsIntervalMs: positive,
    mergeCheckIntervalMs: positive,
    purgeLogIntervalMs: positive,
    purgeLogMaxRows: positive,
    splitRetryAfterMs: positive,
    mergeTargetCheckAfterMs: positive,
    regionHeartbeatConcurrency: positive.max(65_536),
    maxSplitKeysPerBatch: positive.max(10_000),
    snapshotChunkBytes: positive.max(64 * 1024 * 1024),
    logDeferMaxBytes: positive,
    writePipeline: z.enum(['sync', 'async']),
    maxInflightLogWrites: positive.max(1024),
    proposalBatchMaxCommands: positive.max(65_536),
    proposalBatchMaxBytes: positive,
    maxPendingReadsPerPeer: positive,
    maxTombstones: positive,
    integrityCheckFullMaxBytes: z.number().int().nonnegative(),
    gcIntervalMs: positive,
    gcBatchRows: positive.max(65_536),
    gcMaxRowsPerSec: z.number().int().nonnegative(),
    watchResolvedTsIntervalMs: positive.max(60_000),
    watchMinPassGapMs: z.number().int().nonnegative().max(60_000),
  })
  .partial()
  .strict();

export function resolveConfig(profile: ProfileName = 'production', overrides: Partial<StoreConfig> = {}): StoreConfig {
  const cfg = { ...PROFILES[profile], ...storeConfigOverridesSchema.parse(overrides) };
  if (cfg.electionTicks <= cfg.heartbeatTicks) {
    throw new Error(`store config: electionTicks (${cfg.electionTicks}) must be greater than heartbeatTicks (${cfg.heartbeatTicks})`);
  }
  if (cfg.regionSplitSizeBytes > cfg.regionMaxSizeBytes) throw new Error('store config: regionSplitSizeBytes must not exceed regionMaxSizeBytes');
  if (cfg.regionSplitKeys > cfg.regionMaxKeys) throw new Error('store config: regionSplitKeys must not exceed regionMaxKeys');
  return cfg;
}
