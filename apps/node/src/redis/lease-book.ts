import { ClientError, guardKey, type LeaseClient, type Transaction } from '@flotilla/client';

// lease-book.ts: the leases a txn-keyspace front expires keys with. A key
// that expires is written with a lease (its stored value records it; the
// revocation deletes it while it still carries that lease). One lease per
// key would cost a grant (~220/s, a placement log entry and a guard
// transaction) per EXPIRE and one of the 100,000 leases per key, so keys
// whose deadlines fall in the same short window share one: the window is
// 100 ms for deadlines up to 51.2 s away and grows with the TTL (about
// 1/512 of it, a power of two times 100 ms), which bounds the leases one
// front holds at about 6,000 however the deadlines spread over 24 h.

/** LEASE_TTL_MIN_MS and LEASE_TTL_MAX_MS: placement's LEASE_LIMITS (minTtlMs, maxTtlMs). */
export const LEASE_TTL_MIN_MS = 200;
export const LEASE_TTL_MAX_MS = 24 * 3600_000;
/** KEYS_PER_LEASE: attaches before the book opens another lease for the same window (placement allows 9,999; re-attached keys count twice here). */
export const KEYS_PER_LEASE = 9_000;
/** WINDOW_MIN_MS: the narrowest window of deadlines that share a lease. */
export const WINDOW_MIN_MS = 100;

/** windowOf: the width of the window a deadline ttlMs away falls in: WINDOW_MIN_MS times the largest power of two at most ttlMs / 512. */
export function windowOf(ttlMs: number): number {
  let w = WINDOW_MIN_MS;
  while (w * 2 * 512 <= ttlMs) w *= 2;
  return w;
}

/** BookLease is one granted lease: its ID, the earliest it can expire (our clock), and the keys attached through it. */
interface BookLease {
  id: number;
  expiresNoEarlierThanMs: number;
  keys: number;
}

/** LeaseApiOfBook: the lease calls the book makes (LeaseClient has them). */
export type LeaseApiOfBook = Pick<LeaseClient, 'grant' | 'attachKey' | 'timeToLive'> & Partial<Pick<LeaseClient, 'attachKeyBatched'>>;

/**
 * ATTACH_MODE_ENV: FLOTILLA_REDIS_LEASE_ATTACH=single makes the front attach
 * each key with its own leaseAttach request (the path before attaches were
 * batched, kept so old and new can be measured side by side:
 * bench/redis-expire.ts --attach); anything else batches them.
 */
export const ATTACH_MODE_ENV = 'FLOTILLA_REDIS_LEASE_ATTACH';

/** LeaseBookOptions: batchAttach (default true): coalesce the attaches of concurrent commands into leaseAttachBatch requests. */
export interface LeaseBookOptions {
  batchAttach?: boolean;
}

/**
 * LeaseBook hands out, for a deadline, a lease that expires no earlier
 * than it and at most one window later (plus placement's reaper bound),
 * granting one when the window has none. The lease is never kept alive:
 * it expires by itself and placement deletes its keys. Entries are
 * forgotten once their window has passed; concurrent callers for one
 * window share one grant.
 */
export class LeaseBook {
  private readonly windows = new Map<string, Promise<BookLease>>();
  /** ends: each lease this book granted and the window end it was granted for (our clock), kept a while past it (sweep). */
  private readonly ends = new Map<number, number>();
  /** others: leases this book did not grant, by what placement said of them (expired) and until when that answer is trusted. */
  private readonly others = new Map<number, { expiresAtMs: number; checkedUntilMs: number }>();
  private lastSweepMs = 0;
  /** granted counts grants (INFO, tests). */
  granted = 0;

  constructor(
    private readonly api: LeaseApiOfBook,
    /** guardNow: whether the lease's guard key exists at a fresh snapshot (the client's). */
    private readonly guardNow: (leaseId: number) => Promise<boolean>,
    private readonly now: () => number = Date.now,
    private readonly opts: LeaseBookOptions = {},
  ) {}

  /** leaseFor: a lease that expires at or after deadlineMs (our wall clock), shared with deadlines of the same window. */
  async leaseFor(deadlineMs: number): Promise<number> {
    const now = this.now();
    this.sweep(now);
    const w = windowOf(deadlineMs - now);
    const end = Math.ceil(deadlineMs / w) * w;
    const id = `${w}:${end}`;
    let p = this.windows.get(id);
    if (p) {
      const l = await p.catch(() => undefined);
      if (l && l.keys < KEYS_PER_LEASE && l.expiresNoEarlierThanMs >= deadlineMs) {
        l.keys++;
        return l.id;
      }
      if (this.windows.get(id) === p) this.windows.delete(id);
    }
    p = this.grant(this.now(), end);
    this.windows.set(id, p);
    p.catch(() => {
      if (this.windows.get(id) === p) this.windows.delete(id);
    });
    const l = await p;
    l.keys++;
    return l.id;
  }

