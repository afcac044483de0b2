import type { Bytes } from '../bytes';
import { ClientError } from '../errors';
import { join, queuePrefix, waitTurn, type QueueDeps } from './queue';

export interface LockOptions {
  /** leaseTtlMs: the holder's lease; a holder that dies releases after about this long (default 10,000). */
  leaseTtlMs?: number;
  /** timeoutMs: give up waiting after this long (default: wait as long as it takes). */
  timeoutMs?: number;
  /** signal: abort the wait. */
  signal?: AbortSignal;
}

/** LockHolder: a held lock. */
export interface LockHolder {
  /** key: our key under NAME/ (its revision is the fencing token). */
  key: Uint8Array;
  /** fencingToken: our key's revision (commit ts): greater than every earlier holder's. Send it with every write the lock protects. */
  fencingToken: bigint;
  leaseId: number;
  /** lost resolves when our lease is lost (expired or revoked): from then on another client may hold the lock. */
  lost: Promise<ClientError>;
  /** signal aborts when the lease is lost. */
  signal: AbortSignal;
  /** release revokes our lease, which deletes our key: the next waiter holds. */
  release(): Promise<void>;
}

/**
 * lock is etcd's concurrency.Mutex on Flotilla: contenders queue under
 * NAME/ by revision and each waits for the next-lower revision's key to go
 * (recipes/queue.ts has why the order holds). The lock is released by
 * release(), or by the lease's expiry when the holder dies or loses touch
 * with placement: a holder must stop acting on `lost`, and the resource it
 * protects should refuse fencing tokens lower than one it has seen.
 */
export async function lock(deps: QueueDeps, name: Bytes, opts: LockOptions = {}): Promise<LockHolder> {
  const prefix = queuePrefix(name);
  const ttl = opts.leaseTtlMs ?? 10_000;
  const deadline = opts.timeoutMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + opts.timeoutMs;
  const place = await join(deps, prefix, new Uint8Array(0), ttl);
  const release = async (): Promise<void> => {
    place.keepAlive.close();
    try {
      await deps.lease.revoke(place.leaseId);
    } catch (err) {
      if ((err as ClientError).code !== 'LeaseNotFound') throw err;
    }
  };
  try {
    await waitTurn(deps, prefix, place, deadline, opts.signal);
  } catch (err) {
    await release().catch(() => {});
    throw err;
  }
  return { key: place.key, fencingToken: place.revision, leaseId: place.leaseId, lost: place.keepAlive.lost, signal: place.keepAlive.signal, release };
}
