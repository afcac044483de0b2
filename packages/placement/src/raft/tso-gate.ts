import { PlacementError, PlacementErrorCode } from '../errors';
import type { TimestampOracle } from '../tso/oracle';
import type { TimestampRange } from '../tso/timestamp';

interface Request {
  count: number;
  resolve: (r: TimestampRange) => void;
  reject: (e: Error) => void;
}

/**
 * TsoGate makes the leader's timestamps linearizable across leader changes.
 * A deposed leader that does not know it yet still holds a window of its
 * own: it must not hand out a timestamp after a new leader handed out a
 * larger one. So before it serves a batch of requests, the leader confirms
 * it still leads with a ReadIndex round (a heartbeat quorum, raft's
 * "safe" read). A new leader can only have been elected by a quorum that
 * overlaps the one that confirmed, before it confirmed. Requests arriving
 * during a round wait for the next one: one round per batch, not per
 * request. A group with a single voter needs no round.
 */
export class TsoGate {
  private queue: Request[] = [];
  private inFlight: { ctx: number; batch: Request[]; startedMs: number } | undefined;
  private nextCtx: number;
  private failed: Error | undefined;

  /** term keeps this gate's read contexts apart from those of an earlier term's gate. */
  constructor(
    term: number,
    private readonly oracle: TimestampOracle,
    private readonly readIndex: (ctx: Uint8Array) => void,
    private readonly singleVoter: () => boolean,
    private readonly maxQueued = 65_536,
  ) {
    this.nextCtx = term * 1_000_000_000 + 1;
  }

  request(count: number): TimestampRange | Promise<TimestampRange> {
    if (this.failed) throw this.failed;
    if (this.singleVoter()) return this.oracle.getTimestamps(count);
    if (this.queue.length >= this.maxQueued) throw new PlacementError(PlacementErrorCode.TooManyPending, `${this.queue.length} timestamp requests already wait for the leader's confirmation`);
    const p = new Promise<TimestampRange>((resolve, reject) => this.queue.push({ count, resolve, reject }));
    if (this.inFlight === undefined) this.startRound();
    return p;
  }

  private startRound(): void {
    const ctx = this.nextCtx++;
    this.inFlight = { ctx, batch: this.queue, startedMs: Date.now() };
    this.queue = [];
    this.readIndex(encodeCtx(ctx));
  }

  /** onReadState: a confirmation arrived; serve its batch and start the next round. */
  onReadState(requestCtx: Uint8Array): void {
    const round = this.inFlight;
    if (round === undefined || decodeCtx(requestCtx) !== round.ctx) return;
    this.inFlight = undefined;
    for (const r of round.batch) this.serve(r);
    if (this.queue.length > 0) this.startRound();
  }

  private serve(r: Request): void {
    try {
      const got = this.oracle.getTimestamps(r.count);
      if (got instanceof Promise) got.then(r.resolve, r.reject);
      else r.resolve(got);
    } catch (err) {
      r.reject(err as Error);
    }
  }

  /** expire fails a round that got no confirmation within timeoutMs (no quorum); the next request starts a new one. */
  expire(timeoutMs: number): void {
    const round = this.inFlight;
    if (round === undefined || Date.now() - round.startedMs < timeoutMs) return;
    this.inFlight = undefined;
    const err = new PlacementError(PlacementErrorCode.Unavailable, `the placement leader could not confirm its leadership within ${timeoutMs} ms (no quorum?)`);
    for (const r of round.batch) r.reject(err);
    if (this.queue.length > 0) this.startRound();
  }

  fail(err: Error): void {
    this.failed = err;
    for (const r of [...(this.inFlight?.batch ?? []), ...this.queue]) r.reject(err);
    this.inFlight = undefined;
    this.queue = [];
  }
}

function encodeCtx(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, n);
  return b;
}

function decodeCtx(b: Uint8Array): number {
  return b.length === 8 ? new DataView(b.buffer, b.byteOffset, 8).getFloat64(0) : -1;
}
