import { LIMITS, TXN_LIMITS, compareKeys, type Logger, type Ts, type VersionedPair } from '@flotilla/proto';
import { ClientError } from '../errors';
import { checkKey, checkRange, checkValue, type Bytes } from '../bytes';
import { Committer, type TxnHooks } from './commit';
import { RETRYABLE_REASONS, TxnAbortedError } from './errors';
import { WriteBuffer } from './buffer';
import { DEFAULT_TXN_BACKOFF, Pacer, type PacerOptions } from './pacer';
import { LockResolver } from './resolver';
import { Snapshot, hexKey, type VersionedValue } from './snapshot';
import type { TxnTransport } from './transport';
import { timed, type TxnTrace } from './trace';
import { decodeValue, encodeValue } from './value';

/** TxnValue: a value as a transaction reads it; version null = written by this transaction; lease: the lease it was written with (null: none). */
export interface TxnValue {
  value: Uint8Array;
  version: Ts | null;
  lease: number | null;
}

export interface TxnOptions {
  /** maxRetries: how many times the function runs again after a retryable abort (WriteConflict, Rolledback); default 10. */
  maxRetries?: number;
  /** timeoutMs bounds the whole call, retries and lock waits included (default 20000). */
  timeoutMs?: number;
  /** lockTtlMs: the TTL of our locks; a reader may roll back a transaction whose primary lock is older than this (default 3000, heartbeats extend it). */
  lockTtlMs?: number;
  /** onePc: commit in one phase when every key is in one Region (default true). */
  onePc?: boolean;
  /** backoff between retries and lock waits (default 5..500 ms, equal jitter; lock waits never above 100 ms). */
  backoff?: PacerOptions;
  /** waitForSecondaries: resolve only after the secondaries' commit was tried too (default false: they commit in the background). */
  waitForSecondaries?: boolean;
  /** hooks: test seams (TxnHooks). */
  hooks?: TxnHooks;
  /**
   * rollbackInBackground: after a retryable abort, run fn again while the
   * aborted attempt's rollbacks are still on their way (waiting for them only
   * before the next commit and before the call ends); default true, false
   * waits for them first (the previous path).
   */
  rollbackInBackground?: boolean;
  /** trace receives the time of each phase of the call (trace.ts; bench:txn --trace): a debugging aid, off by default. */
  trace?: TxnTrace;
  logger?: Logger;
}

/** TxnOutcome is a committed transaction: the function's value, its start_ts and commit_ts (the version of every key it wrote). */
export interface TxnOutcome<T> {
  value: T;
  startTs: Ts;
  commitTs: Ts;
  /** attempts: how many times the function ran. */
  attempts: number;
}

/**
 * Transaction is what client.txn hands its function: snapshot reads at
 * start_ts that see the transaction's own buffered writes, and buffered
 * writes sent at commit. It is valid only while the function runs.
 */
export class Transaction {
  readonly buffer = new WriteBuffer();
  private done = false;
  /** leases: keys LeaseClient.attach attached in this transaction, by hex key: their puts carry that lease. */
  private readonly leases = new Map<string, number>();

  constructor(
    readonly startTs: Ts,
    private readonly snap: Snapshot,
  ) {}

  async get(key: Bytes): Promise<Uint8Array | null> {
    return (await this.getWithVersion(key))?.value ?? null;
  }

  /** getWithVersion returns the value, its version (commit ts) and lease; a key this transaction wrote has version null (not committed yet). */
  async getWithVersion(key: Bytes): Promise<TxnValue | null> {
    const [v] = await this.batchGetWithVersion([key]);
    return v ?? null;
  }

  async batchGet(keys: readonly Bytes[]): Promise<(Uint8Array | null)[]> {
    return (await this.batchGetWithVersion(keys)).map((v) => v?.value ?? null);
  }

