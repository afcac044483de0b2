import type { LeaseReaper } from '@flotilla/placement/client';
import type { FlotillaClient } from '../client';
import { GUARD_VALUE, guardKey } from './guard';

/** REAP_TXN: one reap's transaction bounds (placement retries a failed one with backoff). */
const REAP_TXN = { timeoutMs: 10_000, maxRetries: 20 } as const;

/**
 * ClientLeaseReaper is placement's LeaseReaper on the transactional
 * keyspace: install puts the lease's guard key; reap deletes the guard and
 * every attached key in one transaction, so the deletes share one commit
 * ts (one revision for a watcher). Both are idempotent. The client is made
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
    await c.txn((tx) => {
      tx.delete(guardKey(leaseId));
      for (const k of keys) tx.delete(k);
    }, REAP_TXN);
  }

  /** close closes the client (placement's shutdown). */
  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) (await c.catch(() => undefined))?.close();
  }
}
