import { dirname } from 'node:path';
import type { ClientRequest, Region } from '@flotilla/proto';
import { LogBatch } from '@flotilla/log-engine';
import { bootstrapRegion, removeInitialRegion, writeInitialRegion } from './bootstrap';
import type { StoreConfig } from './config';
import { assert, StoreContext, type StoreDeps } from './context';
import type { StateMachine } from './engines';
import { viewPeer, type PeerView } from './inspect';
import type { StoreMetrics } from './metrics';
import type { Peer } from './raft/peer';
import type { Callback } from './raft/proposal';
import { poll } from './batch/poller';
import { startTicks } from './batch/ticks';
import { preSplit } from './operation/command/admin/split';
import { err } from './operation/command/command';
import { failPending } from './operation/command/propose';
import { failMailbox, recover } from './operation/life';
import { storeHeartbeat } from './operation/pd';
import { onRaftMessages, onSnapshot, onStoreUnreachable } from './router/router';
import { asStoreStorageError, guardStorage, onStorageError, type StoreStorageError } from './storage-fault';
import { watchHub, type WatchHub } from './watch/hub';

export type { StoreDeps, StoreLogger } from './context';

/**
 * Store is the Multi-Raft host: it owns every Region peer on this node,
 * one log engine, one KV engine and one transport, and drives them all from
 * one poll loop. Work arrives as raft messages, client commands and ticks;
 * each is queued in a peer's mailbox (router/message.ts) and handled in the
 * next poll round with all other dirty peers (one log write, one transport
 * flush, one KV transaction). This class is the public face; the work lives
 * in operation/, fsm/, router/ and batch/, on a shared StoreContext.
 */
export class Store {
  private readonly ctx: StoreContext;
  private stopTicks: (() => void) | undefined;

  constructor(deps: StoreDeps) {
    this.ctx = new StoreContext(deps);
    this.ctx.setPoll(() => poll(this.ctx));
  }

  get storeId(): number {
    return this.ctx.storeId;
  }
  get config(): StoreConfig {
    return this.ctx.config;
  }
  get metrics(): StoreMetrics {
    return this.ctx.metrics;
  }
  /** peers is the live Region peer map (tests and tools; checkers use inspect()). */
  get peers(): ReadonlyMap<number, Peer> {
    return this.ctx.peers;
  }

  /** stateMachine exposes the KV engine read-only for status, tests, tools and checkers (snapshotRangeData: both keyspaces of a range, e.g. to compare replicas). */
  get stateMachine(): Pick<StateMachine, 'get' | 'scan' | 'applyState' | 'snapshotGet' | 'snapshotScan' | 'snapshotRangeData'> {
    return this.ctx.sm;
  }

  /** watch is the store's change-feed hub (watch/hub.ts; served at /watch by server/watch-server.ts). */
  get watch(): WatchHub {
    return watchHub(this.ctx);
  }

  /** bootstrapRegion is Region 1 (whole key space) with this store's single peer. */
  static bootstrapRegion(storeId: number, regionId: number, peerId: number): Region {
    return bootstrapRegion(storeId, regionId, peerId);
  }
  writeInitialRegion(region: Region): void {
    this.typeStorageErrors(() => writeInitialRegion(this.ctx, region));
  }
  removeInitialRegion(regionId: number): void {
    removeInitialRegion(this.ctx, regionId);
  }
  /** recover recreates every Region peer from the KV engine's region states (a storage failure is a StoreStorageError). */
  recover(): void {
    this.typeStorageErrors(() => recover(this.ctx));
  }

