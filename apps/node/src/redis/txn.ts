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

/** TxnClient: the FlotillaClient calls the transactional keyspace needs. */
export type TxnClient = Pick<FlotillaClient, 'txn' | 'snapshot'>;

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

  batchGet(keys: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    return this.guard(() => this.tx.batchGet(keys));
  }

  async scan(start: Uint8Array, end: Uint8Array, limit: number): Promise<{ key: Uint8Array; value: Uint8Array }[]> {
    return this.guard(() => this.tx.scan(start, end, limit));
  }

  /** put buffers the write (a limit it breaks, like the transaction's key count, fails this one command). */
  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    this.tx.put(key, value);
    this.wrote = true;
  }

  async delete(key: Uint8Array): Promise<void> {
    this.tx.delete(key);
    this.wrote = true;
  }

  async batchPut(pairs: readonly { key: Uint8Array; value: Uint8Array }[]): Promise<void> {
    for (const p of pairs) await this.put(p.key, p.value);
  }

  /** cas inside a transaction: the read is at start_ts and the commit's conflict check makes read and write one step. */
  async cas(key: Uint8Array, expected: Uint8Array | null, value: Uint8Array | null): Promise<CasResult> {
    const previous = await this.get(key);
    if (!same(previous, expected)) return { succeeded: false, previous };
    await (value === null ? this.delete(key) : this.put(key, value));
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
    const r = step(await this.scope.get(key));
    if (!('keep' in r)) await (r.next === null ? this.scope.delete(key) : this.scope.put(key, r.next));
    return r.reply;
  }
}

/**
 * TxnKeyspace is KvClient on the transactional keyspace for commands
 * outside MULTI: reads at a fresh snapshot (one instant across Regions, so
 * MGET and a pipeline's run of GETs are consistent), writes as one
 * transaction per call (1PC when its keys share a Region), and cas as a
 * transaction that reads and writes (what the RmwCombiner runs INCR on).
 */
export class TxnKeyspace implements KvClient {
  constructor(private readonly client: TxnClient) {}

  async get(key: Uint8Array): Promise<Uint8Array | null> {
    return (await this.client.snapshot()).get(key);
  }

  async batchGet(keys: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    return (await this.client.snapshot()).batchGet(keys);
  }

  async scan(start: Uint8Array, end: Uint8Array, limit: number): Promise<{ key: Uint8Array; value: Uint8Array }[]> {
    return (await (await this.client.snapshot()).scan(start, end, limit)).map((p) => ({ key: p.key, value: p.value }));
  }

  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    await this.client.txn((tx) => tx.put(key, value));
  }

  async batchPut(pairs: readonly { key: Uint8Array; value: Uint8Array }[]): Promise<void> {
    await this.client.txn((tx) => {
      for (const p of pairs) tx.put(p.key, p.value);
    });
  }

  cas(key: Uint8Array, expected: Uint8Array | null, value: Uint8Array | null): Promise<CasResult> {
    return this.client.txn((tx) => new TxnScope(tx).cas(key, expected, value));
  }
}
