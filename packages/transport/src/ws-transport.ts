// WsTransport: store-to-store raft messaging over WebSocket.
//
// One listener per store; one authenticated connection per store pair for
// raft traffic (either side may dial, lazily, on the first send; when both
// dial at once the connection dialed by the lower store ID wins on both
// sides); one short-lived connection per snapshot. Messages queue per
// destination store until flush(), which writes them as one frame.
// Everything is bounded: queue messages and bytes, frame size, socket
// backlog, handshake time, concurrent inbound snapshots.

import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import type { Logger, RaftMessage } from '@flotilla/proto';
import { decodeRaftFrame, FrameWriter } from './codec';
import { Connections, type Conn } from './connection';
import { CloseCode, HandshakeError, type Channel } from './handshake';
import { estimateBytes, Link, type DropReason, type LinkContext } from './link';
import { SnapshotReceiver, type SnapshotReceiverContext } from './snapshot-receiver';
import { SnapshotSender, type SnapshotSenderContext } from './snapshot-sender';
import { resolveOptions, type AddressResolver, type TlsMaterial, type WsSettings, type WsTransportOptions } from './ws-options';
import {
  emptyStats,
  TransportError,
  type MessagesHandler,
  type SnapshotChunks,
  type SnapshotHandler,
  type SnapshotHeader,
  type Transport,
  type TransportStats,
  type UnreachableHandler,
} from './transport';

export type { AddressResolver, TlsOptions, WsTransportOptions } from './ws-options';

/** WsFaults is the chaos-test hook (only when options.faults.enabled). */
export interface WsFaults {
  /** blockStore drops everything to and from a store and closes its connections. */
  blockStore(storeId: number): void;
  unblock(storeId: number): void;
  unblockAll(): void;
  isBlocked(storeId: number): boolean;
}

/** DestinationBacklog describes what waits for one destination store. */
export interface DestinationBacklog {
  queuedMessages: number;
  queuedBytes: number;
  socketBufferedBytes: number;
  connected: boolean;
}

export class WsTransport implements Transport {
  readonly storeId: number;
  /** faults is defined only when fault injection is enabled in the options. */
  readonly faults: WsFaults | undefined;
  private readonly log: Logger;
  private readonly opts: WsSettings;
  private readonly tls: TlsMaterial | undefined;
  private readonly resolveAddress: AddressResolver;
  private readonly random: () => number;
  private boundAddress: AddressInfo | undefined;
  private readonly links = new Map<number, Link>();
  private readonly dirty = new Set<Link>();
  private readonly conns: Connections;
  private readonly blocked = new Set<number>();
  private readonly writer = new FrameWriter();
  private readonly counters: TransportStats = emptyStats();
  private messagesHandler: MessagesHandler | undefined;
  private unreachableHandler: UnreachableHandler | undefined;
  private snapshotHandler: SnapshotHandler | undefined;
  private inboundSnapshots = 0;
  private readonly outboundSnapshots = new Set<SnapshotSender>();
  private readonly snapshotContext: SnapshotSenderContext & SnapshotReceiverContext;
  private readonly linkContext: LinkContext;
  private state: 'new' | 'running' | 'closed' = 'new';
  private keepaliveTimer: NodeJS.Timeout | undefined;

