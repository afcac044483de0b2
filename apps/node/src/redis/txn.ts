import type { FlotillaClient, Transaction } from '@flotilla/client';
import type { CasResult } from '@flotilla/proto';
import type { KvClient } from './context';
import { leaseBookOf } from './lease-book';
import type { Reply } from './resp';
import type { RmwRunner, Step } from './rmw';

// txn.ts: the front on the transactional keyspace (`--keyspace txn`). The
// command handlers are written against KvClient and RmwRunner; here are the
// two ways to give them transactions: TxnKeyspace (each call its own
// snapshot read or transaction, for commands outside MULTI) and TxnScope
// (every call inside one transaction, for EXEC and multi-key commands).

/** TxnClient: the FlotillaClient calls the transactional keyspace needs (lease: key expiry, commands/expiry.ts). */
export type TxnClient = Pick<FlotillaClient, 'txn' | 'snapshot' | 'lease'>;

/** Entry: a key's value and the lease it was written with (null: it does not expire). */
export interface Entry {
  value: Uint8Array;
  lease: number | null;
}

/** Keyspace: which of Flotilla's two keyspaces the front serves (docs/transactions.md "Raw or transactional keys"). */
export type Keyspace = 'raw' | 'txn';

/**
 * ExpiryCheck: whether a key written with this lease reads as absent now.
 * Redis never returns a key past its expiry; placement deletes expired
 * keys a little later (within the lease window and the reaper's bound), so
 * reads on the txn front filter them meanwhile (lazy expiry, as Redis
 * does on access). LeaseBook.expired decides.
 */
export type ExpiryCheck = (leaseId: number) => Promise<boolean>;

/** expiryOf: the ExpiryCheck of a front's client (its one lease book). */
export function expiryOf(client: TxnClient): ExpiryCheck {
  const book = leaseBookOf(client);
  return (id) => book.expired(id);
}

/** unexpired: v, or null when it carries a lease that has expired. */
async function unexpired<T extends { lease: number | null }>(v: T | null, expired: ExpiryCheck | undefined): Promise<T | null> {
  if (v === null || v.lease === null || expired === undefined) return v;
  return (await expired(v.lease)) ? null : v;
}

const same = (a: Uint8Array | null, b: Uint8Array | null): boolean => (a === null || b === null ? a === b : Buffer.compare(a, b) === 0);

/**
 * TxnScope runs every KvClient call inside one Transaction: reads at its
 * start_ts (seeing its own writes), writes buffered until it commits.
 * `wrote` tells EXEC whether there is anything to commit; `failure` keeps
 * the first error of the transaction itself (a read that timed out), which
 * must abort the whole EXEC rather than become one command's error reply.
 */
export class TxnScope implements KvClient {
  wrote = false;
  failure: unknown = undefined;

  constructor(
    readonly tx: Transaction,
    /** expired: filters keys past their expiry from every read (none: reads as stored). */
    private readonly expired?: ExpiryCheck,
  ) {}

  private async guard<T>(p: () => Promise<T>): Promise<T> {
    try {
      return await p();
    } catch (err) {
      this.failure ??= err;
      throw err;
    }
  }

  async get(key: Uint8Array): Promise<Uint8Array | null> {
    return (await this.getEntry(key))?.value ?? null;
  }

  /** getEntry reads the value with its lease (expiry.ts: TTL, KEEPTTL; INCR & co keep the lease); an expired key reads as absent. */
  async getEntry(key: Uint8Array): Promise<Entry | null> {
    const v = await unexpired(await this.guard(() => this.tx.getWithVersion(key)), this.expired);
    return v === null ? null : { value: v.value, lease: v.lease };
  }

  async batchGet(keys: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    const vs = await this.guard(() => this.tx.batchGetWithVersion(keys));
    return Promise.all(vs.map(async (v) => (await unexpired(v, this.expired))?.value ?? null));
  }

  /** scan marks expired pairs (not dropped: the scan command still takes its cursor from them); their leases come from one batch read. */
  async scan(start: Uint8Array, end: Uint8Array, limit: number): Promise<{ key: Uint8Array; value: Uint8Array; expired?: boolean }[]> {
    const pairs = await this.guard(() => this.tx.scan(start, end, limit));
    if (this.expired === undefined || pairs.length === 0) return pairs;
    const vs = await this.guard(() => this.tx.batchGetWithVersion(pairs.map((p) => p.key)));
    return Promise.all(pairs.map(async (p, i) => ((await unexpired(vs[i] ?? null, this.expired)) === null ? { ...p, expired: true } : p)));
  }

  /** put buffers the write (a limit it breaks, like the transaction's key count, fails this one command); the key no longer expires (Redis' SET). */
  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.tx.put(key, value);
    this.wrote = true;
  }

  /** putWith buffers the write with lease (null: none). A new lease must be attached first (LeaseBook.attach); keeping the key's own is safe as it is (expiry.ts). */
  async putWith(key: Uint8Array, value: Uint8Array, lease: number | null): Promise<void> {
    this.tx.put(key, value, { lease });
    this.wrote = true;
  }

  async delete(key: Uint8Array): Promise<void> {
    this.tx.delete(key);
    this.wrote = true;
  }

  async batchPut(pairs: readonly { key: Uint8Array; value: Uint8Array }[]): Promise<void> {
    for (const p of pairs) await this.put(p.key, p.value);
  }

  /** cas inside a transaction: the read is at start_ts and the commit's conflict check makes read and write one step; the key keeps its lease unless clearTtl. */
  async cas(key: Uint8Array, expected: Uint8Array | null, value: Uint8Array | null, opts?: { clearTtl?: boolean }): Promise<CasResult> {
    const entry = await this.getEntry(key);
    const previous = entry?.value ?? null;
    if (!same(previous, expected)) return { succeeded: false, previous };
    await (value === null ? this.delete(key) : this.putWith(key, value, opts?.clearTtl === true ? null : (entry?.lease ?? null)));
    return { succeeded: true, previous };
  }
}

