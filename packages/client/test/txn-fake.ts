import { compareKeys, keyInRange, type KeyError, type LockInfo, type Mutation, type Ts, type TxnCommand, type TxnRead, type TxnResult, type TxnStatus, type VersionedPair } from '@flotilla/proto';
import type { GroupResult, KeyGroup, ReadResult, ScanPage, TxnTransport } from '../src/txn/transport';
import { ClientError } from '../src/errors';

// An in-memory Percolator faithful enough to drive the client's transaction
// driver: the three tables (data, write, lock), prewrite's conflict and
// lock checks (all-or-nothing per command), commit, rollback records,
// checkTxnStatus with TTL expiry, resolveLock, heartbeats, 1PC, and snapshot
// reads that answer KeyIsLocked. FakeTxnTransport groups keys by fixed
// Region boundaries and can lose answers or fail commands on purpose.

const hex = (k: Uint8Array): string => Buffer.from(k).toString('hex');
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const physical = (ts: Ts): number => Number(ts >> 18n);

type WriteKind = 'put' | 'delete' | 'lock' | 'rollback';
interface WriteRecord {
  commitTs: Ts;
  startTs: Ts;
  kind: WriteKind;
}
type StoredLock = LockInfo & { value?: Uint8Array };

/** FakeTso hands out hybrid timestamps (physical ms << 18 | logical), strictly increasing. */
export class FakeTso {
  private last = 0n;
  next(): Ts {
    const now = BigInt(Date.now()) << 18n;
    this.last = now > this.last ? now : this.last + 1n;
    return this.last;
  }
}

export class Percolator {
  readonly data = new Map<string, Map<Ts, Uint8Array>>();
  readonly writes = new Map<string, WriteRecord[]>(); // newest first
  readonly locks = new Map<string, StoredLock>();

  constructor(readonly tso: FakeTso) {}

  apply(cmd: TxnCommand): TxnResult {
    switch (cmd.type) {
      case 'prewrite':
        return this.prewrite(cmd);
      case 'commit': {
        const errors: KeyError[] = [];
        for (const k of cmd.keys) {
          const e = this.commitKey(k, cmd.startTs, cmd.commitTs);
          if (e) errors.push(e);
        }
        return { type: 'commit', errors, commitTs: cmd.commitTs };
      }
      case 'rollback': {
        const errors: KeyError[] = [];
        for (const k of cmd.keys) {
          const c = this.record(k, cmd.startTs);
          if (c && c.kind !== 'rollback') errors.push({ type: 'Committed', key: k, startTs: cmd.startTs, commitTs: c.commitTs });
          else this.rollbackKey(k, cmd.startTs);
        }
        return { type: 'rollback', errors };
      }
      case 'checkTxnStatus':
        return { type: 'checkTxnStatus', ...this.checkTxnStatus(cmd) };
      case 'resolveLock': {
        let resolved = 0;
        const keys = cmd.keys ?? [...this.locks.keys()].map(unhex);
        for (const k of keys) {
          const l = this.locks.get(hex(k));
          if (!l || l.startTs !== cmd.startTs) continue;
          resolved++;
          if (cmd.commitTs > 0n) this.commitKey(k, cmd.startTs, cmd.commitTs);
          else this.rollbackKey(k, cmd.startTs);
        }
        return { type: 'resolveLock', resolved };
      }
      case 'txnHeartBeat': {
        const l = this.locks.get(hex(cmd.primary));
        if (!l || l.startTs !== cmd.startTs) return { type: 'txnHeartBeat', ttlMs: 0, errors: [{ type: 'TxnLockNotFound', key: cmd.primary, startTs: cmd.startTs }] };
        l.ttlMs = Math.max(l.ttlMs, cmd.adviseTtlMs);
        return { type: 'txnHeartBeat', ttlMs: l.ttlMs, errors: [] };
      }
    }
  }

  read(r: TxnRead): TxnResult {
    const keys = r.type === 'get' ? [r.key] : r.type === 'batchGet' ? r.keys : this.keysIn(r.startKey, r.endKey);
    const errors: KeyError[] = [];
    const pairs: VersionedPair[] = [];
    for (const k of keys) {
      const l = this.locks.get(hex(k));
      if (l && l.kind !== 'lock' && l.startTs <= r.ts) {
        errors.push({ type: 'KeyIsLocked', lock: lockInfo(l) });
        continue;
      }
      const v = this.valueAt(k, r.ts);
      if (v) pairs.push(v);
      if (r.type === 'scan' && pairs.length >= r.limit) break;
    }
    return { type: 'read', pairs: errors.length > 0 ? [] : pairs, errors };
  }

