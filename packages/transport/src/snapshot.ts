// Snapshot channel frames and the receiver's chunk stream.
//
// A snapshot travels on its own WebSocket connection (channel 'snap') so a
// 64 MiB stream never sits in front of heartbeats on the raft connection.
// Flow control: the sender keeps at most `window` chunks unacknowledged; the
// receiver acknowledges a chunk when the store's handler pulls it from the
// iterator, so a slow applier slows the sender instead of buffering.

import { TransportError } from './transport';

/** SnapFrame is the first byte of every frame on a snapshot connection. */
export const SnapFrame = {
  /** client -> server: the header (a raft frame holding one RaftMessage follows). */
  Header: 0x10,
  /** client -> server: one chunk of data follows. */
  Chunk: 0x11,
  /** client -> server: no more chunks. */
  End: 0x12,
  /** server -> client: u32 LE total chunks consumed so far. */
  Ack: 0x20,
  /** server -> client: the handler finished; the snapshot is accepted. */
  Done: 0x21,
  /** server -> client: the handler failed; a UTF-8 reason follows. */
  Fail: 0x22,
} as const;

export function ackFrame(consumed: number): Buffer {
  const b = Buffer.allocUnsafe(5);
  b[0] = SnapFrame.Ack;
  b.writeUInt32LE(consumed, 1);
  return b;
}

/**
 * ChunkStream is the AsyncIterable handed to the snapshot handler. It holds
 * at most `window` chunks (the sender's window); a sender that overruns it
 * breaks the protocol and the connection is closed.
 */
export class ChunkStream implements AsyncIterable<Uint8Array> {
  private queue: Uint8Array[] = [];
  private ended = false;
  private error: Error | undefined;
  private waiter: (() => void) | undefined;
  consumed = 0;

  constructor(
    private readonly window: number,
    private readonly onConsumed: (consumed: number) => void,
  ) {}

  /** push adds a received chunk; false if the sender overran the window. */
  push(chunk: Uint8Array): boolean {
    if (this.ended || this.error) return true;
    if (this.queue.length >= this.window) return false;
    this.queue.push(chunk);
    this.wake();
    return true;
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(err: Error): void {
    if (this.ended && this.queue.length === 0) return;
    this.error = err;
    this.queue = [];
    this.wake();
  }

  /** discard drops unread chunks (the handler finished early) and counts them as consumed. */
  discard(): number {
    const n = this.queue.length;
    this.queue = [];
    this.consumed += n;
    return n;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.error) throw this.error;
      const chunk = this.queue.shift();
      if (chunk !== undefined) {
        this.consumed++;
        this.onConsumed(this.consumed);
        yield chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }
}

/** streamInterrupted is the error a handler sees when the sender goes away mid-stream. */
export function streamInterrupted(reason: string): TransportError {
  return new TransportError('Closed', `snapshot stream interrupted: ${reason}`);
}
