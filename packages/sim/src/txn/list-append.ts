// checkListAppend: the list-append checker in the manner of Elle (Kingsbury
// & Alvaro, "Elle: Inferring Isolation Anomalies from Experimental
// Observations", VLDB 2020). Transactions append unique values to lists and
// read whole lists; because a list's prefix order is its version order, the
// longest read of a key tells the order of every append it contains, and
// from those orders and the reads the checker infers ww, wr and rw
// dependencies between transactions (elle/graph.ts), then looks for cycles
// and classifies them (elle/cycles.ts). Anomalies that need no graph (G1a,
// G1b, incompatible orders, ...) come from elle/versions.ts.
//
// What it reports as a bug is what snapshot isolation forbids: G0, G1a,
// G1b, G1c, G-single, and the order anomalies. G2 (cycles with two or more
// rw edges: write skew) is allowed under SI and is listed apart in
// `allowed`. Not checked: G-nonadjacent (Elle's refinement of G2 that SI
// also forbids) and appends no read ever saw (they give no edge).
import type { TxnRecord } from './history';
import { buildGraph } from './elle/graph';
import { findCycles } from './elle/cycles';
import { ALLOWED_UNDER_SI, type Anomaly } from './elle/types';
import { Capped, committedReads, externalReads, indexAppends, inferOrders, internalAnomalies, lostAppends, readAnomalies } from './elle/versions';

export type { Anomaly, AnomalyType, Edge, EdgeType } from './elle/types';

/** ListAppendResult: ok when no anomaly SI forbids was found. */
export interface ListAppendResult {
  ok: boolean;
  /** anomalies SI forbids (capped at 20 per read-anomaly type; see dropped). */
  anomalies: Anomaly[];
  /** allowed: cycles SI allows (G2), for the record. */
  allowed: Anomaly[];
  /** dropped: how many anomalies of a type were left out of the list. */
  dropped: Record<string, number>;
  stats: { txns: number; ok: number; fail: number; info: number; keys: number; edges: number; components: number };
}

/** checkListAppend checks a list-append history (see the file header). Throws on a malformed history (a value appended twice). */
export function checkListAppend(history: readonly TxnRecord[]): ListAppendResult {
  const appenders = indexAppends(history);
  const out = new Capped();
  const reads = committedReads(history);
  internalAnomalies(history, out);
  readAnomalies(reads, appenders, out);
  const orders = inferOrders(reads, out);
  lostAppends(history, reads, out);
  const graph = buildGraph(appenders, orders, externalReads(history));
  const cycles = findCycles(graph);
  const anomalies = [...out.list];
  const allowed: Anomaly[] = [];
  for (const a of cycles.anomalies) (ALLOWED_UNDER_SI.has(a.type) ? allowed : anomalies).push(a);
  const count = (s: TxnRecord['status']) => history.filter((t) => t.status === s).length;
  return {
    ok: anomalies.length === 0,
    anomalies,
    allowed,
    dropped: out.dropped(),
    stats: { txns: history.length, ok: count('ok'), fail: count('fail'), info: count('info'), keys: new Set([...appenders.keys(), ...orders.keys()]).size, edges: graph.edges, components: cycles.components },
  };
}

/** explainListAppend renders a result for a test failure or the CLI: one line per anomaly. */
export function explainListAppend(r: ListAppendResult): string {
  const lines = r.anomalies.map((a) => `${a.type}: ${a.explanation}`);
  for (const [type, n] of Object.entries(r.dropped)) lines.push(`(${n} more ${type} not listed)`);
  return lines.join('\n');
}
