import { ClientError } from '../errors';

/** KEEPALIVE_BATCH: refreshes sent in one leaseKeepAlives request at most. */
export const KEEPALIVE_BATCH = 1000;
/** KEEPALIVE_LINGER_MS: how long a refresh waits for others to join its request (keepalives run every TTL/3: a few ms cost nothing). */
export const KEEPALIVE_LINGER_MS = 5;

type Result = { id: number; ttlMs: number } | { id: number; error: 'LeaseNotFound' };

/**
 * KeepAliveBatcher coalesces the refreshes of many leases into
 * leaseKeepAlives requests (etcd's client multiplexes them on one stream):
 * a client keeping 10,000 leases alive every TTL/3 sends a few requests a
 * second instead of thousands, each lingering at most KEEPALIVE_LINGER_MS
 * for others to join, at most KEEPALIVE_BATCH IDs. A failed request fails
 * every refresh in it (the callers retry); a lease that is gone fails its
 * own refresh with LeaseNotFound.
 */
export class KeepAliveBatcher {
  private queue = new Map<number, { resolve: (r: { id: number; ttlMs: number }) => void; reject: (e: Error) => void }[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly send: (ids: number[]) => Promise<Result[]>) {}

  refresh(id: number): Promise<{ id: number; ttlMs: number }> {
    return new Promise((resolve, reject) => {
      const waiting = this.queue.get(id);
      if (waiting) waiting.push({ resolve, reject });
      else this.queue.set(id, [{ resolve, reject }]);
      if (this.queue.size >= KEEPALIVE_BATCH) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), KEEPALIVE_LINGER_MS);
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = new Map();
    if (batch.size === 0) return;
    const ids = [...batch.keys()];
    this.send(ids).then(
      (results) => {
        const byId = new Map(results.map((r) => [r.id, r]));
        for (const [id, ws] of batch) {
          const r = byId.get(id);
          for (const w of ws) {
            if (r === undefined) w.reject(new ClientError('Unavailable', `lease ${id}: placement's keepalive answer left it out`));
            else if ('error' in r) w.reject(new ClientError('LeaseNotFound', `lease ${id} not found (never granted, expired or revoked)`));
            else w.resolve(r);
          }
        }
      },
      (err: unknown) => {
        for (const ws of batch.values()) for (const w of ws) w.reject(err as Error);
      },
    );
  }
}