  async batchGetWithVersion(keys: readonly Bytes[]): Promise<(TxnValue | null)[]> {
    this.live();
    const ks = keys.map((k, i) => checkKey(k, `keys[${i}]`));
    const unbuffered = ks.filter((k) => this.buffer.get(k) === undefined || this.buffer.get(k)!.op === 'lock');
    const read = unbuffered.length > 0 ? await this.snap.batchGetWithVersion(unbuffered) : [];
    const fromSnap = new Map<string, VersionedValue | null>();
    unbuffered.forEach((k, i) => fromSnap.set(Buffer.from(k).toString('hex'), read[i] ?? null));
    return ks.map((k) => {
      const m = this.buffer.get(k);
      if (m?.op === 'put') return { ...decodeValue(m.value), version: null };
      if (m?.op === 'delete') return null;
      return fromSnap.get(Buffer.from(k).toString('hex')) ?? null;
    });
  }

  /** scan returns up to limit pairs of [start, end) in key order as this transaction sees them (snapshot + its own writes). */
  async scan(start: Bytes, end: Bytes, limit: number = LIMITS.maxScanLimit): Promise<{ key: Uint8Array; value: Uint8Array }[]> {
    this.live();
    const { start: s, end: e } = checkRange(start, end);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new ClientError('InvalidArgument', `limit: expected a positive integer, got ${limit}`);
    const own = this.buffer.inRange(s, e);
    const deletes = own.filter((m) => m.op === 'delete').length;
    // Asking for `deletes` more covers the keys our own deletes hide.
    const snap: VersionedPair[] = await this.snap.scan(s, e, Math.min(limit + deletes, LIMITS.maxScanLimit));
    const merged = new Map<string, { key: Uint8Array; value: Uint8Array }>();
    for (const p of snap) merged.set(Buffer.from(p.key).toString('hex'), { key: p.key, value: p.value });
    for (const m of own) {
      const h = Buffer.from(m.key).toString('hex');
      if (m.op === 'put') merged.set(h, { key: m.key, value: decodeValue(m.value).value });
      else merged.delete(h);
    }
    return [...merged.values()].sort((a, b) => compareKeys(a.key, b.key)).slice(0, limit);
  }

  /**
   * put buffers key = value. The stored value records the lease (value.ts)
   * given in opts, or else the one LeaseClient.attach attached the key to
   * in this transaction, so that lease's revocation deletes the key while
   * this is still its value; with neither (or `lease: null`) the key is
   * detached from any lease it had, as etcd detaches it. Attaching the key
   * to the lease (placement's list) is the caller's job: LeaseClient.attach
   * or LeaseClient.put.
   */
  put(key: Bytes, value: Bytes, opts?: { lease?: number | null }): void {
    this.live();
    const k = checkKey(key, 'key');
    const lease = opts !== undefined && opts.lease !== undefined ? opts.lease : (this.leases.get(hexKey(k)) ?? null);
    if (lease !== null && (!Number.isSafeInteger(lease) || lease <= 0)) throw new ClientError('InvalidArgument', `lease: expected a positive integer ID, got ${String(lease)}`);
    this.buffer.put(k, encodeValue(checkValue(value, 'value'), lease));
  }

  /** attachLease makes later puts of key in this transaction carry lease (LeaseClient.attach calls it once the key is attached and the guard read). */
  attachLease(key: Bytes, lease: number): void {
    this.live();
    this.leases.set(hexKey(checkKey(key, 'key')), lease);
  }

  delete(key: Bytes): void {
    this.live();
    this.buffer.delete(checkKey(key, 'key'));
  }

  /** lockKeys makes the commit conflict with any write to keys committed after start_ts, without writing them (a read the transaction depends on). */
  lockKeys(keys: readonly Bytes[]): void {
    this.live();
    keys.forEach((k, i) => this.buffer.lock(checkKey(k, `keys[${i}]`)));
  }

  /** finish ends the function's use of the transaction. */
  finish(): void {
    this.done = true;
  }

  private live(): void {
    if (this.done) throw new ClientError('InvalidArgument', 'transaction: used after its function returned');
  }
}

