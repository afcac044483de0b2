// The list-append checker's report types (elle/*.ts share them).

/** EdgeType: ww (T1's append precedes T2's in a key's version order), wr (T2 read T1's append), rw (T1 read a state T2's append overwrote). */
export type EdgeType = 'ww' | 'wr' | 'rw';

/** Edge is one dependency between two transactions, with the key and values that prove it. */
export interface Edge {
  from: number;
  to: number;
  type: EdgeType;
  key: string;
  /** why: e.g. "T3 appended 4 after T1's 2 on x" (the witness). */
  why: string;
}

/**
 * AnomalyType names what the checker found. Cycle classes (Adya's, as Elle
 * names them): G0 (ww only), G1c (ww + wr, at least one wr), G-single
 * (exactly one rw), G2 (two or more rw: write skew and its kin, allowed under
 * snapshot isolation). Read anomalies: G1a (aborted read), G1b (intermediate
 * read). Order anomalies: incompatible-order (two reads of a key that are not
 * prefixes of one another: no single version order explains both),
 * duplicate-elements, unknown-value (a read saw a value no transaction
 * appended), internal (a transaction's read disagrees with its own earlier
 * reads and appends), lost-append (a read that began after an appending
 * transaction was acknowledged does not contain its value: a stale snapshot).
 */
export type AnomalyType = 'G0' | 'G1a' | 'G1b' | 'G1c' | 'G-single' | 'G2' | 'incompatible-order' | 'duplicate-elements' | 'unknown-value' | 'internal' | 'lost-append';

/** Anomaly names the transactions (and, for a cycle, the edges) that show it. */
export interface Anomaly {
  type: AnomalyType;
  txns: number[];
  /** edges: the cycle, in order (cycle anomalies only). */
  edges?: Edge[];
  explanation: string;
}

/** ALLOWED_UNDER_SI: anomaly classes snapshot isolation permits (reported apart, never as a bug). */
export const ALLOWED_UNDER_SI: ReadonlySet<AnomalyType> = new Set(['G2']);
