// Per-key analysis of a list-append history: who appended each value, the
// version order each key's longest read implies, and the read anomalies that
// need no graph (G1a, G1b, incompatible orders, duplicates, unknown values,
// internal inconsistency, lost appends).
import { describeTxn, type TxnRecord } from '../history';
import type { Anomaly } from './types';

/** Appenders: key → appended value → the transaction that appended it (any status). */
export type Appenders = Map<string, Map<number, TxnRecord>>;

/** MAX_PER_TYPE bounds how many anomalies of one read type a report lists (a planted bug makes thousands). */
const MAX_PER_TYPE = 20;

/**
 * indexAppends maps every appended value to its transaction. The workload
 * appends each value at most once per key; a repeated value is a bad
 * history (the checker could not tell the writes apart), a clear Error.
 */
export function indexAppends(history: readonly TxnRecord[]): Appenders {
  const out: Appenders = new Map();
  for (const t of history) {
    for (const op of t.ops) {
      if (op.f !== 'append') continue;
      let m = out.get(op.key);
      if (!m) out.set(op.key, (m = new Map()));
      const prev = m.get(op.value);
      if (prev) throw new Error(`bad list-append history: value ${op.value} appended to ${op.key} twice (T${prev.id} and T${t.id}); appended values must be unique per key`);
      m.set(op.value, t);
    }
  }
  return out;
}

/** ExternalRead is a committed transaction's read of a key before its own first append to that key. */
export interface ExternalRead {
  txn: TxnRecord;
  key: string;
  list: number[];
}

/** externalReads lists the reads whose edges the graph takes: committed transactions, before their own append to the key. */
export function externalReads(history: readonly TxnRecord[]): ExternalRead[] {
  const out: ExternalRead[] = [];
  for (const t of history) {
    if (t.status !== 'ok') continue;
    const appended = new Set<string>();
    for (const op of t.ops) {
      if (op.f === 'append') appended.add(op.key);
      else if (op.value !== null && !appended.has(op.key)) out.push({ txn: t, key: op.key, list: op.value });
    }
  }
  return out;
}

const isPrefix = (a: readonly number[], b: readonly number[]): boolean => a.length <= b.length && a.every((v, i) => b[i] === v);

/** Capped caps each anomaly type at MAX_PER_TYPE. */
class Capped {
  readonly list: Anomaly[] = [];
  private readonly counts = new Map<string, number>();
  push(a: Anomaly): void {
    const n = (this.counts.get(a.type) ?? 0) + 1;
    this.counts.set(a.type, n);
    if (n <= MAX_PER_TYPE) this.list.push(a);
  }
  /** dropped says how many of each type were left out. */
  dropped(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, n] of this.counts) if (n > MAX_PER_TYPE) out[k] = n - MAX_PER_TYPE;
    return out;
  }
}

/**
 * inferOrders takes, per key, the longest list any committed read saw as
 * the key's version order; every other read must be a prefix of it (else
 * incompatible-order: the reads disagree on what was appended in what order).
 */
export function inferOrders(allReads: readonly { txn: TxnRecord; key: string; list: number[] }[], out: Capped): Map<string, number[]> {
  const orders = new Map<string, number[]>();
  const longestBy = new Map<string, TxnRecord>();
  for (const r of allReads) {
    const cur = orders.get(r.key);
    if (!cur || r.list.length > cur.length) {
      orders.set(r.key, r.list);
      longestBy.set(r.key, r.txn);
    }
  }
  const seen = new Set<string>();
  for (const r of allReads) {
    const order = orders.get(r.key)!;
    if (isPrefix(r.list, order)) continue;
    const other = longestBy.get(r.key)!;
    const pair = `${r.key}/${Math.min(r.txn.id, other.id)}/${Math.max(r.txn.id, other.id)}`;
    if (seen.has(pair)) continue;
    seen.add(pair);
    out.push({ type: 'incompatible-order', txns: [r.txn.id, other.id], explanation: `key ${r.key}: T${r.txn.id} read [${r.list.join(' ')}], T${other.id} read [${order.join(' ')}]: neither is a prefix of the other, so no version order explains both` });
  }
  return orders;
}

/** committedReads lists every read of a committed transaction (internal ones too: they also must fit the version order). */
export function committedReads(history: readonly TxnRecord[]): { txn: TxnRecord; key: string; list: number[] }[] {
  const out: { txn: TxnRecord; key: string; list: number[] }[] = [];
  for (const t of history) if (t.status === 'ok') for (const op of t.ops) if (op.f === 'r' && op.value !== null) out.push({ txn: t, key: op.key, list: op.value });
  return out;
}