  constructor(options: WsTransportOptions) {
    const resolved = resolveOptions(options);
    this.storeId = resolved.storeId;
    this.resolveAddress = resolved.resolveAddress;
    this.random = resolved.random;
    this.log = resolved.log;
    this.opts = resolved.settings;
    this.tls = resolved.tls;
    this.faults = resolved.faultsEnabled ? this.makeFaults() : undefined;
    const connectionOptions = {
      storeId: this.storeId,
      clusterId: resolved.clusterId,
      secret: resolved.secret,
      handshakeTimeoutMs: this.opts.handshakeTimeoutMs,
      keepaliveIntervalMs: this.opts.keepaliveIntervalMs,
      maxPendingHandshakes: this.opts.maxPendingHandshakes,
      maxInboundConnections: this.opts.maxInboundConnections,
      maxPayload: this.maxPayload(),
      tls: this.tls,
    };
    this.conns = new Connections(connectionOptions, this.counters, this.log, {
      isRunning: () => this.state === 'running',
      admit: (from, channel) => this.admit(from, channel),
      accepted: (conn) => this.accepted(conn),
    });
    this.linkContext = {
      storeId: this.storeId,
      conns: this.conns,
      counters: this.counters,
      log: this.log,
      writer: this.writer,
      maxFrameBytes: this.opts.maxFrameBytes,
      maxSocketBufferedBytes: this.opts.maxSocketBufferedBytes,
      countDrop: (n, reason) => this.countDrop(n, reason),
    };
    this.snapshotContext = {
      connections: this.conns,
      counters: this.counters,
      log: this.log,
      chunkBytes: this.opts.snapshotChunkBytes,
      window: this.opts.snapshotWindow,
      idleTimeoutMs: this.opts.snapshotIdleTimeoutMs,
      isRunning: () => this.state === 'running',
      resolve: (storeId) => this.resolve(storeId),
      handler: () => this.snapshotHandler,
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /** address is the bound "host:port" (valid after start; port 0 resolves to the real port). */
  get address(): string {
    if (!this.boundAddress) throw new Error('transport not started');
    const a = this.boundAddress;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  get port(): number {
    if (!this.boundAddress) throw new Error('transport not started');
    return this.boundAddress.port;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new TransportError('Closed', `transport cannot start in state ${this.state}`);
    this.boundAddress = await this.conns.listen(this.opts.host, this.opts.port);
    this.state = 'running';
    if (this.opts.keepaliveIntervalMs > 0) {
      this.keepaliveTimer = setInterval(() => this.conns.keepalive(), this.opts.keepaliveIntervalMs);
      this.keepaliveTimer.unref();
    }
    this.log.info({ address: this.address, tls: this.tls !== undefined }, 'transport listening');
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wasRunning = this.state === 'running';
    this.state = 'closed';
    clearInterval(this.keepaliveTimer);
    for (const link of this.links.values()) {
      this.countDrop(link.dropPending(), 'unreachable');
    }
    this.dirty.clear();
    for (const s of this.outboundSnapshots) s.fail(new TransportError('Closed', 'transport closed'));
    const closing: Promise<void>[] = [];
    for (const c of this.conns) {
      closing.push(
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          this.conns.closeConn(c, CloseCode.GoingAway, 'store shutting down', 200);
        }),
      );
    }
    await Promise.all(closing);
    if (wasRunning) await this.conns.closeListener();
    this.log.info({}, 'transport closed');
  }

  // ---------------------------------------------------------------- sending

  send(toStoreId: number, msg: RaftMessage): boolean {
    if (this.state !== 'running') {
      this.countDrop(1, 'unreachable');
      return false;
    }
    if (this.blocked.has(toStoreId)) {
      this.countDrop(1, 'fault');
      return false;
    }
    const link = this.link(toStoreId);
    if (!link.conn && !link.dialing && performance.now() < link.backoffUntil) {
      this.countDrop(1, 'unreachable');
      this.reportUnreachable(link);
      return false;
    }
    const bytes = estimateBytes(msg);
    if (link.pending.length >= this.opts.maxQueuedMessages || link.pendingBytes + bytes > this.opts.maxQueuedBytes) {
      this.countDrop(1, 'queue');
      this.reportUnreachable(link);
      return false;
    }
    link.pending.push(msg);
    link.pendingBytes += bytes;
    this.dirty.add(link);
    if (!link.conn && !link.dialing) void this.dial(link);
    return true;
  }

  flush(): void {
    if (this.dirty.size === 0) return;
    for (const link of this.dirty) {
      if (link.conn) link.writeFrames();
    }
    // Links still holding messages (connecting, or socket backlog) stay dirty.
    for (const link of this.dirty) if (link.pending.length === 0) this.dirty.delete(link);
  }

  /** connections lists the open raft connections (diagnostics and tests). */
  connections(): { storeId: number; dialer: number; remote: string }[] {
    const out: { storeId: number; dialer: number; remote: string }[] = [];
    for (const c of this.conns) if (c.open && !c.closed && c.channel === 'raft') out.push({ storeId: c.remoteStoreId, dialer: c.dialer, remote: c.remote });
    return out;
  }

  /** backlog tells what waits for one destination (for ServerIsBusy decisions and benchmarks). */
  backlog(storeId: number): DestinationBacklog {
    const link = this.links.get(storeId);
    return {
      queuedMessages: link?.pending.length ?? 0,
      queuedBytes: link?.pendingBytes ?? 0,
      socketBufferedBytes: link?.conn?.ws.bufferedAmount ?? 0,
      connected: link?.conn !== undefined,
    };
  }

  // ---------------------------------------------------------------- links

  private link(storeId: number): Link {
    let link = this.links.get(storeId);
    if (!link) {
      link = new Link(this.linkContext, storeId);
      this.links.set(storeId, link);
    }
    return link;
  }

  private async dial(link: Link): Promise<void> {
    link.dialing = true;
    let failure: string | undefined;
    try {
      const address = await this.resolve(link.storeId);
      await this.conns.connect(link.storeId, address, 'raft', (conn) => {
        if (this.state !== 'running') this.conns.closeConn(conn, CloseCode.GoingAway, 'store shutting down');
        else this.adoptRaftConn(link, conn);
      });
    } catch (err) {
      failure = (err as Error).message;
    } finally {
      link.dialing = false;
    }
    if (failure === undefined || this.state !== 'running') return;
    if (link.conn) return; // the peer's dial won meanwhile
    this.counters.dialFailures++;
    link.attempts++;
    const backoff = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectBaseMs * 2 ** Math.min(link.attempts - 1, 20));
    const jittered = backoff * (0.5 + 0.5 * this.random());
    link.backoffUntil = performance.now() + jittered;
    this.log.warn({ peerStore: link.storeId, attempt: link.attempts, backoffMs: Math.round(jittered), reason: failure }, 'dial failed');
    this.countDrop(link.dropPending(), 'unreachable');
    this.dirty.delete(link);
    this.reportUnreachable(link);
  }

