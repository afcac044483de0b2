import type { ReadOnlyOption } from './config';
import type { Message } from './types';

/** ReadState is a served ReadIndex request: reads for requestCtx are linearizable once applied >= index. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

/** ReadIndexStatus tracks one pending safe read: the commit index at request time and the acks so far. */
export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Map<number, boolean>;
}

/** MAX_PENDING_READ_INDEX bounds the queue of pending safe reads on a leader. */
export const MAX_PENDING_READ_INDEX = 65536;

/** ctxKey turns a request context into a Map key (latin1: one char per byte). */
export function ctxKey(ctx: Uint8Array): string {
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]!);
  return s;
}

/**
 * ReadOnly is the leader's bookkeeping for safe ReadIndex requests: each
 * request records the commit index and waits until a quorum acknowledged a
 * heartbeat carrying its context (proving leadership at that time).
 */
export class ReadOnly {
  pendingReadIndex = new Map<string, ReadIndexStatus>();
  readIndexQueue: string[] = [];

  constructor(readonly option: ReadOnlyOption) {}

  /** addRequest records a read request at commit index `index`; duplicates are ignored. */
  addRequest(index: number, m: Message): boolean {
    const key = ctxKey(m.entries[0]!.data);
    if (this.pendingReadIndex.has(key)) return true;
    if (this.readIndexQueue.length >= MAX_PENDING_READ_INDEX) return false;
    this.pendingReadIndex.set(key, { req: m, index, acks: new Map() });
    this.readIndexQueue.push(key);
    return true;
  }

  /** recvAck records id's ack of the heartbeat carrying ctx and returns the acks of that request. */
  recvAck(id: number, ctx: Uint8Array): Map<number, boolean> | undefined {
    const rs = this.pendingReadIndex.get(ctxKey(ctx));
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /**
   * advance dequeues every request up to and including the one with m's
   * context: a quorum ack for a later request proves leadership for earlier
   * ones too.
   */
  advance(m: Message): ReadIndexStatus[] {
    const key = ctxKey(m.context ?? new Uint8Array(0));
    let i = 0;
    let found = false;
    const rss: ReadIndexStatus[] = [];
    for (const okctx of this.readIndexQueue) {
      i++;
      const rs = this.pendingReadIndex.get(okctx);
      if (rs === undefined) throw new Error('raft invariant violated: cannot find corresponding read state from pending map');
      rss.push(rs);
      if (okctx === key) {
        found = true;
        break;
      }
    }
    if (!found) return [];
    this.readIndexQueue = this.readIndexQueue.slice(i);
    for (const rs of rss) this.pendingReadIndex.delete(ctxKey(rs.req.entries[0]!.data));
    return rss;
  }

  /** lastPendingRequestCtx returns the context of the newest pending request, if any. */
  lastPendingRequestCtx(): string | undefined {
    return this.readIndexQueue.length === 0 ? undefined : this.readIndexQueue[this.readIndexQueue.length - 1];
  }
}

/** keyToCtx converts a ctxKey back into bytes. */
export function keyToCtx(key: string): Uint8Array {
  const b = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) b[i] = key.charCodeAt(i);
  return b;
}
