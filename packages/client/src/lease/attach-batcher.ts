import { ClientError } from '../errors';

/** ATTACH_BATCH: (lease, key) pairs sent in one leaseAttachBatch request at most (placement's LEASE_LIMITS.maxAttachesPerRequest). */
export const ATTACH_BATCH = 1000;
/** ATTACH_IN_FLIGHT: requests in flight at once; attaches arriving meanwhile wait and go together in the next one. */
export const ATTACH_IN_FLIGHT = 2;

/** AttachItemResult: placement's answer for one item (lease/types.ts LeaseAttachResult). */
export type AttachItemResult = { attached: true } | { error: 'LeaseNotFound' | 'InvalidArgument'; message: string };

interface Waiting {
  id: number;
  key: Uint8Array;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * AttachBatcher coalesces concurrent attaches (a Redis front writing
 * thousands of expiring keys a second) into leaseAttachBatch requests, as
 * KeepAliveBatcher does for refreshes, but without lingering: an attach
 * goes out at once while fewer than ATTACH_IN_FLIGHT requests are in
 * flight (no added latency when idle), and the attaches that arrive while
 * they are all busy go together in the next request, at most ATTACH_BATCH
 * each. So one placement request and one log entry carry the attaches of
 * a round trip, however many there are. A failed request fails every
 * attach in it (callers retry); a refused item fails only its own attach
 * (LeaseNotFound, InvalidArgument) with placement's message.
 */
export class AttachBatcher {
  private queue: Waiting[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(private readonly send: (items: { id: number; key: Uint8Array }[]) => Promise<AttachItemResult[]>) {}

  attach(id: number, key: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id, key, resolve, reject });
      // Callers of one event-loop turn (a pipeline's commands) join one request.
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    while (this.inFlight < ATTACH_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.splice(0, ATTACH_BATCH);
      this.inFlight++;
      this.send(batch.map((w) => ({ id: w.id, key: w.key })))
        .then(
          (results) => {
            batch.forEach((w, i) => {
              const r = results[i];
              if (r === undefined) w.reject(new ClientError('Unavailable', `lease ${w.id}: placement's attach answer left the key out`));
              else if ('error' in r) w.reject(new ClientError(r.error, r.message));
              else w.resolve();
            });
          },
          (err: unknown) => {
            for (const w of batch) w.reject(err as Error);
          },
        )
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