  private async resolve(storeId: number): Promise<string> {
    let address: string | undefined;
    try {
      address = await this.resolveAddress(storeId);
    } catch (err) {
      throw new TransportError('Unreachable', `address of store ${storeId} did not resolve: ${(err as Error).message}`, err);
    }
    if (!address) throw new TransportError('Unreachable', `store ${storeId} has no known address`);
    return address;
  }

  // ---------------------------------------------------------------- accepting

  /** admit refuses an authenticated inbound connection that this store will not serve now. */
  private admit(from: number, channel: Channel): void {
    if (this.blocked.has(from)) throw new HandshakeError(`store ${from} is blocked by fault injection`, CloseCode.Blocked);
    if (channel === 'snap' && this.inboundSnapshots >= this.opts.maxInboundSnapshots) {
      throw new HandshakeError(`too many inbound snapshots (${this.inboundSnapshots})`, CloseCode.Busy);
    }
  }

  /** accepted takes an inbound connection whose handshake completed: a raft link's or a snapshot's. */
  private accepted(conn: Conn): void {
    if (conn.channel === 'raft') {
      this.adoptRaftConn(this.link(conn.remoteStoreId), conn);
    } else {
      this.receiveSnapshot(conn);
    }
  }

  // ---------------------------------------------------------------- raft connections

  /** adoptRaftConn routes a raft connection's frames and close here, then offers it to the link (Link.adopt applies the tie-break). */
  private adoptRaftConn(link: Link, conn: Conn): void {
    this.counters.connectionsOpened++;
    conn.onFrame = (data) => this.receiveRaftFrame(conn, data);
    conn.onClosed = (code, reason) => this.onRaftConnClosed(link, conn, code, reason);
    link.adopt(conn);
  }

  private onRaftConnClosed(link: Link, conn: Conn, code: number, reason: string): void {
    if (link.conn !== conn) return;
    link.conn = undefined;
    link.waitingForDrain = false;
    if (this.state !== 'running') return;
    if (code === CloseCode.Duplicate) {
      // The peer kept the other connection; our view catches up when its handshake completes here.
      if (link.pending.length > 0 && !link.dialing) void this.dial(link);
      return;
    }
    this.log.info({ peerStore: link.storeId, code, reason }, 'raft connection lost');
    this.countDrop(link.dropPending(), 'unreachable');
    this.dirty.delete(link);
    this.reportUnreachable(link);
  }

