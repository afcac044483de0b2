import { PlacementError, PlacementErrorCode } from '../errors';
import { firstOf, type TimestampRange } from './timestamp';

interface Waiter {
  resolve: (ts: bigint) => void;
  reject: (e: Error) => void;
}

/**
 * TsoBatcher turns many concurrent single-timestamp requests into few
 * getTimestamps round trips (PD client's tso dispatcher): at most one batch
 * is on the wire; every request that arrives meanwhile joins the next one.
 * At concurrency C a round trip carries about C requests, so throughput
 * grows with C while each request waits at most two round trips. Requests
 * get their timestamps in arrival order, so one caller's later request
 * always gets a larger timestamp.
 */
export class TsoBatcher {
  private readonly queue: Waiter[] = [];
  private inFlight = false;
  private scheduled = false;
  /** batches counts round trips made (tests, benchmarks). */
  batches = 0;

  constructor(
    private readonly fetch: (count: number) => Promise<TimestampRange>,
    private readonly maxPending: number,
    private readonly maxBatch: number,
  ) {}

  /** next resolves to one fresh timestamp. */
  next(): Promise<bigint> {
    if (this.queue.length >= this.maxPending) {
      return Promise.reject(new PlacementError(PlacementErrorCode.TooManyPending, `${this.queue.length} timestamp requests already pending (limit ${this.maxPending})`));
    }
    const p = new Promise<bigint>((resolve, reject) => this.queue.push({ resolve, reject }));
    if (!this.inFlight && !this.scheduled) {
      // A microtask, so requests made in the same tick share the first round trip too.
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
    return p;
  }

  /** failAll rejects every queued request (the client is closing). */
  failAll(err: Error): void {
    for (const w of this.queue.splice(0)) w.reject(err);
  }

  private flush(): void {
    this.scheduled = false;
    if (this.inFlight || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.inFlight = true;
    this.batches++;
    this.fetch(batch.length).then(
      (range) => {
        this.inFlight = false;
        if (range.count !== batch.length) {
          const err = new PlacementError(PlacementErrorCode.Internal, `placement returned ${range.count} timestamps for a batch of ${batch.length}`);
          for (const w of batch) w.reject(err);
        } else {
          const first = firstOf(range);
          for (let i = 0; i < batch.length; i++) batch[i]!.resolve(first + BigInt(i));
        }
        this.flush();
      },
      (err: unknown) => {
        this.inFlight = false;
        for (const w of batch) w.reject(err as Error);
        this.flush();
      },
    );
  }
}
