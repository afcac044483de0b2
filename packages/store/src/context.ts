import { newSeededRandom, type Logger as RaftLogger } from '@flotilla/raft-core';
import { LogBatch, type LogEngine, type LogOp } from '@flotilla/log-engine';
import { silentLogger, type Logger } from '@flotilla/proto';
import type { Transport } from '@flotilla/transport';
import type { StoreConfig } from './config';
import type { DiskUsage } from './disk-usage';
import type { PlacementApi, StateMachine } from './engines';
import { StoreMetrics } from './metrics';
import type { Peer } from './raft/peer';
import { isDroppable, type PeerMsg } from './router/message';
import { MemLockTable } from './mem-locks';
import type { StoreStorageError } from './storage-fault';
import { Tombstones } from './tombstones';
import { InflightWrites } from './raft/inflight-writes';

/** StoreLogger is the one structured logger of every package (@flotilla/proto's Logger), kept under the store's old name. */
export type StoreLogger = Logger;

export interface StoreDeps {
  storeId: number;
  config: StoreConfig;
  logEngine: LogEngine;
  sm: StateMachine;
  transport: Transport;
  placement: PlacementApi;
  logger?: StoreLogger;
  /** now is the wall clock in ms (injectable for tests). */
  now?: () => number;
  seed?: number;
  /** diskUsage measures the data directory's file system for store heartbeats (default: unknown, reported as 0). */
  diskUsage?: () => DiskUsage;
  /** onHalt is told once when a storage failure stops the store (storage-fault.ts); the host exits. */
  onHalt?: (failure: StoreStorageError) => void;
}

/**
 * StoreContext is everything a store operation works on (TiKV's
 * StoreContext): the engines, the transport, placement, the clock and the
 * store-wide state. Operations are free functions that take it; none of
 * them owns state of its own. The poll function is handed in by the
 * poller, so this file never imports it.
 */
export class StoreContext {
  readonly storeId: number;
  readonly config: StoreConfig;
  readonly log: LogEngine;
  readonly sm: StateMachine;
  readonly transport: Transport;
  readonly pd: PlacementApi;
  readonly logger: StoreLogger;
  /** raftLoggerFor gives one peer's RawNode its logger (see the constructor). */
  readonly raftLoggerFor: (regionId: number) => RaftLogger;
  readonly metrics = new StoreMetrics();
  /** memLocks: 1PC transactions' in-memory key locks on this store's leaders (mem-locks.ts; at most 16384 in flight). */
  readonly memLocks = new MemLockTable(16_384);
  readonly now: () => number;
  /** monoNow: a monotonic clock for the leader lease (wall-clock steps must not stretch a lease). */
  readonly monoNow: () => number;
  readonly random: () => number;
  readonly peers = new Map<number, Peer>();
  /** hibernated holds the peers that stopped ticking (operation/hibernate.ts is its only writer). */
  readonly hibernated = new Set<Peer>();
  readonly tombstones: Tombstones;
  dirty = new Set<Peer>();
  pollScheduled = false;
  polling = false;
  closed = false;
  readCtxSeq = 0;
  /** pendingLog holds log-engine changes produced by applies (compaction, new Regions) for the next write. */
  pendingLog = new LogBatch();
  /** deferredLog holds commit-only hard-state changes waiting for the next durable write. */
  deferredLog: LogBatch[] = [];
  /** inflightWrites: the async pipeline's round writes not yet durable and acted on (batch/log-pipeline.ts is its only user). */
  readonly inflightWrites = new InflightWrites();
  /** maxReplicas is placement's replica target (refreshed with store heartbeats). */
  maxReplicas = 3;
  /** halted: the storage failure that stopped this store (then closed is true too); storage-fault.ts is its only writer. */
  halted: StoreStorageError | undefined;
  readonly onHalt: (failure: StoreStorageError) => void;
  readonly diskUsage: () => DiskUsage | undefined;
  private poll: () => void = () => {};

