import { ClientError } from '../errors';

/** KeepAliveResponse: one successful refresh. */
export interface KeepAliveResponse {
  id: number;
  ttlMs: number;
}

/** KeepAliveDeps: one refresh call (typed errors as LeaseClient maps them). */
export interface KeepAliveDeps {
  refresh: (id: number) => Promise<KeepAliveResponse>;
  id: number;
  ttlMs: number;
  /** intervalMs: between refreshes (default ttl/3, etcd's). */
  intervalMs?: number;
}

/** MAX_BUFFERED: refreshes kept for an iterator that reads slowly (older ones are dropped: only the latest matters). */
const MAX_BUFFERED = 16;

/**
 * KeepAlive refreshes a lease every ttl/3 until closed or lost (etcd's
 * KeepAlive stream). The lease is lost when placement answers
 * LeaseNotFound (expired or revoked), or when no refresh succeeded for a
 * whole TTL (placement unreachable: it may have expired it): `lost`
 * resolves with the reason and `signal` aborts, so a lock holder can stop
 * writing. Iterating yields each refresh and throws the loss.
 */
export class KeepAlive implements AsyncIterable<KeepAliveResponse> {
  /** lost resolves (never rejects) with the reason once the lease is lost; it stays pending after close(). */
  readonly lost: Promise<ClientError>;
  readonly id: number;
  private readonly controller = new AbortController();
  private resolveLost!: (e: ClientError) => void;
  private lostWith: ClientError | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private lastOkMs: number;
  private readonly buffered: KeepAliveResponse[] = [];
  private wake: (() => void) | undefined;
  private readonly intervalMs: number;

  constructor(private readonly deps: KeepAliveDeps) {
    this.id = deps.id;
    this.intervalMs = deps.intervalMs ?? Math.max(50, Math.floor(deps.ttlMs / 3));
    this.lost = new Promise((r) => (this.resolveLost = r));
    this.lastOkMs = performance.now();
    this.schedule(0);
  }

  /** signal aborts (with the loss as reason) when the lease is lost. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get isLost(): boolean {
    return this.lostWith !== undefined;
  }

  private schedule(ms: number): void {
    if (this.closed || this.lostWith) return;
    this.timer = setTimeout(() => void this.refresh(), ms);
  }

  private async refresh(): Promise<void> {
    try {
      const r = await this.deps.refresh(this.deps.id);
      if (this.closed || this.lostWith) return;
      this.lastOkMs = performance.now();
      if (this.buffered.length >= MAX_BUFFERED) this.buffered.shift();
      this.buffered.push(r);
      this.wake?.();
      this.schedule(this.intervalMs);
    } catch (err) {
      if (this.closed || this.lostWith) return;
      const code = (err as { code?: unknown }).code;
      if (code === 'LeaseNotFound') return this.lose(err as ClientError);
      if (performance.now() - this.lastOkMs >= this.deps.ttlMs) {
        return this.lose(new ClientError('LeaseNotFound', `lease ${this.deps.id}: no keepalive succeeded for its whole TTL (${this.deps.ttlMs} ms); presumed expired (last error: ${(err as Error).message})`, undefined, err));
      }
      this.schedule(Math.min(this.intervalMs, 100));
    }
  }

  private lose(err: ClientError): void {
    this.lostWith = err;
    clearTimeout(this.timer);
    this.resolveLost(err);
    this.controller.abort(err);
    this.wake?.();
  }

  /** close stops refreshing (the lease is not revoked: it expires after its TTL unless revoked). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<KeepAliveResponse> {
    for (;;) {
      const next = this.buffered.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.lostWith) throw this.lostWith;
      if (this.closed) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}
