// Link: raft traffic to one remote store (etcd rafthttp's peer). It holds
// the messages queued for the next flush(), the one raft connection they go
// out on (chosen by the tie-break both ends apply), and turns the queue into
// frames no bigger than maxFrameBytes. Dialing, backoff and unreachable
// reports stay with WsTransport, which owns the table of links.

import { WebSocket } from 'ws';
import type { Logger, RaftMessage } from '@flotilla/proto';
import { FRAME_HEADER_BYTES, type FrameWriter } from './codec';
import type { Conn, Connections } from './connection';
import { CloseCode } from './handshake';
import type { TransportStats } from './transport';

/** DropReason names the TransportStats counter a dropped message is added to. */
export type DropReason = 'queue' | 'unreachable' | 'tooLarge' | 'fault';

/** LinkContext is what every Link borrows from its WsTransport. */
export interface LinkContext {
  /** storeId is this store's ID, which the tie-break compares with the link's. */
  readonly storeId: number;
  readonly conns: Connections;
  readonly counters: TransportStats;
  readonly log: Logger;
  /** writer is shared by all links: each frame is built and handed to its socket in one go. */
  readonly writer: FrameWriter;
  readonly maxFrameBytes: number;
  readonly maxSocketBufferedBytes: number;
  countDrop(n: number, reason: DropReason): void;
}

/** Link is the state of raft traffic to one remote store. */
export class Link {
  conn: Conn | undefined;
  dialing = false;
  pending: RaftMessage[] = [];
  pendingBytes = 0;
  attempts = 0;
  backoffUntil = 0;
  everConnected = false;
  lastUnreachableAt = -Infinity;
  waitingForDrain = false;
  constructor(
    private readonly ctx: LinkContext,
    readonly storeId: number,
  ) {}

  /** dropPending empties the queue and returns how many messages it held (for countDrop). */
  dropPending(): number {
    const n = this.pending.length;
    this.pending = [];
    this.pendingBytes = 0;
    return n;
  }

  /**
   * adopt makes `conn` the link's connection, or closes it if the
   * link already has the tie-break winner: the connection dialed by the
   * lower store ID. Both ends apply the same rule, so they agree. A store
   * dials only when it has no connection, so a new dial from the same side
   * as the current connection means that side saw the old one die (say, it
   * restarted while we missed the FIN): the new one replaces it.
   */
  adopt(conn: Conn): void {
    const winner = Math.min(this.ctx.storeId, this.storeId);
    const current = this.conn;
    if (current && !current.closed) {
      if (conn.dialer === current.dialer || (conn.dialer === winner && current.dialer !== winner)) {
        this.conn = conn;
        this.ctx.log.debug({ peerStore: this.storeId, kept: conn.id, closed: current.id }, 'second connection to a store: keeping the newer or lower store ID dial');
        this.ctx.conns.closeConn(current, CloseCode.Duplicate, 'duplicate connection');
      } else {
        // Frames already in flight on it are still received until it closes.
        this.ctx.conns.closeConn(conn, CloseCode.Duplicate, 'duplicate connection');
        return;
      }
    } else {
      this.conn = conn;
      if (this.everConnected) this.ctx.counters.reconnects++;
    }
    this.everConnected = true;
    this.attempts = 0;
    this.backoffUntil = 0;
    this.ctx.log.info({ peerStore: this.storeId, remote: conn.remote, dialer: conn.dialer }, 'raft connection established');
    if (this.pending.length > 0) this.writeFrames();
  }

  /** writeFrames hands the whole queue to the link's connection, split into frames within maxFrameBytes. */
  writeFrames(): void {
    const conn = this.conn!;
    const ws = conn.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > this.ctx.maxSocketBufferedBytes) {
      // The kernel is not draining fast enough: keep messages queued (bounded)
      // and retry when the last frame handed to the socket is written.
      this.waitingForDrain = true;
      return;
    }
    const msgs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const w = this.ctx.writer;
    const limit = this.ctx.maxFrameBytes;
    w.begin();
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      const before = w.pos;
      const countBefore = w.messageCount;
      w.write(m);
      if (w.pos <= limit) continue;
      if (countBefore === 0) {
        // This message alone exceeds the limit: it can never be sent.
        w.rewind(FRAME_HEADER_BYTES, 0);
        this.ctx.countDrop(1, 'tooLarge');
        this.ctx.log.warn({ peerStore: this.storeId, regionId: m.regionId, msgType: m.message.msgType, limit }, 'dropping a raft message larger than the frame limit');
        continue;
      }
      w.rewind(before, countBefore);
      this.emitFrame(conn, w.take(), countBefore);
      w.begin();
      i--; // write this message again into the fresh frame
    }
    if (w.messageCount > 0) this.emitFrame(conn, w.take(), w.messageCount);
  }

  private emitFrame(conn: Conn, frame: Buffer, count: number): void {
    const counters = this.ctx.counters;
    counters.framesSent++;
    counters.messagesSent += count;
    counters.bytesSent += frame.length;
    conn.ws.send(frame, { binary: true, compress: false }, () => {
      // Written to the kernel (or failed): the socket no longer needs the bytes.
      this.ctx.writer.release(frame);
      if (this.waitingForDrain && this.conn === conn && conn.ws.bufferedAmount <= this.ctx.maxSocketBufferedBytes) {
        this.waitingForDrain = false;
        if (this.pending.length > 0) this.writeFrames();
      }
    });
  }
}

/** estimateBytes is what a queued message counts against maxQueuedBytes: a cheap estimate, not its encoded size. */
export function estimateBytes(m: RaftMessage): number {
  let n = 64 + m.startKey.length + m.endKey.length;
  const msg = m.message;
  for (let i = 0; i < msg.entries.length; i++) {
    const e = msg.entries[i]!;
    n += 24 + e.data.length + (e.context?.length ?? 0);
  }
  if (msg.context) n += msg.context.length;
  if (msg.snapshot) n += 256 + msg.snapshot.data.length;
  return n;
}