  /** valueAt is the committed value of k at ts with its version. */
  valueAt(k: Uint8Array, ts: Ts): VersionedPair | null {
    for (const w of this.writes.get(hex(k)) ?? []) {
      if (w.commitTs > ts || w.kind === 'rollback' || w.kind === 'lock') continue;
      if (w.kind === 'delete') return null;
      return { key: k, value: this.data.get(hex(k))!.get(w.startTs)!, version: w.commitTs };
    }
    return null;
  }

  private keysIn(start: Uint8Array, end: Uint8Array): Uint8Array[] {
    const all = new Set([...this.writes.keys(), ...this.locks.keys()]);
    return [...all].map(unhex).filter((k) => keyInRange(k, start, end)).sort(compareKeys);
  }

  private prewrite(cmd: Extract<TxnCommand, { type: 'prewrite' }>): TxnResult {
    const errors: KeyError[] = [];
    for (const m of cmd.mutations) {
      const l = this.locks.get(hex(m.key));
      if (l && l.startTs !== cmd.startTs) {
        errors.push({ type: 'KeyIsLocked', lock: lockInfo(l) });
        continue;
      }
      const mine = this.record(m.key, cmd.startTs);
      if (mine?.kind === 'rollback') errors.push({ type: 'Rolledback', key: m.key, startTs: cmd.startTs });
      const newer = (this.writes.get(hex(m.key)) ?? []).find((w) => w.commitTs >= cmd.startTs && w.kind !== 'rollback' && w.startTs !== cmd.startTs);
      if (newer) errors.push({ type: 'WriteConflict', key: m.key, primary: cmd.primary, startTs: cmd.startTs, conflictStartTs: newer.startTs, conflictCommitTs: newer.commitTs });
    }
    if (errors.length > 0) return { type: 'prewrite', errors };
    for (const m of cmd.mutations) this.lockKey(m, cmd);
    if (!cmd.onePc) return { type: 'prewrite', errors: [] };
    const commitTs = this.tso.next();
    for (const m of cmd.mutations) this.commitKey(m.key, cmd.startTs, commitTs);
    return { type: 'prewrite', errors: [], onePcCommitTs: commitTs };
  }

  private lockKey(m: Mutation, cmd: Extract<TxnCommand, { type: 'prewrite' }>): void {
    if (this.record(m.key, cmd.startTs)) return; // already committed by this txn: an idempotent retry
    const lock: StoredLock = { key: m.key, primary: cmd.primary, startTs: cmd.startTs, ttlMs: cmd.lockTtlMs, kind: m.op, minCommitTs: 0n, txnSize: cmd.txnSize };
    this.locks.set(hex(m.key), lock);
    if (m.op === 'put') {
      const d = this.data.get(hex(m.key)) ?? new Map<Ts, Uint8Array>();
      d.set(cmd.startTs, m.value);
      this.data.set(hex(m.key), d);
    }
  }

  private commitKey(k: Uint8Array, startTs: Ts, commitTs: Ts): KeyError | undefined {
    const l = this.locks.get(hex(k));
    if (l && l.startTs === startTs) {
      if (commitTs < l.minCommitTs) return { type: 'CommitTsExpired', key: k, startTs, commitTs, minCommitTs: l.minCommitTs };
      this.locks.delete(hex(k));
      this.addWrite(k, { commitTs, startTs, kind: l.kind });
      return undefined;
    }
    const r = this.record(k, startTs);
    if (r && r.kind !== 'rollback') return undefined;
    return r ? { type: 'Rolledback', key: k, startTs } : { type: 'TxnLockNotFound', key: k, startTs };
  }

  private rollbackKey(k: Uint8Array, startTs: Ts): void {
    const l = this.locks.get(hex(k));
    if (l && l.startTs === startTs) this.locks.delete(hex(k));
    if (!this.record(k, startTs)) this.addWrite(k, { commitTs: startTs, startTs, kind: 'rollback' });
  }

  private checkTxnStatus(cmd: Extract<TxnCommand, { type: 'checkTxnStatus' }>): TxnStatus {
    const l = this.locks.get(hex(cmd.primary));
    if (l && l.startTs === cmd.startTs) {
      if (physical(l.startTs) + l.ttlMs < physical(cmd.currentTs)) {
        this.rollbackKey(cmd.primary, cmd.startTs);
        return { status: 'rolledBack', action: 'ttlExpireRollback' };
      }
      return { status: 'locked', lock: lockInfo(l) };
    }
    const r = this.record(cmd.primary, cmd.startTs);
    if (r && r.kind !== 'rollback') return { status: 'committed', commitTs: r.commitTs };
    if (r) return { status: 'rolledBack', action: 'none' };
    if (!cmd.rollbackIfNotExist) return { status: 'rolledBack', action: 'none' };
    this.rollbackKey(cmd.primary, cmd.startTs);
    return { status: 'rolledBack', action: 'lockNotExistRollback' };
  }

