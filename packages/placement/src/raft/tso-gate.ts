import { PlacementError, PlacementErrorCode } from '../errors';
import type { TimestampOracle } from '../tso/oracle';
import type { TimestampRange } from '../tso/timestamp';

interface Request {
  count: number;
  resolve: (r: TimestampRange) => void;
  reject: (e: Error) => void;
}

export interface TsoGateOptions {
  /** term keeps this gate's read contexts apart from those of an earlier term's gate. */
  term: number;
  oracle: TimestampOracle;
  readIndex: (ctx: Uint8Array) => void;
  /** singleVoter: the group has one voter, which needs no confirmation. */
  singleVoter: () => boolean;
  /** leaseAllowed: no leader transfer under way or sent this term (raft-core's leaseForfeited). */
  leaseAllowed: () => boolean;
  /** leaseMs: how long after a confirmed round was asked for no other leader can exist (election timeout less a drift margin). */
  leaseMs: number;
  /** now: a monotonic clock in ms (performance.now): a stalled process must not trust a lease that ran out meanwhile. */
  now: () => number;
  maxQueued?: number;
}

/**
 * TsoGate makes the leader's timestamps linearizable across leader changes.
 * A deposed leader that does not know it yet still holds a window of its
 * own: it must not hand out a timestamp after a new leader handed out a
 * larger one. So the leader hands out timestamps only while it knows no
 * other leader can exist: within a lease, or after a ReadIndex round (a
 * heartbeat quorum, raft's "safe" read) confirmed it.
 *
 * The lease is the store's (operation/query.ts): a round a quorum
 * confirmed, asked for at monotonic time t, proves no other leader can be
 * elected before t + election timeout (each voter that answered heard from
 * this leader after t and, with check-quorum, refuses votes for an
 * election timeout). It runs to t + leaseMs, ends with a membership
 * change, and is never trusted once this leader attempted a transfer.
 * Requests outside a lease wait for the next round, one round per batch;
 * while timestamps are in demand, rounds renew the lease ahead of time,
 * so requests almost never wait for one.
 */
export class TsoGate {
  private queue: Request[] = [];
  private inFlight: { ctx: number; batch: Request[]; startedMs: number } | undefined;
  private nextCtx: number;
  private failed: Error | undefined;
  private leaseUntilMs = 0;
  private lastRequestMs = -Infinity;
  private readonly maxQueued: number;

  constructor(private readonly o: TsoGateOptions) {
    this.nextCtx = o.term * 1_000_000_000 + 1;
    this.maxQueued = o.maxQueued ?? 65_536;
  }

  request(count: number): TimestampRange | Promise<TimestampRange> {
    if (this.failed) throw this.failed;
    if (this.o.singleVoter()) return this.o.oracle.getTimestamps(count);
    const now = this.o.now();
    this.lastRequestMs = now;
    if (this.queue.length === 0 && now < this.leaseUntilMs && this.o.leaseAllowed()) return this.o.oracle.getTimestamps(count);
    if (this.queue.length >= this.maxQueued) throw new PlacementError(PlacementErrorCode.TooManyPending, `${this.queue.length} timestamp requests already wait for the leader's confirmation`);
    const p = new Promise<TimestampRange>((resolve, reject) => this.queue.push({ count, resolve, reject }));
    if (this.inFlight === undefined) this.startRound();
    return p;
  }

  private startRound(): void {
    const ctx = this.nextCtx++;
    this.inFlight = { ctx, batch: this.queue, startedMs: this.o.now() };
    this.queue = [];
    this.o.readIndex(encodeCtx(ctx));
  }

  /** onReadState: a confirmation arrived; renew the lease, serve its batch and start the next round. */
  onReadState(requestCtx: Uint8Array): void {
    const round = this.inFlight;
    if (round === undefined || decodeCtx(requestCtx) !== round.ctx) return;
    this.inFlight = undefined;
    const leased = this.o.leaseAllowed();
    if (leased) this.leaseUntilMs = Math.max(this.leaseUntilMs, round.startedMs + this.o.leaseMs);
    for (const r of round.batch) this.serve(r);
    // Requests that arrived during the round are covered by the lease it renewed; without one they wait for the next round.
    if (leased && this.o.now() < this.leaseUntilMs) for (const r of this.queue.splice(0)) this.serve(r);
    if (this.queue.length > 0) this.startRound();
  }

  private serve(r: Request): void {
    try {
      const got = this.o.oracle.getTimestamps(r.count);
      if (got instanceof Promise) got.then(r.resolve, r.reject);
      else r.resolve(got);
    } catch (err) {
      r.reject(err as Error);
    }
  }

  /** endLease: the voters changed; the next timestamps wait for a round confirmed by the new quorum. */
  endLease(): void {
    this.leaseUntilMs = 0;
  }

  /**
   * tick fails a round that got no confirmation within timeoutMs (no
   * quorum), and renews the lease ahead of time while timestamps were asked
   * for within the last lease.
   */
  tick(timeoutMs: number): void {
    const now = this.o.now();
    const round = this.inFlight;
    if (round !== undefined && now - round.startedMs >= timeoutMs) {
      this.inFlight = undefined;
      const err = new PlacementError(PlacementErrorCode.Unavailable, `the placement leader could not confirm its leadership within ${timeoutMs} ms (no quorum?)`);
      for (const r of round.batch) r.reject(err);
      if (this.queue.length > 0) this.startRound();
    }
    const busy = now - this.lastRequestMs < this.o.leaseMs;
    if (busy && this.inFlight === undefined && !this.o.singleVoter() && this.leaseUntilMs - now < this.o.leaseMs / 2) this.startRound();
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
