// The dependency graph of a list-append history (Adya's DSG as Elle infers
// it): nodes are the transactions that committed or may have (ok, info);
// edges come from each key's version order and from committed reads.
//   ww  T1 → T2: T2's append follows T1's in the key's version order.
//   wr  T1 → T2: T2 read a list whose last element T1 appended.
//   rw  T1 → T2: T1 read a list that T2's append (the next in the version
//       order) extended: T2 overwrote the state T1 saw.
// Failed transactions are no nodes: a read that saw one is G1a (versions.ts).
import type { TxnRecord } from '../history';
import type { Appenders, ExternalRead } from './versions';
import type { Edge, EdgeType } from './types';

export const WW = 1;
export const WR = 2;
export const RW = 4;
export const ALL = WW | WR | RW;
const BIT: Record<EdgeType, number> = { ww: WW, wr: WR, rw: RW };

/** DepGraph: from → to → a bit mask of edge types, and one witness edge per (from, to, type). */
export class DepGraph {
  readonly out = new Map<number, Map<number, number>>();
  private readonly witnesses = new Map<string, Edge>();
  edges = 0;

  add(e: Edge): void {
    if (e.from === e.to) return;
    let m = this.out.get(e.from);
    if (!m) this.out.set(e.from, (m = new Map()));
    const before = m.get(e.to) ?? 0;
    const bit = BIT[e.type];
    if (before & bit) return;
    m.set(e.to, before | bit);
    this.witnesses.set(`${e.from}>${e.to}>${e.type}`, e);
    this.edges++;
  }

  mask(from: number, to: number): number {
    return this.out.get(from)?.get(to) ?? 0;
  }

  /** witness is the edge of the given type from → to that the graph recorded first. */
  witness(from: number, to: number, type: EdgeType): Edge | undefined {
    return this.witnesses.get(`${from}>${to}>${type}`);
  }

  nodes(): number[] {
    const s = new Set<number>();
    for (const [a, m] of this.out) {
      s.add(a);
      for (const b of m.keys()) s.add(b);
    }
    return [...s];
  }
}

/** buildGraph derives the ww, wr and rw edges from the version orders and the committed external reads. */
export function buildGraph(appenders: Appenders, orders: Map<string, number[]>, reads: readonly ExternalRead[]): DepGraph {
  const g = new DepGraph();
  const writer = (key: string, v: number | undefined): TxnRecord | undefined => {
    if (v === undefined) return undefined;
    const t = appenders.get(key)?.get(v);
    return t && t.status !== 'fail' ? t : undefined;
  };
  for (const [key, order] of orders) {
    for (let i = 1; i < order.length; i++) {
      const a = writer(key, order[i - 1]);
      const b = writer(key, order[i]);
      if (a && b) g.add({ from: a.id, to: b.id, type: 'ww', key, why: `T${b.id} appended ${order[i]} right after T${a.id}'s ${order[i - 1]} on ${key}` });
    }
  }
  for (const r of reads) {
    const order = orders.get(r.key) ?? [];
    const last = r.list[r.list.length - 1];
    const w = writer(r.key, last);
    if (w) g.add({ from: w.id, to: r.txn.id, type: 'wr', key: r.key, why: `T${r.txn.id} read ${r.key} = [${r.list.join(' ')}], ending in T${w.id}'s ${last}` });
    // A read that is not a prefix of the order is an incompatible-order anomaly already; it gives no rw edge.
    if (!r.list.every((v, i) => order[i] === v)) continue;
    // The next version is the first later append by another transaction than the one
    // whose append the read ended at (a read ending inside a transaction's appends is G1b).
    let i = r.list.length;
    while (i < order.length && w && appenders.get(r.key)?.get(order[i]!) === w) i++;
    const next = order[i];
    const n = writer(r.key, next);
    if (n) g.add({ from: r.txn.id, to: n.id, type: 'rw', key: r.key, why: `T${r.txn.id} read ${r.key} = [${r.list.join(' ')}]; T${n.id} appended the next value ${next}` });
  }
  return g;
}
