import { toBytes, type Bytes } from '../bytes';
import type { ClientError } from '../errors';
import { contenders, join, queuePrefix, waitTurn, type QueueDeps } from './queue';

export interface ElectionOptions {
  /** leaseTtlMs: a leader that dies is replaced after about this long (default 10,000). */
  leaseTtlMs?: number;
}

/** LeaderView: who leads: its value and revision (its key's commit ts: greater for every later leader). */
export interface LeaderView {
  key: Uint8Array;
  value: Uint8Array;
  revision: bigint;
}

/** Leadership: won by campaign. */
export interface Leadership extends LeaderView {
  leaseId: number;
  lost: Promise<ClientError>;
  signal: AbortSignal;
  /** resign gives leadership up (revokes our lease: the next candidate leads). */
  resign(): Promise<void>;
}

/** OBSERVE_INTERVAL_MS: how often observe looks (it polls; with watch it could follow events). */
export const OBSERVE_INTERVAL_MS = 100;

/**
 * Election is etcd's concurrency.Election on the same queue as the mutex:
 * campaign waits until our key has the lowest revision under NAME/, and
 * the leader is the lowest-revision key's value.
 */
export class Election {
  private readonly prefix: Uint8Array;
  private current: Leadership | undefined;

  constructor(
    private readonly deps: QueueDeps,
    name: Bytes,
    private readonly opts: ElectionOptions = {},
  ) {
    this.prefix = queuePrefix(name);
  }

  /** campaign resolves once we lead (waiting behind earlier candidates); fails with the loss if our lease is lost first. */
  async campaign(value: Bytes, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Leadership> {
    const v = toBytes(value);
    const place = await join(this.deps, this.prefix, v, this.opts.leaseTtlMs ?? 10_000);
    const resign = async (): Promise<void> => {
      place.keepAlive.close();
      if (this.current?.leaseId === place.leaseId) this.current = undefined;
      await this.deps.lease.revoke(place.leaseId).catch((err: ClientError) => {
        if (err.code !== 'LeaseNotFound') throw err;
      });
    };
    try {
      await waitTurn(this.deps, this.prefix, place, opts.timeoutMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + opts.timeoutMs, opts.signal);
    } catch (err) {
      await resign().catch(() => {});
      throw err;
    }
    this.current = { key: place.key, value: v, revision: place.revision, leaseId: place.leaseId, lost: place.keepAlive.lost, signal: place.keepAlive.signal, resign };
    return this.current;
  }

  /** resign gives up what this Election's last campaign won (nothing when it holds nothing). */
  async resign(): Promise<void> {
    await this.current?.resign();
  }

  /** leader: the current leader, or null when nobody campaigns. */
  async leader(): Promise<LeaderView | null> {
    const all = await contenders(this.deps, this.prefix);
    const first = all[0];
    return first ? { key: first.key, value: first.value, revision: first.revision } : null;
  }

  /** observe yields the leader each time it changes (null when none), until signal aborts. */
  async *observe(opts: { signal?: AbortSignal; intervalMs?: number } = {}): AsyncGenerator<LeaderView | null> {
    let last: bigint | null | undefined;
    while (!opts.signal?.aborted) {
      const l = await this.leader();
      const rev = l?.revision ?? null;
      if (rev !== last) {
        last = rev;
        yield l;
      }
      await new Promise<void>((r) => {
        const done = (): void => {
          clearTimeout(t);
          opts.signal?.removeEventListener('abort', done);
          r();
        };
        const t = setTimeout(done, opts.intervalMs ?? OBSERVE_INTERVAL_MS);
        opts.signal?.addEventListener('abort', done, { once: true });
      });
    }
  }
}
