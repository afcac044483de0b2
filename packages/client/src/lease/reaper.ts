import type { LeaseReaper } from '@flotilla/placement/client';
import type { FlotillaClient } from '../client';
import type { Transaction } from '../txn/txn';
import { GUARD_VALUE, guardKey } from './guard';

/** REAP_TXN: one reap's transaction bounds (placement retries a failed one with backoff). */
const REAP_TXN = { timeoutMs: 10_000, maxRetries: 20 } as const;

/**
 * reapIn is one revocation, in tx: the guard goes, and of the attached keys
 * those whose value (read at start ts) still carries this lease are
 * deleted; the others (overwritten without it or with another lease, or
 * deleted: detached, as etcd detaches them) are locked, not written. The
 * lock makes a write to any attached key committed after start ts a
 * conflict for this transaction, which then runs again and reads it; and a
 * put with this lease that started before our commit conflicts with our
 * lock or delete, runs again, and finds no guard (docs/watch-and-leases.md
 * "Why a put never outlives its lease").
 */
export async function reapIn(tx: Transaction, leaseId: number, keys: readonly Uint8Array[]): Promise<{ deleted: number }> {
  tx.delete(guardKey(leaseId));
  const current = keys.length > 0 ? await tx.batchGetWithVersion(keys) : [];
  let deleted = 0;
  const detached: Uint8Array[] = [];
  keys.forEach((k, i) => {
    if (current[i]?.lease === leaseId) {
      tx.delete(k);
      deleted++;
    } else detached.push(k);
  });
  if (detached.length > 0) tx.lockKeys(detached);
  return { deleted };
}

/**
 * ClientLeaseReaper is placement's LeaseReaper on the transactional
 * keyspace: install puts the lease's guard key; reap deletes the guard and
 * every attached key that still carries the lease in one transaction
 * (reapIn), so the deletes share one commit ts (one revision for a
 * watcher). Both are idempotent. The client is made
 * on first use (a placement process serves before the reaper's client can
 * route through it).
 */
export class ClientLeaseReaper implements LeaseReaper {
  private client: Promise<FlotillaClient> | undefined;

  constructor(private readonly connect: () => Promise<FlotillaClient>) {}

  private get(): Promise<FlotillaClient> {
    this.client ??= this.connect().catch((err: unknown) => {
      this.client = undefined;
      throw err;
    });
    return this.client;
  }

  async install(leaseId: number): Promise<void> {
    const c = await this.get();
    await c.txn((tx) => tx.put(guardKey(leaseId), GUARD_VALUE), REAP_TXN);
  }

  async reap(leaseId: number, keys: readonly Uint8Array[]): Promise<void> {
    const c = await this.get();
    await c.txn((tx) => reapIn(tx, leaseId, keys), REAP_TXN);
  }

  /** close closes the client (placement's shutdown). */
  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) (await c.catch(() => undefined))?.close();
  }
}