/** ScopeRmw runs a read-modify-write step directly in the scope's transaction (no combining: the transaction is already one atomic step). */
export class ScopeRmw implements RmwRunner {
  constructor(
    private readonly scope: TxnScope,
    readonly stats: RmwRunner['stats'],
  ) {}

  async run(key: Uint8Array, step: Step): Promise<Reply> {
    const entry = await this.scope.getEntry(key);
    const r = step(entry?.value ?? null);
    if (!('keep' in r)) await (r.next === null ? this.scope.delete(key) : this.scope.putWith(key, r.next, r.clearTtl === true ? null : (entry?.lease ?? null)));
    return r.reply;
  }
}

/**
 * TxnKeyspace is KvClient on the transactional keyspace for commands
 * outside MULTI: reads at a fresh snapshot (one instant across Regions, so
 * MGET and a pipeline's run of GETs are consistent), writes as one
 * transaction per call (1PC when its keys share a Region), and cas as a
 * transaction that reads and writes (what the RmwCombiner runs INCR on).
 * Blind writes (SET, MSET) are group-committed by WriteGroup.
 */
export class TxnKeyspace implements KvClient {
  private readonly group: WriteGroup;
  private readonly expired: ExpiryCheck | undefined;

  /** expired: what filters keys past their expiry from reads (default: the client's lease book; false: reads as stored). */
  constructor(
    private readonly client: TxnClient,
    expired: ExpiryCheck | false = expiryOf(client),
  ) {
    this.group = new WriteGroup(client);
    this.expired = expired === false ? undefined : expired;
  }

  async get(key: Uint8Array): Promise<Uint8Array | null> {
    return (await unexpired(await (await this.client.snapshot()).getWithVersion(key), this.expired))?.value ?? null;
  }

  async batchGet(keys: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    const vs = await (await this.client.snapshot()).batchGetWithVersion(keys);
    return Promise.all(vs.map(async (v) => (await unexpired(v, this.expired))?.value ?? null));
  }

  /** scan marks expired pairs (the scan command takes its cursor from every pair and answers only the live ones). */
  async scan(start: Uint8Array, end: Uint8Array, limit: number): Promise<{ key: Uint8Array; value: Uint8Array; expired?: boolean }[]> {
    const pairs = await (await this.client.snapshot()).scan(start, end, limit);
    return Promise.all(pairs.map(async (p) => ((await unexpired(p, this.expired)) === null ? { key: p.key, value: p.value, expired: true } : { key: p.key, value: p.value })));
  }

  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.group.write([{ key, value }]);
  }

  batchPut(pairs: readonly { key: Uint8Array; value: Uint8Array }[]): Promise<void> {
    return this.group.write(pairs);
  }

  cas(key: Uint8Array, expected: Uint8Array | null, value: Uint8Array | null, opts?: { clearTtl?: boolean }): Promise<CasResult> {
    return this.client.txn((tx) => new TxnScope(tx, this.expired).cas(key, expected, value, opts));
  }
}

interface PendingWrite {
  pairs: readonly { key: Uint8Array; value: Uint8Array }[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** MAX_GROUP_KEYS bounds the keys of one group commit (well inside TXN_LIMITS.maxKeys and maxBytes for ordinary values). */
export const MAX_GROUP_KEYS = 1000;

/**
 * WriteGroup group-commits blind writes: while one transaction is in
 * flight, the writes that arrive wait, and the next transaction carries
 * all of them (for a key written twice, the later value: arrival order).
 * Without it, 50 connections SETting one hot key would each run a
 * transaction and nearly all would write-conflict; with it there is one
 * transaction per round trip. Each write still takes effect between its
 * request and its reply (at its group's commit ts), and a connection waits
 * for its reply before its next command, so per-connection order holds.
 */
class WriteGroup {
  private waiting: PendingWrite[] = [];
  private busy = false;

  constructor(private readonly client: TxnClient) {}

  write(pairs: readonly { key: Uint8Array; value: Uint8Array }[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ pairs, resolve, reject });
      if (!this.busy) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.waiting.length > 0) {
        let keys = 0;
        let n = 0;
        while (n < this.waiting.length && (n === 0 || keys + this.waiting[n]!.pairs.length <= MAX_GROUP_KEYS)) keys += this.waiting[n++]!.pairs.length;
        const batch = this.waiting.splice(0, n);
        const latest = new Map<string, { key: Uint8Array; value: Uint8Array }>();
        for (const w of batch) for (const p of w.pairs) latest.set(Buffer.from(p.key.buffer, p.key.byteOffset, p.key.length).toString('latin1'), p);
        try {
          await this.client.txn((tx) => {
            for (const p of latest.values()) tx.put(p.key, p.value);
          });
          for (const w of batch) w.resolve();
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.busy = false;
    }
  }
}
