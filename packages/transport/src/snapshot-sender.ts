// SnapshotSender: the sending end of one snapshot stream (docs/transport.md,
// "Snapshot channel"). It dials its own 'snap' connection, sends the header,
// then the chunks with at most `window` unacknowledged, then End, and waits
// for the receiver's Done. Any failure (rejection, lost connection, no
// progress for `idleTimeoutMs`, transport close) rejects `failed`, which
// every wait races against.

import type { Logger } from '@flotilla/proto';
import { encodeRaftFrame } from './codec';
import { CloseCode } from './handshake';
import type { Conn, Connections } from './connection';
import { SnapFrame } from './snapshot';
import { TransportError, type SnapshotChunks, type SnapshotHeader, type TransportStats } from './transport';

/** SnapshotSenderContext is what a sender borrows from its WsTransport. */
export interface SnapshotSenderContext {
  readonly connections: Connections;
  readonly counters: TransportStats;
  readonly log: Logger;
  /** chunkBytes: larger chunks of the source are split (snapshotChunkBytes). */
  readonly chunkBytes: number;
  /** window: chunks in flight without acknowledgement (snapshotWindow). */
  readonly window: number;
  /** idleTimeoutMs: no acknowledgement for this long fails the stream (snapshotIdleTimeoutMs). */
  readonly idleTimeoutMs: number;
  isRunning(): boolean;
  resolve(storeId: number): Promise<string>;
}

/** SnapshotSender streams one snapshot to one store; `run` it once. */
export class SnapshotSender {
  /** failed rejects with the first failure; every wait races it, so a failure ends the stream at once. */
  private readonly failed: Promise<never>;
  private failWith!: (err: Error) => void;
  /** finished resolves when the receiver answers Done. */
  private readonly finished: Promise<void>;
  private done!: () => void;
  /** sent and acked count chunks; sendPiece waits for an Ack rather than let sent - acked pass the window. */
  private sent = 0;
  private acked = 0;
  private ackWaiter: (() => void) | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ctx: SnapshotSenderContext,
    private readonly toStoreId: number,
    private readonly header: SnapshotHeader,
  ) {
    this.failed = new Promise<never>((_, reject) => (this.failWith = reject));
    this.failed.catch(() => {});
    this.finished = new Promise<void>((resolve) => (this.done = resolve));
  }

  /** fail aborts the stream; only the first failure counts. */
  fail(err: Error): void {
    this.failWith(err);
  }

  async run(chunks: SnapshotChunks): Promise<void> {
    const toStoreId = this.toStoreId;
    const header = this.header;
    let conn: Conn | undefined;
    try {
      this.armIdle();
      const address = await Promise.race([this.ctx.resolve(toStoreId), this.failed]);
      conn = await Promise.race([
        this.ctx.connections.connect(toStoreId, address, 'snap', (c) => {
          c.onFrame = (data) => this.onFrame(data);
          c.onClosed = (code, reason) => this.fail(new TransportError('Closed', `snapshot connection to store ${toStoreId} closed (${code}${reason ? `: ${reason}` : ''})`));
        }),
        this.failed,
      ]);
      const c = conn;
      const headerFrame = encodeRaftFrame([header]);
      c.ws.send(Buffer.concat([Buffer.of(SnapFrame.Header), headerFrame]));
      const chunkLimit = this.ctx.chunkBytes;
      for await (const chunk of chunks as AsyncIterable<Uint8Array>) {
        if (!this.ctx.isRunning()) throw new TransportError('Closed', 'transport closed');
        for (let off = 0; off < chunk.length; off += chunkLimit) await this.sendPiece(c, chunk.subarray(off, Math.min(chunk.length, off + chunkLimit)));
      }
      c.ws.send(Buffer.of(SnapFrame.End));
      await Promise.race([this.finished, this.failed]);
      this.ctx.counters.snapshotsSent++;
      this.ctx.log.info({ peerStore: toStoreId, regionId: header.regionId, chunks: this.sent }, 'snapshot sent');
      this.ctx.connections.closeConn(c, 1000, 'snapshot done');
    } catch (err) {
      this.ctx.counters.snapshotsFailed++;
      this.ctx.log.warn({ peerStore: toStoreId, regionId: header.regionId, reason: (err as Error).message }, 'snapshot send failed');
      if (conn) this.ctx.connections.closeConn(conn, CloseCode.GoingAway, 'snapshot aborted');
      // Transport failures are TransportErrors already; an error of the chunk source is the caller's own and passes through.
      throw err;
    } finally {
      clearTimeout(this.idleTimer);
    }
  }

  private async sendPiece(c: Conn, piece: Uint8Array): Promise<void> {
    while (this.sent - this.acked >= this.ctx.window) {
      await Promise.race([new Promise<void>((resolve) => (this.ackWaiter = resolve)), this.failed]);
    }
    const frame = Buffer.allocUnsafe(piece.length + 1);
    frame[0] = SnapFrame.Chunk;
    frame.set(piece, 1);
    c.ws.send(frame);
    this.sent++;
    this.ctx.counters.snapshotChunksSent++;
    this.ctx.counters.snapshotBytesSent += piece.length;
  }

  private onFrame(data: Buffer): void {
    const kind = data[0];
    if (kind === SnapFrame.Ack && data.length === 5) {
      this.acked = data.readUInt32LE(1);
      this.armIdle();
      const w = this.ackWaiter;
      this.ackWaiter = undefined;
      w?.();
    } else if (kind === SnapFrame.Done) {
      this.done();
    } else if (kind === SnapFrame.Fail) {
      this.fail(new TransportError('Rejected', `store ${this.toStoreId} rejected the snapshot: ${data.subarray(1).toString('utf8')}`));
    } else {
      this.fail(new TransportError('Protocol', `unexpected frame ${kind} on snapshot connection`));
    }
  }

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.fail(new TransportError('Timeout', `snapshot to store ${this.toStoreId}: no progress for ${this.ctx.idleTimeoutMs} ms`)), this.ctx.idleTimeoutMs);
  }
}