  private record(k: Uint8Array, startTs: Ts): WriteRecord | undefined {
    return (this.writes.get(hex(k)) ?? []).find((w) => w.startTs === startTs);
  }

  private addWrite(k: Uint8Array, w: WriteRecord): void {
    const list = this.writes.get(hex(k)) ?? [];
    list.push(w);
    list.sort((a, b) => (a.commitTs > b.commitTs ? -1 : a.commitTs < b.commitTs ? 1 : 0));
    this.writes.set(hex(k), list);
  }
}

function lockInfo(l: StoredLock): LockInfo {
  return { key: l.key, primary: l.primary, startTs: l.startTs, ttlMs: l.ttlMs, kind: l.kind, minCommitTs: l.minCommitTs, txnSize: l.txnSize };
}

/** Fault decides, before a command reaches the store, what happens to it: apply normally, apply and lose the answer, or fail without applying. */
export type Fault = 'lose' | 'fail' | undefined;

/** FakeTxnTransport: TxnTransport over one Percolator, with Regions cut at `splits`. */
export class FakeTxnTransport implements TxnTransport {
  readonly sent: TxnCommand[] = [];
  fault: ((cmd: TxnCommand) => Fault) | undefined;

  constructor(
    readonly store: Percolator,
    readonly splits: Uint8Array[] = [],
  ) {}

  async timestamp(): Promise<Ts> {
    await Promise.resolve();
    return this.store.tso.next();
  }

  regionOf(k: Uint8Array): number {
    let i = 0;
    while (i < this.splits.length && compareKeys(k, this.splits[i]!) >= 0) i++;
    return i + 1;
  }

  async forKeys(keys: readonly Uint8Array[], build: (regionKeys: Uint8Array[], group: KeyGroup) => TxnCommand): Promise<GroupResult[]> {
    const groups = new Map<number, Uint8Array[]>();
    for (const k of keys) groups.set(this.regionOf(k), [...(groups.get(this.regionOf(k)) ?? []), k]);
    const out = await Promise.all([...groups].map(async ([regionId, ks]) => ({ keys: ks, result: await this.send(build(ks, { regionId, allKeys: ks.length === keys.length })) })));
    return out;
  }

  forKey(key: Uint8Array, cmd: TxnCommand): Promise<TxnResult> {
    void key;
    return this.send(cmd);
  }

  async batchGet(keys: readonly Uint8Array[], ts: Ts): Promise<ReadResult> {
    await Promise.resolve();
    const groups = new Map<number, Uint8Array[]>();
    for (const k of keys) groups.set(this.regionOf(k), [...(groups.get(this.regionOf(k)) ?? []), k]);
    const pairs: VersionedPair[] = [];
    const errors: KeyError[] = [];
    for (const ks of groups.values()) {
      const r = this.store.read({ type: 'batchGet', keys: ks, ts });
      if (r.type !== 'read') throw new Error('unreachable');
      pairs.push(...r.pairs);
      errors.push(...r.errors);
    }
    return { pairs, errors };
  }

  async scanPage(start: Uint8Array, end: Uint8Array, limit: number, ts: Ts): Promise<ScanPage> {
    await Promise.resolve();
    const rid = this.regionOf(start);
    const regionEnd = this.splits[rid - 1];
    const to = regionEnd && (end.length === 0 || compareKeys(regionEnd, end) < 0) ? regionEnd : end;
    const r = this.store.read({ type: 'scan', startKey: start, endKey: to, limit, ts });
    if (r.type !== 'read') throw new Error('unreachable');
    if (r.errors.length > 0) return { pairs: [], errors: r.errors, resumeKey: start };
    if (r.pairs.length >= limit) {
      const last = r.pairs[r.pairs.length - 1]!.key;
      const next = new Uint8Array(last.length + 1);
      next.set(last);
      return { pairs: r.pairs, errors: [], resumeKey: next };
    }
    return { pairs: r.pairs, errors: [], resumeKey: to === end ? null : to };
  }

  private async send(cmd: TxnCommand): Promise<TxnResult> {
    await Promise.resolve();
    this.sent.push(cmd);
    const f = this.fault?.(cmd);
    if (f === 'fail') throw new ClientError('Unavailable', `fake: ${cmd.type} failed before applying`);
    const r = this.store.apply(cmd);
    if (f === 'lose') throw new ClientError('Timeout', `fake: ${cmd.type} applied, answer lost`);
    return r;
  }
}
