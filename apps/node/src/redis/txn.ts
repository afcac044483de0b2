import type { FlotillaClient, Transaction } from '@flotilla/client';
import type { CasResult } from '@flotilla/proto';
import type { KvClient } from './context';
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

  constructor(readonly tx: Transaction) {}

  private async guard<T>(p: () => Promise<T>): Promise<T> {
    try {
      return await p();
    } catch (err) {
      this.failure ??= err;
      throw err;
    }
  }

  get(key: Uint8Array): Promise<Uint8Array | null> {
    return this.guard(() => this.tx.get(key));
  }

  /** getEntry reads the value with its lease (expiry.ts: TTL, KEEPTTL; INCR & co keep the lease). */
  async getEntry(key: Uint8Array): Promise<Entry | null> {
    const v = await this.guard(() => this.tx.getWithVersion(key));
    return v === null ? null : { value: v.value, lease: v.lease };
  }

  batchGet(keys: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    return this.guard(() => this.tx.batchGet(keys));
  }

  async scan(start: Uint8Array, end: Uint8Array, limit: number): Promise<{ key: Uint8Array; value: Uint8Array }[]> {
    return this.guard(() => this.tx.scan(start, end, limit));
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

  constructor(private readonly client: TxnClient) {
    this.group = new WriteGroup(client);
  }

  async get(key: Uint8Array): Promise<Uint8Array | null> {
    return (await this.client.snapshot()).get(key);
  }

  async batchGet(keys: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    return (await this.client.snapshot()).batchGet(keys);
  }

  async scan(start: Uint8Array, end: Uint8Array, limit: number): Promise<{ key: Uint8Array; value: Uint8Array }[]> {
    return (await (await this.client.snapshot()).scan(start, end, limit)).map((p) => ({ key: p.key, value: p.value }));
  }

  put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.group.write([{ key, value }]);
  }

  batchPut(pairs: readonly { key: Uint8Array; value: Uint8Array }[]): Promise<void> {
    return this.group.write(pairs);
  }

  cas(key: Uint8Array, expected: Uint8Array | null, value: Uint8Array | null, opts?: { clearTtl?: boolean }): Promise<CasResult> {
    return this.client.txn((tx) => new TxnScope(tx).cas(key, expected, value, opts));
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
