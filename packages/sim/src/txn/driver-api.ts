// driverTxnApi: the TxnApi over @flotilla/client's Percolator driver (runTxn
// over any TxnTransport: the simulation's, or FlotillaClient's own through
// client.txn). Outcomes as the workloads record them:
//   committed                      ok
//   TxnAbortedError                fail (nothing visible, ever)
//   the function itself threw      fail (a read failed: nothing was sent)
//   anything else (Undetermined,   info (the safe reading: it may have committed)
//   a timeout during commit, ...)
import { runTxn, TxnAbortedError, type Transaction, type TxnOptions, type TxnOutcome, type TxnTransport } from '@flotilla/client';
import type { TxnApi, TxnHandle, TxnRunOutcome } from './api';

/** RunFn runs a function in a transaction (runTxn bound to a transport, or client.txn). */
export type RunFn = <T>(fn: (tx: Transaction) => Promise<T>) => Promise<TxnOutcome<T>>;

/** driverTxnApi adapts a RunFn to the workloads' TxnApi. */
export function driverTxnApi(run: RunFn): TxnApi {
  return {
    async run<T>(fn: (tx: TxnHandle) => Promise<T>): Promise<TxnRunOutcome<T>> {
      let thrown: unknown = undefined;
      try {
        const o = await run(async (tx) => {
          try {
            return await fn({ batchGet: (keys) => tx.batchGet(keys), put: (k, v) => tx.put(k, v) });
          } catch (e) {
            thrown = e;
            throw e;
          }
        });
        return { status: 'ok', value: o.value, startTs: o.startTs, commitTs: o.commitTs };
      } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        if (e instanceof TxnAbortedError || (thrown !== undefined && e === thrown)) return { status: 'fail', error };
        return { status: 'info', error };
      }
    },
  };
}

/** transportTxnApi: the driver over a TxnTransport (the simulation's). */
export function transportTxnApi(t: TxnTransport, opts: TxnOptions = {}): TxnApi {
  return driverTxnApi((fn) => runTxn(t, fn, opts));
}
