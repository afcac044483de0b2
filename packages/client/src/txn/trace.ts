/**
 * TxnPhase names a step of a transactional call whose time TxnTrace
 * reports (a debugging and benchmarking aid: bench:txn --trace sums them).
 *   startTs         waiting for the start_ts from the oracle
 *   fn              the caller's function (its reads, and their lock waits)
 *   prewrite        one round of prewrites, every Region in parallel, to the last answer
 *   resolve         resolving other transactions' locks met by a prewrite
 *   commitTs        waiting for the commit_ts from the oracle
 *   commitPrimary   the primary's commit, to its answer (the commit point)
 *   secondaries     the secondaries' commit (in the background unless waited for)
 *   rollback        rolling back our locks after an abort
 *   sleepLock       backing off on a live lock (reads and prewrites)
 *   sleepRetry      backing off before running fn again after an abort
 */
export type TxnPhase = 'startTs' | 'fn' | 'prewrite' | 'resolve' | 'commitTs' | 'commitPrimary' | 'secondaries' | 'rollback' | 'sleepLock' | 'sleepRetry';

/** TxnTrace receives each phase's duration as it ends (ms, by performance.now()); it must not throw. */
export type TxnTrace = (phase: TxnPhase, ms: number) => void;

/** timed runs fn and reports its duration as phase (also when it throws); with no trace it only runs fn. */
export async function timed<T>(trace: TxnTrace | undefined, phase: TxnPhase, fn: () => Promise<T>): Promise<T> {
  if (trace === undefined) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    trace(phase, performance.now() - t0);
  }
}