  constructor(deps: StoreDeps) {
    this.storeId = deps.storeId;
    this.config = deps.config;
    this.log = deps.logEngine;
    this.sm = deps.sm;
    this.transport = deps.transport;
    this.pd = deps.placement;
    this.onHalt = deps.onHalt ?? (() => {});
    this.diskUsage = deps.diskUsage ?? (() => undefined);
    this.logger = deps.logger ?? silentLogger;
    const l = this.logger;
    // raft-core names peers by peer ID only ("newRaft 7 [...]"); every line
    // it logs gets the Region ID bound here, so an operator can grep one Region.
    this.raftLoggerFor = (regionId) => ({
      debug: () => {},
      info: (msg, fields) => l.info({ regionId, ...fields }, msg),
      warn: (msg, fields) => l.warn({ regionId, ...fields }, msg),
      error: (msg, fields) => l.error({ regionId, ...fields }, msg),
      isDebugEnabled: () => false,
    });
    this.now = deps.now ?? Date.now;
    this.monoNow = deps.now ?? (() => performance.now());
    this.random = newSeededRandom(deps.seed ?? (deps.storeId * 7919 + (Date.now() & 0xffff)));
    this.tombstones = new Tombstones(deps.config.maxTombstones);
  }

  /** setPoll hands in the poll round (batch/poller.ts); called once by the Store. */
  setPoll(poll: () => void): void {
    this.poll = poll;
  }

  markDirty(peer: Peer): void {
    this.dirty.add(peer);
    this.schedulePoll();
  }

  schedulePoll(): void {
    if (this.pollScheduled || this.closed) return;
    this.pollScheduled = true;
    setImmediate(() => {
      this.pollScheduled = false;
      this.poll();
    });
  }

  /**
   * send queues a message in the peer's mailbox for the next poll round;
   * false when a droppable message met a full mailbox (the caller counts or
   * answers it). Messages that must not be lost are always queued.
   */
  send(peer: Peer, msg: PeerMsg): boolean {
    if (peer.mailbox.length >= this.config.mailboxCapacity && isDroppable(msg)) return false;
    peer.mailbox.push(msg);
    this.markDirty(peer);
    return true;
  }

  /** flushPendingLog writes the queued log changes now (through writeLog). */
  flushPendingLog(): void {
    const b = this.pendingLog;
    this.pendingLog = new LogBatch();
    this.writeLog(b);
    this.metrics.logWrites++;
  }

  /**
   * writeLog is the one way a log batch reaches the log engine (one
   * transaction, one fsync). Invariant: the raft log is never purged past
   * what the KV engine has durably applied. Applies reach the KV engine
   * without fsync, because the log replays them after a crash; three log
   * changes take that replay away or stand for KV state, so a batch with
   * any of them makes the KV engine durable first: a compaction (drops
   * entries), a snapshot's meta (drops the whole log at the snapshot's
   * index; also a split's new Region, a bootstrap, a repaired log) and a
   * Region's removal (its tombstone lives in the KV engine). Without it a
   * power loss after the log write left the KV engine behind a log that
   * no longer had the entries to catch up (the power-loss run found a
   * replica whose snapshot was gone from kv.db while raft.db said it was
   * installed: docs/testing.md, "Power loss").
   */
  writeLog(batch: LogBatch): void {
    this.kvDurableBefore(batch);
    this.log.write(batch);
  }

  /**
   * writeLogAsync is writeLog on the log engine's writer thread (the async
   * write pipeline, batch/log-pipeline.ts): the KV engine is made durable
   * first, here, exactly as writeLog does, and the promise settles once the
   * batch is durable. Writes complete in the order they were issued, a
   * blocking writeLog after them included.
   */
  writeLogAsync(batch: LogBatch): Promise<void> {
    this.kvDurableBefore(batch);
    return this.log.writeAsync(batch);
  }

  /** kvDurableBefore syncs the KV engine when the batch holds a log change that needs it durable first (writeLog). */
  private kvDurableBefore(batch: LogBatch): void {
    if (this.sm.unsynced && batch.ops.some(needsDurableKv)) {
      this.sm.sync();
      this.metrics.kvSyncs++;
    }
    for (const op of batch.ops) {
      if (!needsDurableKv(op)) continue;
      assert(!this.sm.unsynced, `region ${op.regionId}: a log ${op.kind} written while the KV engine has unsynced writes`);
      const bound = op.kind === 'compact' ? op.truncatedIndex : op.kind === 'snapshot' ? op.index : 0;
      if (bound === 0) continue;
      const durable = this.sm.durableAppliedIndex(op.regionId);
      assert(bound <= durable, `region ${op.regionId}: the log ${op.kind} at index ${bound} passes the KV engine's durably applied index ${durable}`);
    }
  }
}

/** needsDurableKv: the log op drops entries or stands for KV state, so the KV engine must be durable before it is (writeLog). */
function needsDurableKv(op: LogOp): boolean {
  return op.kind === 'compact' || op.kind === 'snapshot' || op.kind === 'remove';
}

/** assert: a broken invariant is a bug; throw and never catch (TIGER_STYLE). */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`invariant violated: ${message}`);
}
