import { describe, expect, it } from 'vitest';
import { ClientError, type Transaction } from '@flotilla/client';
import { KEYS_PER_LEASE, LEASE_TTL_MIN_MS, LeaseBook, windowOf, type LeaseApiOfBook } from '../src/redis/lease-book';

// LeaseBook (the Redis front's expiry leases): deadlines of one window share
// a lease that expires no earlier than any of them; windows widen with the
// TTL; a full or forgotten lease is replaced; concurrent asks share one grant.

function fakeApi(): { api: LeaseApiOfBook; grants: number[] } {
  const grants: number[] = [];
  const api = {
    grant: async (ttlMs: number) => {
      grants.push(ttlMs);
      return { id: grants.length, ttlMs };
    },
    attachKey: async () => {},
    timeToLive: async (id: number) => {
      if (id > grants.length) throw new ClientError('LeaseNotFound', 'gone');
      return { id, ttlMs: grants[id - 1]!, remainingMs: 1234 };
    },
  } as unknown as LeaseApiOfBook;
  return { api, grants };
}

describe('LeaseBook', () => {
  it('windows: 100 ms up to 51.2 s, then about 1/512 of the TTL in powers of two', () => {
    expect(windowOf(0)).toBe(100);
    expect(windowOf(10_000)).toBe(100);
    expect(windowOf(102_399)).toBe(100);
    expect(windowOf(102_400)).toBe(200);
    expect(windowOf(3_600_000)).toBe(6_400);
    expect(windowOf(24 * 3_600_000)).toBe(102_400);
    for (const ttl of [1, 5_000, 60_000, 3_600_000, 86_400_000]) expect(windowOf(ttl)).toBeLessThanOrEqual(Math.max(100, ttl / 512));
  });

  it('shares one lease per window, never expiring before a deadline it serves', async () => {
    let now = 1_000_000;
    const { api, grants } = fakeApi();
    const book = new LeaseBook(api, async () => true, () => now);
    const [a, b2, c] = await Promise.all([book.leaseFor(now + 1_010), book.leaseFor(now + 1_090), book.leaseFor(now + 1_099)]);
    expect(new Set([a, b2, c]).size).toBe(1); // one grant for three deadlines of [1_001_000, 1_001_100]
    expect(grants).toEqual([1_100]);
    expect(await book.leaseFor(now + 1_101)).toBe(2); // the next window
    expect(grants[1]).toBe(1_200);
    // A short deadline still gets placement's shortest TTL.
    expect(await book.leaseFor(now + 10)).toBe(3);
    expect(grants[2]).toBe(LEASE_TTL_MIN_MS);
    // Passed windows are forgotten (swept at most once a second).
    now += 5_000;
    await book.leaseFor(now + 1_000);
    expect(book.size).toBe(1);
  });

  it('opens another lease for a window when one is full or forgotten', async () => {
    const now = 2_000_000;
    const { api, grants } = fakeApi();
    const book = new LeaseBook(api, async () => true, () => now);
    const first = await book.leaseFor(now + 5_000);
    for (let i = 1; i < KEYS_PER_LEASE; i++) expect(await book.leaseFor(now + 5_000)).toBe(first);
    expect(await book.leaseFor(now + 5_000)).toBe(first + 1);
    book.forget(first + 1);
    await new Promise((r) => setImmediate(r));
    expect(await book.leaseFor(now + 5_000)).toBe(first + 2);
    expect(grants.length).toBe(3);
    expect(await book.remainingMs(1)).toBe(1234);
    expect(await book.remainingMs(99)).toBeNull();
  });

  it('attach: a guard the transaction cannot see (written above its start ts) is checked at a fresh snapshot', async () => {
    const { api } = fakeApi();
    let guardNow = true;
    const book = new LeaseBook(api, async () => guardNow, () => 0);
    const tx = (guard: boolean) => ({ get: async () => (guard ? new Uint8Array([1]) : null) }) as unknown as Transaction;
    await expect(book.attach(tx(true), Buffer.from('k'), 1)).resolves.toBeUndefined();
    await expect(book.attach(tx(false), Buffer.from('k'), 1)).resolves.toBeUndefined();
    guardNow = false;
    await expect(book.attach(tx(false), Buffer.from('k'), 1)).rejects.toMatchObject({ code: 'LeaseNotFound' });
    await expect(book.attach(tx(true), Buffer.from('k'), 1)).resolves.toBeUndefined();
  });
});