  private receiveRaftFrame(conn: Conn, data: Buffer): void {
    const from = conn.remoteStoreId;
    if (this.state !== 'running') return;
    if (data.length > this.opts.maxFrameBytes) {
      // ws's maxPayload is per server (it must admit snapshot chunks); raft frames have their own limit.
      this.conns.protocolError(conn, `raft frame of ${data.length} bytes exceeds the limit of ${this.opts.maxFrameBytes}`);
      return;
    }
    let msgs: RaftMessage[];
    try {
      msgs = decodeRaftFrame(data);
    } catch (err) {
      this.conns.protocolError(conn, (err as Error).message);
      return;
    }
    if (this.blocked.has(from)) {
      this.counters.droppedFault += msgs.length;
      this.counters.messagesDropped += msgs.length;
      return;
    }
    this.counters.framesReceived++;
    this.counters.messagesReceived += msgs.length;
    this.counters.bytesReceived += data.length;
    if (msgs.length > 0) this.messagesHandler?.(msgs, from);
  }

  // ---------------------------------------------------------------- snapshots

  async sendSnapshot(toStoreId: number, header: SnapshotHeader, chunks: SnapshotChunks): Promise<void> {
    if (this.state !== 'running') throw new TransportError('Closed', 'transport is not running');
    if (this.blocked.has(toStoreId)) {
      this.counters.snapshotsFailed++;
      throw new TransportError('Blocked', `store ${toStoreId} is blocked by fault injection`);
    }
    const sender = new SnapshotSender(this.snapshotContext, toStoreId, header);
    this.outboundSnapshots.add(sender);
    try {
      await sender.run(chunks);
    } finally {
      this.outboundSnapshots.delete(sender);
    }
  }

  private receiveSnapshot(conn: Conn): void {
    this.inboundSnapshots++;
    new SnapshotReceiver(this.snapshotContext, conn, () => this.inboundSnapshots--);
  }

  // ---------------------------------------------------------------- misc

  onMessages(handler: MessagesHandler): void {
    this.messagesHandler = handler;
  }

  onUnreachable(handler: UnreachableHandler): void {
    this.unreachableHandler = handler;
  }

  onSnapshot(handler: SnapshotHandler): void {
    this.snapshotHandler = handler;
  }

  stats(): TransportStats {
    let queued = 0;
    let queuedBytes = 0;
    for (const link of this.links.values()) {
      queued += link.pending.length;
      queuedBytes += link.pendingBytes;
    }
    return { ...this.counters, queuedMessages: queued, queuedBytes };
  }

  private maxPayload(): number {
    return Math.max(this.opts.maxFrameBytes, this.opts.snapshotChunkBytes + 64, 64 * 1024);
  }

  private countDrop(n: number, reason: DropReason): void {
    if (n === 0) return;
    this.counters.messagesDropped += n;
    if (reason === 'queue') this.counters.droppedQueueFull += n;
    else if (reason === 'unreachable') this.counters.droppedUnreachable += n;
    else if (reason === 'tooLarge') this.counters.droppedTooLarge += n;
    else this.counters.droppedFault += n;
  }

  private reportUnreachable(link: Link): void {
    const now = performance.now();
    if (now - link.lastUnreachableAt < this.opts.unreachableReportIntervalMs) return;
    link.lastUnreachableAt = now;
    this.counters.unreachableReports++;
    this.unreachableHandler?.(link.storeId);
  }

  private makeFaults(): WsFaults {
    return {
      blockStore: (storeId) => {
        this.blocked.add(storeId);
        const link = this.links.get(storeId);
        if (link) {
          this.countDrop(link.dropPending(), 'fault');
        }
        for (const c of this.conns) {
          if (c.remoteStoreId !== storeId || !c.open) continue;
          c.discardInbound = true;
          this.conns.closeConn(c, CloseCode.Blocked, 'blocked by fault injection');
        }
        this.log.warn({ peerStore: storeId }, 'fault injection: store blocked');
      },
      unblock: (storeId) => {
        this.blocked.delete(storeId);
        this.log.warn({ peerStore: storeId }, 'fault injection: store unblocked');
      },
      unblockAll: () => this.blocked.clear(),
      isBlocked: (storeId) => this.blocked.has(storeId),
    };
  }
}