  private async grant(sentMs: number, endMs: number): Promise<BookLease> {
    const ttlMs = Math.min(LEASE_TTL_MAX_MS, Math.max(LEASE_TTL_MIN_MS, endMs - sentMs));
    const g = await this.api.grant(ttlMs);
    this.granted++;
    this.ends.set(g.id, endMs);
    // Placement counts the TTL from when it received the grant, after sentMs: the lease cannot expire before sentMs + ttl.
    return { id: g.id, expiresNoEarlierThanMs: sentMs + g.ttlMs, keys: 0 };
  }

  /** forget drops a lease that turned out gone (revoked by someone, or expired): the next deadline of its window gets a new one. */
  forget(leaseId: number): void {
    for (const [id, p] of this.windows) {
      void p.then((l) => {
        if (l.id === leaseId && this.windows.get(id) === p) this.windows.delete(id);
      }, () => {});
    }
  }

  /**
   * attach records key in the lease's list and makes sure, for tx, that the
   * lease's revocation did not commit before tx's start ts (LeaseNotFound
   * if it did), by reading the guard in tx, as LeaseClient.attach does. A
   * lease granted while tx ran (inside EXEC, or by a command whose
   * transaction started while another command's grant was in flight) may
   * have its guard written above tx's start ts, so tx does not see it;
   * then a guard that exists at a fresh snapshot proves the same: the
   * revocation deletes the guard (which is written once, at the grant), so
   * it has not committed by that later timestamp either.
   */
  async attach(tx: Transaction, key: Uint8Array, leaseId: number): Promise<void> {
    if (this.opts.batchAttach !== false && this.api.attachKeyBatched) await this.api.attachKeyBatched(key, leaseId);
    else await this.api.attachKey(key, leaseId);
    if ((await tx.get(guardKey(leaseId))) !== null) return;
    if (!(await this.guardNow(leaseId))) throw new ClientError('LeaseNotFound', `lease ${leaseId} ended before this transaction could write with it`);
  }

  /** remainingMs: the lease's time left by placement's clock; null when it is gone (expired, revoked: its keys are being deleted). */
  async remainingMs(leaseId: number): Promise<number | null> {
    try {
      return (await this.api.timeToLive(leaseId)).remainingMs;
    } catch (err) {
      if (err instanceof ClientError && err.code === 'LeaseNotFound') return null;
      throw err;
    }
  }

  /**
   * expired: whether keys written with leaseId must read as absent now
   * (Redis never returns a key past its expiry; placement deletes it a
   * little later, within the window and the reaper's bound). A lease this
   * book granted expires at the end of the window it was granted for; of
   * another (another front's, a `flotilla put --lease` key's) placement is
   * asked, and the answer trusted for OTHER_CHECK_MS. A lease placement no
   * longer knows has ended: expired.
   */
  async expired(leaseId: number): Promise<boolean> {
    const now = this.now();
    const end = this.ends.get(leaseId);
    if (end !== undefined) return now >= end;
    const known = this.others.get(leaseId);
    if (known && now < known.checkedUntilMs) return now >= known.expiresAtMs;
    const left = await this.remainingMs(leaseId);
    if (this.others.size >= OTHER_LEASES_MAX) this.others.clear();
    const expiresAtMs = left === null ? -Infinity : now + left;
    // A gone lease stays gone; a live one may be kept alive, so its answer is trusted only briefly.
    this.others.set(leaseId, { expiresAtMs, checkedUntilMs: left === null ? Infinity : now + OTHER_CHECK_MS });
    return now >= expiresAtMs;
  }

  /** size: windows with a lease now (bounded by the window widths: about 6,000 over 24 h). */
  get size(): number {
    return this.windows.size;
  }

  private sweep(now: number): void {
    if (now - this.lastSweepMs < 1000) return;
    this.lastSweepMs = now;
    for (const [id, p] of this.windows) {
      const end = Number(id.slice(id.indexOf(':') + 1));
      if (end <= now) {
        this.windows.delete(id);
        void p.catch(() => {});
      }
    }
    // Past ENDS_KEEP_MS after its end a lease's keys are long deleted; were one left, placement answers that the lease is gone.
    for (const [id, end] of this.ends) if (end + ENDS_KEEP_MS <= now) this.ends.delete(id);
  }
}

/** OTHER_CHECK_MS: how long placement's answer on a lease this book did not grant is trusted (it may be kept alive meanwhile). */
export const OTHER_CHECK_MS = 1000;
/** OTHER_LEASES_MAX bounds the answers kept on other leases (cleared whole when full). */
const OTHER_LEASES_MAX = 10_000;
/** ENDS_KEEP_MS: how long past its end a granted lease's end is remembered. */
const ENDS_KEEP_MS = 10 * 60_000;

const books = new WeakMap<object, LeaseBook>();

/** leaseBookOf: the one book of a front's client (kept beside it, so every connection and EXEC of the front shares its leases). */
export function leaseBookOf(client: { lease: LeaseApiOfBook; snapshot(): Promise<{ get(key: Uint8Array): Promise<Uint8Array | null> }> }): LeaseBook {
  let b = books.get(client);
  if (!b) {
    const batchAttach = process.env[ATTACH_MODE_ENV] !== 'single';
    books.set(client, (b = new LeaseBook(client.lease, async (id) => (await (await client.snapshot()).get(guardKey(id))) !== null, Date.now, { batchAttach })));
  }
  return b;
}
