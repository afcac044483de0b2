import type { TxnClient } from './txn';
import { MAX_GROUP_KEYS } from './txn';
import type { LeaseBook } from './lease-book';

// expiring-group.ts: group commit of blind expiring writes (SET k v EX n,
// SETEX, PSETEX outside MULTI), as txn.ts's WriteGroup does for plain SET.

/** EXPIRY_GROUP_ENV: FLOTILLA_REDIS_EXPIRY_GROUP=off runs every expiring write as its own transaction (the path before, kept for measuring old against new). */
export const EXPIRY_GROUP_ENV = 'FLOTILLA_REDIS_EXPIRY_GROUP';

/** GroupItemFailed: this write could not join its group (its lease was gone or full); the caller runs it alone, which replaces the lease. */
export class GroupItemFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('expiring write left its group');
    this.name = 'GroupItemFailed';
  }
}

interface Pending {
  key: Uint8Array;
  value: Uint8Array;
  atMs: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * ExpiringWriteGroup group-commits blind writes with an expiry: while one
 * transaction is in flight, the writes that arrive wait, and the next
 * transaction carries them all (for a key written twice, the later one,
 * by arrival order). Each write gets its lease from the book and is
 * attached as a lone write is (LeaseBook.attach: placement's list, then the
 * guard read in this transaction, so the argument of
 * docs/watch-and-leases.md holds per key), the attaches of a group going
 * to placement together (leaseAttachBatch). A write whose lease turned out
 * gone or full is rejected with GroupItemFailed and run alone by the caller;
 * a failure of the transaction fails the whole group (as WriteGroup).
 */
export class ExpiringWriteGroup {
  private waiting: Pending[] = [];
  private busy = false;

  constructor(
    private readonly client: TxnClient,
    private readonly book: LeaseBook,
  ) {}

  write(key: Uint8Array, value: Uint8Array, atMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ key, value, atMs, resolve, reject });
      if (!this.busy) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, MAX_GROUP_KEYS);
        const failed = new Map<Pending, unknown>();
        try {
          const leases = await Promise.all(batch.map((w) => this.book.leaseFor(w.atMs).then((id) => id, (err: unknown) => new GroupItemFailed(err))));
          await this.client.txn(async (tx) => {
            failed.clear();
            await Promise.all(
              batch.map(async (w, i) => {
                const lease = leases[i]!;
                if (lease instanceof GroupItemFailed) return void failed.set(w, lease.cause);
                try {
                  await this.book.attach(tx, w.key, lease);
                } catch (err) {
                  failed.set(w, err);
                }
              }),
            );
            const latest = new Map<string, { w: Pending; lease: number }>();
            batch.forEach((w, i) => {
              if (!failed.has(w)) latest.set(Buffer.from(w.key.buffer, w.key.byteOffset, w.key.length).toString('latin1'), { w, lease: leases[i] as number });
            });
            for (const { w, lease } of latest.values()) tx.put(w.key, w.value, { lease });
          });
          for (const w of batch) {
            const err = failed.get(w);
            if (err === undefined && !failed.has(w)) w.resolve();
            else w.reject(new GroupItemFailed(err));
          }
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