/**
 * runTxn runs fn in a transaction and commits it (see docs/transactions.md):
 * start_ts from the oracle, fn's reads at start_ts, its writes buffered, then
 * optimistic 2PC (or 1PC). A retryable abort (WriteConflict, Rolledback)
 * runs fn again at a new start_ts, up to maxRetries times, with backoff.
 * Outcomes: the committed TxnOutcome; TxnAbortedError (nothing visible);
 * ClientError('Undetermined') only when the primary's commit was sent and
 * its fate could not be learned; whatever fn throws (nothing sent).
 */
export async function runTxn<T>(t: TxnTransport, fn: (tx: Transaction) => Promise<T> | T, opts: TxnOptions = {}): Promise<TxnOutcome<T>> {
  const o = checkOptions(opts);
  const trace = opts.trace;
  const pacer = new Pacer(Date.now() + o.timeoutMs, opts.backoff ?? DEFAULT_TXN_BACKOFF, trace);
  const resolver = new LockResolver(t);
  let last: TxnAbortedError | undefined;
  // rollingBack: the last aborted attempt's rollbacks, sent in the background (never rejects). At most one per call:
  // the next attempt waits for it before its own commit, and the call for it before it ends, so an aborted call leaves no lock.
  let rollingBack: Promise<void> | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      const startedAtMs = Date.now();
      const startTs = await timed(trace, 'startTs', () => t.timestamp());
      resolver.observe(startTs);
      const tx = new Transaction(startTs, new Snapshot(t, startTs, resolver, pacer));
      let value: T;
      try {
        value = await timed(trace, 'fn', async () => fn(tx));
      } finally {
        tx.finish();
      }
      const mutations = tx.buffer.mutations();
      if (mutations.length === 0) return { value, startTs, commitTs: startTs, attempts: attempt };
      await rollingBack;
      rollingBack = undefined;
      const committer = new Committer(t, resolver, pacer, startTs, mutations, {
        lockTtlMs: o.lockTtlMs,
        onePc: o.onePc,
        startedAtMs,
        waitForSecondaries: opts.waitForSecondaries ?? false,
        hooks: opts.hooks,
        logger: opts.logger,
        trace,
        rollbackInBackground: opts.rollbackInBackground ?? true,
      });
      try {
        const { commitTs } = await committer.commit();
        return { value, startTs, commitTs, attempts: attempt };
      } catch (err) {
        rollingBack = committer.pendingRollback;
        if (!(err instanceof TxnAbortedError) || !RETRYABLE_REASONS.has(err.reason)) throw err;
        last = err;
      }
      if (attempt > o.maxRetries || !(await pacer.wait('retry'))) {
        if (o.maxRetries === 0) throw last;
        throw new TxnAbortedError('RetriesExhausted', `${attempt} attempt(s) aborted; the last: ${last.message}`, last.keyError, last);
      }
    }
  } finally {
    await rollingBack;
  }
}

function checkOptions(opts: TxnOptions): { maxRetries: number; timeoutMs: number; lockTtlMs: number; onePc: boolean } {
  const maxRetries = opts.maxRetries ?? 10;
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const lockTtlMs = opts.lockTtlMs ?? 3000;
  if (!Number.isSafeInteger(maxRetries) || maxRetries < 0) throw new ClientError('InvalidArgument', `maxRetries: expected a non-negative integer, got ${maxRetries}`);
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new ClientError('InvalidArgument', `timeoutMs: expected a positive number, got ${timeoutMs}`);
  if (!Number.isSafeInteger(lockTtlMs) || lockTtlMs < 1 || lockTtlMs > TXN_LIMITS.maxLockTtlMs) {
    throw new ClientError('InvalidArgument', `lockTtlMs: expected an integer in 1..${TXN_LIMITS.maxLockTtlMs} (TXN_LIMITS.maxLockTtlMs), got ${lockTtlMs}`);
  }
  return { maxRetries, timeoutMs, lockTtlMs, onePc: opts.onePc ?? true };
}
