import { LIMITS, type KeyError, type LockInfo, type Ts, type VersionedPair } from '@flotilla/proto';
import { ClientError } from '../errors';
import { checkKey, checkRange, type Bytes } from '../bytes';
import type { LockResolver } from './resolver';
import type { Pacer } from './pacer';
import type { TxnTransport } from './transport';
import { decodeValue } from './value';

/** VersionedValue is a value and its version: the commit ts of the write that set it; lease: the lease it was written with (null: none; value.ts). */
export interface VersionedValue {
  value: Uint8Array;
  version: Ts;
  lease: number | null;
}

/** LeasedPair: a scanned pair, its value decoded (value.ts), with the lease it was written with. */
export type LeasedPair = VersionedPair & { lease: number | null };

/** decodedPair: a pair as a store sent it, its value decoded (the stored bytes may carry a lease; value.ts). */
function decodedPair(p: VersionedPair): LeasedPair {
  const d = decodeValue(p.value);
  return { ...p, value: d.value, lease: d.lease };
}

/** hexKey is a Map key for bytes. */
export function hexKey(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('hex');
}

/**
 * Snapshot reads the transactional keyspace as of one timestamp, across
 * Regions (Percolator's snapshot read). A key locked by a transaction that
 * started at or before ts makes the read resolve the lock through its
 * primary (LockResolver) or, while that transaction is alive, back off and
 * read again, within the pacer's deadline (then ClientError 'Timeout'): a
 * read never returns a torn result.
 */
export class Snapshot {
  constructor(
    private readonly t: TxnTransport,
    readonly ts: Ts,
    private readonly resolver: LockResolver,
    /** pacer: the call's (a transaction's reads share its deadline), or a factory giving each read its own. */
    private readonly pacer: Pacer | (() => Pacer),
  ) {}

  async get(key: Bytes): Promise<Uint8Array | null> {
    return (await this.getWithVersion(key))?.value ?? null;
  }

  /** getWithVersion returns the value and its version (commit ts), or null when the key has no value at ts. */
  async getWithVersion(key: Bytes): Promise<VersionedValue | null> {
    const [v] = await this.batchGetWithVersion([key]);
    return v ?? null;
  }

  async batchGet(keys: readonly Bytes[]): Promise<(Uint8Array | null)[]> {
    return (await this.batchGetWithVersion(keys)).map((v) => v?.value ?? null);
  }

  /** batchGetWithVersion returns, in the order of keys, each key's value and version (null = absent at ts). */
  async batchGetWithVersion(keys: readonly Bytes[]): Promise<(VersionedValue | null)[]> {
    const ks = keys.map((k, i) => checkKey(k, `keys[${i}]`));
    if (ks.length === 0) return [];
    const found = await this.readKeys(ks);
    return ks.map((k) => {
      const p = found.get(hexKey(k));
      if (!p) return null;
      const d = decodeValue(p.value);
      return { value: d.value, version: p.version, lease: d.lease };
    });
  }

  /** scan returns up to limit pairs (with versions) of [start, end) at ts in key order, empty end = to the end. */
  async scan(start: Bytes, end: Bytes, limit: number = LIMITS.maxScanLimit): Promise<LeasedPair[]> {
    const { start: s, end: e } = checkRange(start, end);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new ClientError('InvalidArgument', `limit: expected a positive integer, got ${limit}`);
    const out: LeasedPair[] = [];
    const pacer = this.pacerOf();
    let cur: Uint8Array | null = s;
    while (cur !== null && out.length < limit) {
      const page = await this.t.scanPage(cur, e, Math.min(limit - out.length, LIMITS.maxScanLimit), this.ts);
      const locks = locksOf(page.errors, 'scan');
      if (locks.length > 0) {
        await this.clear(locks, 'scan', pacer);
        continue;
      }
      for (const p of page.pairs) out.push(decodedPair(p));
      cur = page.resumeKey;
    }
    return out.slice(0, limit);
  }

  private pacerOf(): Pacer {
    return typeof this.pacer === 'function' ? this.pacer() : this.pacer;
  }

  /** readKeys reads keys at ts until no lock hides any of them; a page with locks is read again whole after resolving. */
  private async readKeys(keys: Uint8Array[]): Promise<Map<string, VersionedPair>> {
    const pacer = this.pacerOf();
    for (;;) {
      const r = await this.t.batchGet(keys, this.ts);
      const locks = locksOf(r.errors, 'batchGet');
      if (locks.length === 0) {
        pacer.reset('lock');
        const found = new Map<string, VersionedPair>();
        for (const p of r.pairs) found.set(hexKey(p.key), p);
        return found;
      }
      await this.clear(locks, 'batchGet', pacer);
    }
  }

  /** clear resolves locks; while some belong to live transactions it backs off, and at the deadline gives up with Timeout. */
  private async clear(locks: LockInfo[], what: string, pacer: Pacer): Promise<void> {
    const live = (await this.resolver.resolve(locks, this.ts)).length;
    if (live === 0) return;
    if (!(await pacer.wait('lock'))) {
      const l = locks[0]!;
      throw new ClientError('Timeout', `snapshot ${what} at ${this.ts}: ${live} key(s) still locked by live transactions at the deadline (e.g. one of start_ts ${l.startTs}, ttl ${l.ttlMs} ms)`);
    }
  }
}

/** locksOf returns the locks of KeyIsLocked errors; any other KeyError on a read is a store bug. */
export function locksOf(errors: readonly KeyError[], what: string): LockInfo[] {
  const out: LockInfo[] = [];
  for (const e of errors) {
    if (e.type !== 'KeyIsLocked') throw new ClientError('Unavailable', `store answered a snapshot ${what} with a ${e.type} key error`);
    out.push(e.lock);
  }
  return out;
}
