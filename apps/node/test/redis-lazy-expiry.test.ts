import { describe, expect, it } from 'vitest';
import { ClientError, type LeaseClient } from '@flotilla/client';
import { LeaseBook, OTHER_CHECK_MS, type LeaseApiOfBook } from '../src/redis/lease-book';
import { TxnKeyspace, type TxnClient } from '../src/redis/txn';

// Lazy expiry on the txn front: Redis never returns a key past its expiry,
// while placement deletes it a little later (the lease window and the
// reaper's bound). Reads filter keys whose lease has expired meanwhile:
// LeaseBook.expired decides (its own leases by their window end; another
// lease by placement's timeToLive, trusted briefly), and SCAN still takes
// its cursor from a filtered key so it never ends early.

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null): string | null => (b === null ? null : new TextDecoder().decode(b));

function fakeApi(now: () => number): { api: LeaseApiOfBook; remaining: Map<number, number>; asked: number[] } {
  let next = 100;
  const remaining = new Map<number, number>(); // other leases: expiry time by placement's clock
  const asked: number[] = [];
  const api = {
    grant: async (ttlMs: number) => ({ id: ++next, ttlMs }),
    attachKey: async () => {},
    timeToLive: async (id: number) => {
      asked.push(id);
      const at = remaining.get(id);
      if (at === undefined || at <= now()) throw new ClientError('LeaseNotFound', `lease ${id} not found`);
      return { id, ttlMs: 10_000, remainingMs: at - now() };
    },
  } as unknown as LeaseApiOfBook;
  return { api, remaining, asked };
}

describe('LeaseBook.expired', () => {
  it('its own lease expires at the end of the window it was granted for', async () => {
    let now = 1_000_000;
    const { api } = fakeApi(() => now);
    const book = new LeaseBook(api, async () => true, () => now);
    const id = await book.leaseFor(now + 1_050); // window end 1_001_100
    expect(await book.expired(id)).toBe(false);
    now = 1_001_099;
    expect(await book.expired(id)).toBe(false);
    now = 1_001_100;
    expect(await book.expired(id)).toBe(true);
  });

  it("another lease is asked of placement, trusted for OTHER_CHECK_MS, and gone means expired", async () => {
    let now = 5_000_000;
    const { api, remaining, asked } = fakeApi(() => now);
    const book = new LeaseBook(api, async () => true, () => now);
    remaining.set(7, now + 3_000);
    expect(await book.expired(7)).toBe(false);
    expect(await book.expired(7)).toBe(false);
    expect(asked).toEqual([7]); // the answer is trusted
    now += OTHER_CHECK_MS; // kept alive meanwhile by its owner
    remaining.set(7, now + 3_000);
    expect(await book.expired(7)).toBe(false);
    expect(asked).toEqual([7, 7]);
    remaining.delete(7); // revoked, or expired: placement no longer knows it
    now += OTHER_CHECK_MS;
    expect(await book.expired(7)).toBe(true);
    expect(await book.expired(999)).toBe(true);
  });
});

describe('TxnKeyspace reads skip expired keys', () => {
  function fakeClient(now: () => number, rows: { key: string; value: string; lease: number | null }[]): { client: TxnClient; book: LeaseBook } {
    const { api, remaining } = fakeApi(now);
    remaining.set(1, now() + 10_000); // live other lease
    remaining.set(2, now() + 500); // expires soon
    const find = (k: Uint8Array) => rows.find((r) => r.key === dec(k));
    const versioned = (r: (typeof rows)[number] | undefined) => (r ? { value: enc(r.value), version: 1n, lease: r.lease } : null);
    const snapshot = {
      get: async (k: Uint8Array) => (find(k) ? enc(find(k)!.value) : null),
      getWithVersion: async (k: Uint8Array) => versioned(find(k)),
      batchGetWithVersion: async (ks: readonly Uint8Array[]) => ks.map((k) => versioned(find(k))),
      scan: async () => rows.map((r) => ({ key: enc(r.key), value: enc(r.value), version: 1n, lease: r.lease })),
    };
    const client = { lease: api as unknown as LeaseClient, snapshot: async () => snapshot, txn: async () => { throw new Error('no writes here'); } } as unknown as TxnClient;
    return { client, book: new LeaseBook(api, async () => true, now) };
  }

  it('get, batchGet and scan: a key past its lease reads as absent; scan marks it and keeps it for the cursor', async () => {
    let now = 9_000_000;
    const { client, book } = fakeClient(() => now, [
      { key: 'a', value: 'plain', lease: null },
      { key: 'b', value: 'live', lease: 1 },
      { key: 'c', value: 'soon', lease: 2 },
    ]);
    const ks = new TxnKeyspace(client, (id) => book.expired(id));
    expect(dec(await ks.get(enc('c')))).toBe('soon');
    now += 500 + OTHER_CHECK_MS; // lease 2 has ended; placement has not deleted c yet
    expect(await ks.get(enc('c'))).toBeNull();
    expect((await ks.batchGet([enc('a'), enc('b'), enc('c')])).map(dec)).toEqual(['plain', 'live', null]);
    const pairs = await ks.scan(enc(''), enc(''), 10);
    expect(pairs.map((p) => [dec(p.key), p.expired === true])).toEqual([
      ['a', false],
      ['b', false],
      ['c', true],
    ]);
    // Reads as stored when asked (the stored state is unchanged).
    expect(dec(await new TxnKeyspace(client, false).get(enc('c')))).toBe('soon');
  });
});
