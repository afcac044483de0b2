import { compareKeys } from '@flotilla/proto';

/** MemLock is one 1PC transaction's in-memory lock on its keys, held from before its commit ts is fetched until its entry applies or fails. */
export interface MemLock {
  readonly keys: readonly Uint8Array[];
  readonly startTs: bigint;
  readonly primary: Uint8Array;
}

const hex = (k: Uint8Array): string => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');

/**
 * MemLockTable is the store's memory lock table (TiKV's concurrency
 * manager) for the 1PC fast path: a leader locks a 1PC transaction's keys
 * here BEFORE it asks placement's oracle for the commit ts, and releases
 * them when the entry applies (or the attempt fails). Snapshot reads on the
 * leader that meet a memory lock of start_ts <= their ts wait for it
 * (operation/query.ts). Several 1PC transactions may lock the same key: the
 * one applied second fails its write-conflict check at apply.
 */
export class MemLockTable {
  private readonly byKey = new Map<string, Set<MemLock>>();
  private count = 0;

  constructor(readonly capacity: number) {}

  /** size: memory locks held (each is one 1PC in flight). */
  get size(): number {
    return this.count;
  }

  /** add locks keys for startTs; undefined when the table is full (the caller answers ServerIsBusy). */
  add(keys: readonly Uint8Array[], startTs: bigint, primary: Uint8Array): MemLock | undefined {
    if (this.count >= this.capacity) return undefined;
    const l: MemLock = { keys, startTs, primary };
    for (const k of keys) {
      const h = hex(k);
      let set = this.byKey.get(h);
      if (set === undefined) this.byKey.set(h, (set = new Set()));
      set.add(l);
    }
    this.count++;
    return l;
  }

  release(l: MemLock): void {
    let found = false;
    for (const k of l.keys) {
      const h = hex(k);
      const set = this.byKey.get(h);
      if (set === undefined || !set.delete(l)) continue;
      found = true;
      if (set.size === 0) this.byKey.delete(h);
    }
    if (found) this.count--;
  }

  /** blockingKey returns a memory lock of start_ts <= ts on key, if any. */
  blockingKey(key: Uint8Array, ts: bigint): MemLock | undefined {
    const set = this.byKey.get(hex(key));
    if (set === undefined) return undefined;
    for (const l of set) if (l.startTs <= ts) return l;
    return undefined;
  }

  /** minStartTs is the smallest start_ts of a memory lock on a key of [start, end) (an empty end is unbounded), if any: a watch's resolved ts stays below it (watch/resolved.ts). */
  minStartTs(start: Uint8Array, end: Uint8Array): bigint | undefined {
    let min: bigint | undefined;
    if (this.count === 0) return min;
    for (const set of this.byKey.values()) {
      for (const l of set) {
        if (min !== undefined && l.startTs >= min) continue;
        if (l.keys.some((k) => compareKeys(k, start) >= 0 && (end.length === 0 || compareKeys(k, end) < 0))) min = l.startTs;
      }
    }
    return min;
  }

  /** blockingRange returns a memory lock of start_ts <= ts on a key of [start, end) (an empty end is unbounded). */
  blockingRange(start: Uint8Array, end: Uint8Array, ts: bigint): MemLock | undefined {
    if (this.count === 0) return undefined;
    for (const set of this.byKey.values()) {
      for (const l of set) {
        if (l.startTs > ts) continue;
        for (const k of l.keys) if (compareKeys(k, start) >= 0 && (end.length === 0 || compareKeys(k, end) < 0)) return l;
      }
    }
    return undefined;
  }
}
