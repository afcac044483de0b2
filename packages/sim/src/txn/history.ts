// The transaction history the txn checkers read (Jepsen/Elle's shape): one
// record per transaction a client ran, with its micro-operations and its
// outcome. Values are what the client observed, not what it meant to do:
// a read carries the list (or balance) it saw.

/**
 * MicroOp is one operation inside a transaction. A read's value is the list
 * the transaction saw for key (the empty list for a key that does not exist),
 * or null when the client does not know it (the transaction failed or its
 * outcome is undetermined before the read returned).
 */
export type MicroOp = { f: 'append'; key: string; value: number } | { f: 'r'; key: string; value: number[] | null };

/**
 * TxnStatus is the client's verdict on a transaction: 'ok' committed (every
 * read value is what it saw), 'fail' definitely did not commit (aborted,
 * rolled back), 'info' undetermined (the primary's fate is unknown: it may
 * or may not have committed).
 */
export type TxnStatus = 'ok' | 'fail' | 'info';

/** TxnRecord is one transaction of a history. */
export interface TxnRecord {
  /** id is unique in the history (the checkers' anomaly reports name transactions by it). */
  id: number;
  /** process is the client that ran it. */
  process: number;
  status: TxnStatus;
  ops: MicroOp[];
  /** invokeTime / returnTime: a total order of client events (returnTime Infinity when undetermined). Optional: used for the real-time lost-append check. */
  invokeTime?: number;
  returnTime?: number;
  /** startTs / commitTs: the transaction's timestamps when the driver reports them (reports only). */
  startTs?: bigint;
  commitTs?: bigint;
  /** error: why a failed or undetermined transaction ended (reports only). */
  error?: string;
}

/** describeTxn renders a transaction for an anomaly report: `T12 (p3, ok) [r x [1 2]] [append x 3]`. */
export function describeTxn(t: TxnRecord): string {
  const ops = t.ops.map((o) => (o.f === 'append' ? `[append ${o.key} ${o.value}]` : `[r ${o.key} ${o.value === null ? '?' : `[${o.value.join(' ')}]`}]`));
  const ts = t.startTs !== undefined ? ` start ${t.startTs}${t.commitTs !== undefined ? ` commit ${t.commitTs}` : ''}` : '';
  return `T${t.id} (p${t.process}, ${t.status}${ts}) ${ops.join(' ')}`;
}
