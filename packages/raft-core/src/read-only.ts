import type { ReadOnlyOption } from './config';
import type { Message } from './types';

/** ReadState is a served ReadIndex request: reads for requestCtx are linearizable once applied >= index. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

/**
 * ReadIndexStatus tracks one pending safe read: the commit index at request
 * time, the heartbeat round that confirms it, and the acks of that round.
 */
export interface ReadIndexStatus {
  req: Message;
  index: number;
  /** round is the unique number of this request's heartbeat round; its heartbeats carry encodeRound(round). */
  round: number;
  acks: Map<number, boolean>;
}

/** MAX_PENDING_READ_INDEX bounds the queue of pending safe reads on a leader. */
export const MAX_PENDING_READ_INDEX = 65536;

/** MAX_ROUND_DIGITS: a round is a safe integer, at most 16 decimal digits. */
const MAX_ROUND_DIGITS = 16;

/**
 * encodeRound is the heartbeat context of a read round: the round number in
 * ASCII decimal (short, and readable in test output).
 */
export function encodeRound(round: number): Uint8Array {
  const s = String(round);
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** decodeRound reads a heartbeat context written by encodeRound; anything else is undefined. */
export function decodeRound(ctx: Uint8Array): number | undefined {
  if (ctx.length === 0 || ctx.length > MAX_ROUND_DIGITS) return undefined;
  let n = 0;
  for (let i = 0; i < ctx.length; i++) {
    const c = ctx[i]!;
    if (c < 0x30 || c > 0x39) return undefined;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/**
 * ReadOnly is the leader's bookkeeping for safe ReadIndex requests: each
 * request records the commit index and waits until a quorum acknowledged a
 * heartbeat sent after it (proving leadership at that time).
 *
 * Rounds are keyed by a number unique to the request, never by the caller's
 * context (etcd's TestReadOnlyDuplicateRequest): a caller may reuse a
 * context, and a late response to a heartbeat of an earlier round with the
 * same context proves leadership only before the later request arrived, so
 * it must not release it. Every request gets its own round and its own
 * ReadState, even when its context repeats one that is still pending.
 *
 * Invariant: readIndexQueue holds the pending requests in increasing round
 * order, and pendingReadIndex maps each of their rounds to the same status.
 */
export class ReadOnly {
  pendingReadIndex = new Map<number, ReadIndexStatus>();
  readIndexQueue: ReadIndexStatus[] = [];
  /**
   * lastRound is the newest round handed out. It survives reset(): rounds
   * never repeat within this Raft's life, so no response from an earlier
   * leadership can match a later round (stale terms are dropped anyway).
   */
  private lastRound = 0;

  constructor(readonly option: ReadOnlyOption) {}

  /**
   * addRequest records a read request at commit index `index` and returns
   * its round, or undefined when the queue is full (the request is dropped).
   */
  addRequest(index: number, m: Message): number | undefined {
    if (this.readIndexQueue.length >= MAX_PENDING_READ_INDEX) return undefined;
    const round = ++this.lastRound;
    const rs: ReadIndexStatus = { req: m, index, round, acks: new Map() };
    this.pendingReadIndex.set(round, rs);
    this.readIndexQueue.push(rs);
    return round;
  }

  /** recvAck records id's ack of the heartbeat carrying ctx and returns the acks of that round, if it is pending. */
  recvAck(id: number, ctx: Uint8Array): Map<number, boolean> | undefined {
    const round = decodeRound(ctx);
    if (round === undefined) return undefined;
    const rs = this.pendingReadIndex.get(round);
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /**
   * advance dequeues every request up to and including the round in m's
   * context: a quorum ack for a later round proves leadership for earlier
   * requests too. A context that names no pending round dequeues nothing.
   */
  advance(m: Message): ReadIndexStatus[] {
    const round = decodeRound(m.context ?? new Uint8Array(0));
    if (round === undefined || !this.pendingReadIndex.has(round)) return [];
    let i = 0;
    while (i < this.readIndexQueue.length && this.readIndexQueue[i]!.round <= round) i++;
    const rss = this.readIndexQueue.slice(0, i);
    this.readIndexQueue = this.readIndexQueue.slice(i);
    for (const rs of rss) this.pendingReadIndex.delete(rs.round);
    return rss;
  }

  /** lastPendingRound returns the round of the newest pending request, if any (periodic heartbeats carry it). */
  lastPendingRound(): number | undefined {
    const n = this.readIndexQueue.length;
    return n === 0 ? undefined : this.readIndexQueue[n - 1]!.round;
  }

  /** reset forgets every pending request (a new term or role) but keeps the round counter. */
  reset(): void {
    this.pendingReadIndex = new Map();
    this.readIndexQueue = [];
  }
}