  /** typeStorageErrors runs a start-up step; a storage failure in it becomes a StoreStorageError (the CLI's clean exit), anything else passes. */
  private typeStorageErrors(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      throw asStoreStorageError(e, this.ctx.storeId, dirname(this.ctx.log.options.path), 'start') ?? e;
    }
  }

  start(): void {
    const ctx = this.ctx;
    // Routing may write (a stale peer destroyed, leftover raft state
    // dropped): a storage failure there stops the store like one in a round.
    ctx.transport.onMessages((msgs) => guardStorage(ctx, () => onRaftMessages(ctx, msgs)));
    ctx.transport.onUnreachable((storeId) => guardStorage(ctx, () => onStoreUnreachable(ctx, storeId)));
    ctx.transport.onSnapshot((header, chunks) => onSnapshot(ctx, header, chunks).catch((e: unknown) => onStorageError(ctx, e)));
    this.stopTicks = startTicks(ctx);
    void storeHeartbeat(ctx);
    // Single-voter Regions (a fresh bootstrap) elect themselves at once.
    for (const p of ctx.peers.values()) {
      if (p.region.peers.filter((x) => x.role === 'voter').length === 1 && p.meta().role === 'voter') p.raw.campaign();
      ctx.markDirty(p);
    }
  }

  async close(): Promise<void> {
    const ctx = this.ctx;
    if (ctx.closed) return;
    ctx.closed = true;
    this.stopTicks?.();
    watchHub(ctx).close();
    for (const p of ctx.peers.values()) {
      failPending(p, err.unavailable('store is shutting down'));
      failMailbox(p.mailbox.splice(0), err.unavailable('store is shutting down'));
    }
    const last = new LogBatch();
    for (const d of [...ctx.deferredLog, ctx.pendingLog]) last.ops.push(...d.ops);
    if (last.ops.length === 0) return;
    // Commit indexes and queued compactions only: a storage failure here
    // loses nothing acknowledged, so it is reported (onHalt), not thrown.
    guardStorage(ctx, () => ctx.writeLog(last));
  }

  /** halted: the storage failure that stopped this store, if one did (storage-fault.ts). */
  get halted(): StoreStorageError | undefined {
    return this.ctx.halted;
  }

  /** poll runs one poll round now (tests and the simulation drive it directly). */
  poll(): void {
    poll(this.ctx);
  }

  /**
   * handleClientRequest checks that this store hosts the Region and queues
   * the request in its peer's mailbox; leadership and the epoch are checked
   * when the peer handles it (fsm/peer.ts).
   */
  handleClientRequest(req: ClientRequest, cb: Callback): void {
    const ctx = this.ctx;
    if (ctx.closed) return cb(err.unavailable(ctx.halted?.detail ?? 'store is shutting down'));
    const to = req.header.peer;
    if (to && to.storeId !== ctx.storeId) return cb({ ok: false, error: { type: 'StoreNotMatch', requestStoreId: to.storeId, actualStoreId: ctx.storeId } });
    const peer = ctx.peers.get(req.header.regionId);
    if (!peer || !peer.initialized) return cb(err.regionNotFound(req.header.regionId));
    if (peer.mailbox.length >= ctx.config.mailboxCapacity) return cb(err.busy(`region ${peer.regionId} has a full mailbox`));
    ctx.send(peer, { kind: 'command', req, cb });
  }

  /** preSplit splits the bootstrap Region at the given keys (TiKV's pre-split); see operation/command/admin/split.ts. */
  preSplit(keys: Uint8Array[], timeoutMs = 60_000): Promise<void> {
    return preSplit(this.ctx, keys, timeoutMs);
  }

  /** inspect returns a read-only view of every peer on this store (for checkers, tools and tests). */
  inspect(): PeerView[] {
    return [...this.ctx.peers.values()].map(viewPeer);
  }

  /** inspectRegion returns the view of this store's peer of one Region, if it has one. */
  inspectRegion(regionId: number): PeerView | undefined {
    const p = this.ctx.peers.get(regionId);
    return p ? viewPeer(p) : undefined;
  }

  status(): object {
    const ctx = this.ctx;
    let leaders = 0;
    let hibernated = 0;
    for (const p of ctx.peers.values()) {
      if (p.isLeader) leaders++;
      if (p.hibernating) hibernated++;
    }
    assert(hibernated === ctx.hibernated.size, `hibernated peers ${hibernated} but the store's set holds ${ctx.hibernated.size}`);
    return { storeId: ctx.storeId, regions: ctx.peers.size, leaders, hibernated, transport: ctx.transport.stats() };
  }
}