/** readAnomalies finds duplicates, unknown values, G1a (aborted read) and G1b (intermediate read) in committed reads. */
export function readAnomalies(reads: readonly { txn: TxnRecord; key: string; list: number[] }[], appenders: Appenders, out: Capped): void {
  for (const r of reads) {
    const byValue = appenders.get(r.key) ?? new Map<number, TxnRecord>();
    if (new Set(r.list).size !== r.list.length) out.push({ type: 'duplicate-elements', txns: [r.txn.id], explanation: `T${r.txn.id} read ${r.key} = [${r.list.join(' ')}]: a value appears twice` });
    for (const v of r.list) {
      const w = byValue.get(v);
      if (!w) out.push({ type: 'unknown-value', txns: [r.txn.id], explanation: `T${r.txn.id} read ${v} in ${r.key}, which no transaction appended` });
      else if (w.status === 'fail' && w !== r.txn) out.push({ type: 'G1a', txns: [r.txn.id, w.id], explanation: `aborted read: T${r.txn.id} read ${r.key} = [${r.list.join(' ')}], which holds ${v} from T${w.id}, which failed: ${describeTxn(w)}` });
    }
    const last = r.list[r.list.length - 1];
    const w = last === undefined ? undefined : byValue.get(last);
    if (last === undefined || !w || w === r.txn) continue;
    const own = w.ops.filter((o) => o.f === 'append' && o.key === r.key).map((o) => o.value as number);
    if (own[own.length - 1] !== last) out.push({ type: 'G1b', txns: [r.txn.id, w.id], explanation: `intermediate read: T${r.txn.id} read ${r.key} ending at ${last}, but T${w.id} appended ${own.slice(own.indexOf(last) + 1).join(' ')} after it: ${describeTxn(w)}` });
  }
}

/** internalAnomalies: within one committed transaction, a read of a key must equal its earlier read plus its own appends since (or, with no earlier read, end with its own appends). */
export function internalAnomalies(history: readonly TxnRecord[], out: Capped): void {
  for (const t of history) {
    if (t.status !== 'ok') continue;
    const expected = new Map<string, number[]>(); // the whole list, once a read told us the prefix
    const blind = new Map<string, number[]>(); // own appends to a key not read yet
    for (const op of t.ops) {
      const exp = expected.get(op.key);
      if (op.f === 'append') {
        if (exp) exp.push(op.value);
        else blind.set(op.key, [...(blind.get(op.key) ?? []), op.value]);
        continue;
      }
      if (op.value === null) continue;
      const got = op.value;
      const suffix = blind.get(op.key) ?? [];
      const fits = exp ? exp.join(' ') === got.join(' ') : suffix.length <= got.length && suffix.every((v, i) => got[got.length - suffix.length + i] === v);
      if (!fits) {
        const want = exp ? `[${exp.join(' ')}]` : `a list ending in ${suffix.join(' ')}`;
        out.push({ type: 'internal', txns: [t.id], explanation: `T${t.id} read ${op.key} = [${got.join(' ')}] where its own reads and appends imply ${want}: ${describeTxn(t)}` });
      }
      expected.set(op.key, [...got]);
      blind.delete(op.key);
    }
  }
}

/**
 * lostAppends: snapshot isolation with oracle timestamps gives every
 * transaction a snapshot taken after it began, so a read by a transaction
 * invoked after an appending transaction was acknowledged must contain the
 * appended value. Needs invokeTime / returnTime; skipped where they are absent.
 */
export function lostAppends(history: readonly TxnRecord[], reads: readonly { txn: TxnRecord; key: string; list: number[] }[], out: Capped): void {
  const readsByKey = new Map<string, { txn: TxnRecord; set: Set<number>; list: number[] }[]>();
  for (const r of reads) {
    if (r.txn.invokeTime === undefined) continue;
    let l = readsByKey.get(r.key);
    if (!l) readsByKey.set(r.key, (l = []));
    l.push({ txn: r.txn, set: new Set(r.list), list: r.list });
  }
  for (const t of history) {
    if (t.status !== 'ok' || t.returnTime === undefined || !Number.isFinite(t.returnTime)) continue;
    for (const op of t.ops) {
      if (op.f !== 'append') continue;
      const miss = (readsByKey.get(op.key) ?? []).find((r) => r.txn !== t && r.txn.invokeTime! > t.returnTime! && !r.set.has(op.value));
      if (miss) out.push({ type: 'lost-append', txns: [t.id, miss.txn.id], explanation: `T${t.id} appended ${op.value} to ${op.key} and was acknowledged (event ${t.returnTime}) before T${miss.txn.id} began (event ${miss.txn.invokeTime}), yet T${miss.txn.id} read [${miss.list.join(' ')}]` });
    }
  }
}

export { Capped };
