// TxnApi: the slice of a transactional client the txn workloads use, so one
// workload runs against the real Percolator driver (@flotilla/client's
// txn API over the simulated cluster or real processes) or against the
// in-memory reference model (model.ts) that tests the harness's wiring.

/** TxnHandle is what a transaction's function gets: snapshot reads (seeing its own writes) and buffered writes. */
export interface TxnHandle {
  batchGet(keys: readonly string[]): Promise<(Uint8Array | null)[]>;
  put(key: string, value: Uint8Array): void;
}

/**
 * TxnRunOutcome is a transaction's fate as the workload records it:
 *   ok    committed (value is what the function returned)
 *   fail  definitely not committed, never will be (the driver's TxnAbortedError)
 *   info  undetermined: it may have committed (any other error: the safe reading)
 */
export type TxnRunOutcome<T> = { status: 'ok'; value: T; startTs: bigint; commitTs: bigint } | { status: 'fail' | 'info'; error: string };

/**
 * TxnApi runs a function in a transaction. The function may run more than
 * once (the driver retries write conflicts): only its last run counts, so
 * it must build what it records afresh each time.
 */
export interface TxnApi {
  run<T>(fn: (tx: TxnHandle) => Promise<T>): Promise<TxnRunOutcome<T>>;
}
