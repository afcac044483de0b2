// SnapshotReceiver: the receiving end of one snapshot stream (docs/transport.md,
// "Snapshot channel"), on an inbound 'snap' connection whose handshake is done.
// The header starts the store's snapshot handler with a ChunkStream; chunks
// are acknowledged as the handler pulls them, so a slow applier slows the
// sender. Done (or Fail) goes back once both the handler and the stream have
// finished. A stream with no frame for `idleTimeoutMs` is a protocol error.

import type { Logger } from '@flotilla/proto';
import { decodeRaftFrame } from './codec';
import type { Conn, Connections } from './connection';
import { ackFrame, ChunkStream, SnapFrame, streamInterrupted } from './snapshot';
import type { SnapshotHandler, SnapshotHeader, TransportStats } from './transport';

/** SnapshotReceiverContext is what a receiver borrows from its WsTransport. */
export interface SnapshotReceiverContext {
  readonly connections: Connections;
  readonly counters: TransportStats;
  readonly log: Logger;
  /** window: chunks the sender may have in flight (snapshotWindow); the stream holds no more. */
  readonly window: number;
  /** idleTimeoutMs: no frame for this long fails the stream (snapshotIdleTimeoutMs). */
  readonly idleTimeoutMs: number;
  /** handler is read when the header arrives: the store installs it after the transport starts. */
  handler(): SnapshotHandler | undefined;
}

/** SnapshotReceiver takes over `conn` (its onFrame and onClosed) for the rest of its life. */
export class SnapshotReceiver {
  private readonly from: number;
  /** stream exists once the header arrived. */
  private stream: ChunkStream | undefined;
  /** finished: `onRelease` ran (the inbound snapshot slot is free again). */
  private finished = false;
  /** handlerDone: the store's handler settled; handlerError says how it failed. */
  private handlerDone = false;
  private handlerError: string | undefined;
  private idle: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: SnapshotReceiverContext,
    private readonly conn: Conn,
    /** onRelease runs once, when the connection closes. */
    private readonly onRelease: () => void,
  ) {
    this.from = conn.remoteStoreId;
    this.armIdle();
    conn.onClosed = (code, reason) => {
      clearTimeout(this.idle);
      this.stream?.fail(streamInterrupted(`connection closed (${code}${reason ? `: ${reason}` : ''})`));
      this.release();
    };
    conn.onFrame = (data) => this.onFrame(data);
  }

  private release(): void {
    if (this.finished) return;
    this.finished = true;
    this.onRelease();
  }

  private sendDone(): void {
    const conn = this.conn;
    if (conn.closed) return;
    if (this.handlerError !== undefined) conn.ws.send(Buffer.concat([Buffer.of(SnapFrame.Fail), Buffer.from(this.handlerError.slice(0, 1000), 'utf8')]));
    else conn.ws.send(Buffer.of(SnapFrame.Done));
  }

  private armIdle(): void {
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      if (this.handlerDone && this.stream?.isEnded) return;
      this.ctx.connections.protocolError(this.conn, `snapshot from store ${this.from}: no frame for ${this.ctx.idleTimeoutMs} ms`);
    }, this.ctx.idleTimeoutMs);
    this.idle.unref();
  }

  private onFrame(data: Buffer): void {
    const conn = this.conn;
    const kind = data[0];
    this.armIdle();
    const stream = this.stream;
    if (!stream) return this.start(data);
    if (kind === SnapFrame.Chunk) {
      this.ctx.counters.snapshotChunksReceived++;
      this.ctx.counters.snapshotBytesReceived += data.length - 1;
      if (this.handlerDone) {
        // The handler finished early; keep the sender moving until its End.
        if (!conn.closed) conn.ws.send(ackFrame(++stream.consumed));
        return;
      }
      if (!stream.push(data.subarray(1))) this.ctx.connections.protocolError(conn, `sender overran the window of ${this.ctx.window} chunks`);
      return;
    }
    if (kind === SnapFrame.End) {
      stream.end();
      if (this.handlerDone && this.handlerError === undefined) {
        this.ctx.counters.snapshotsReceived++;
        this.sendDone();
      }
      return;
    }
    this.ctx.connections.protocolError(conn, `unexpected frame ${kind} on snapshot connection`);
  }

  /** start handles the first frame, which must be the header, and hands the stream to the store's handler. */
  private start(data: Buffer): void {
    const conn = this.conn;
    if (data[0] !== SnapFrame.Header) return this.ctx.connections.protocolError(conn, 'snapshot stream must start with a header');
    let header: SnapshotHeader;
    try {
      const msgs = decodeRaftFrame(data.subarray(1));
      if (msgs.length !== 1) throw new Error(`header frame holds ${msgs.length} messages`);
      header = msgs[0]!;
    } catch (err) {
      return this.ctx.connections.protocolError(conn, `bad snapshot header: ${(err as Error).message}`);
    }
    this.stream = new ChunkStream(this.ctx.window, (consumed) => {
      if (!conn.closed) conn.ws.send(ackFrame(consumed));
    });
    const handler = this.ctx.handler();
    if (!handler) {
      this.handlerError = 'store accepts no snapshots';
      this.handlerDone = true;
      this.ctx.counters.snapshotsFailed++;
      this.sendDone();
      return;
    }
    const s = this.stream;
    handler(header, s, this.from).then(
      () => this.handlerResolved(s),
      (err: unknown) => this.handlerFailed(header, err),
    );
  }

  private handlerResolved(s: ChunkStream): void {
    this.handlerDone = true;
    // Chunks the handler left unread are acknowledged so the sender reaches its End.
    const skipped = s.discard();
    if (skipped > 0 && !this.conn.closed) this.conn.ws.send(ackFrame(s.consumed));
    if (s.isEnded) {
      this.ctx.counters.snapshotsReceived++;
      this.sendDone();
    }
  }

  private handlerFailed(header: SnapshotHeader, err: unknown): void {
    this.handlerDone = true;
    this.handlerError = (err as Error)?.message ?? String(err);
    this.ctx.counters.snapshotsFailed++;
    this.ctx.log.warn({ peerStore: this.from, regionId: header.regionId, reason: this.handlerError }, 'snapshot handler failed');
    this.sendDone();
  }
}
