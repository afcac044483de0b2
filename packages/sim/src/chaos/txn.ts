// txn.ts: the transaction workloads of `pnpm chaos --workload bank|list-append`:
// the same bank and list-append clients and checkers as the simulation
// (../txn/), here through @flotilla/client's txn driver (client.txnTransport())
// against the real processes, under the same nemeses.
import type { FlotillaClient } from '@flotilla/client';
import { transportTxnApi } from '../txn/driver-api';
import { startTxnWorkload, type RunningTxnWorkload, type TxnVerdict } from '../txn/run';
import { sleep } from './procs';
import { key, log, type Chaos } from './run';

/** TXN_OPTIONS: the driver's budget per transaction (a stalled store or a partition must not hang a client for long). */
const TXN_OPTIONS = { timeoutMs: 10_000, maxRetries: 10 } as const;

/** presplit puts every workload key in a Region of its own (the bank's accounts over --keys Regions), best effort within ~20 s. */
async function presplit(run: Chaos, client: FlotillaClient): Promise<number> {
  for (let i = 1; i < run.o.keys; i++) {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await client.split(key(i));
        break;
      } catch {
        await sleep(200);
      }
    }
  }
  return (await client.regions().catch(() => [])).length;
}

/** startTxnChaos splits the keyspace, sets the workload up and starts its clients (all on one FlotillaClient). */
export async function startTxnChaos(run: Chaos, client: FlotillaClient, running: () => boolean): Promise<RunningTxnWorkload> {
  const kind = run.o.workload === 'bank' ? 'bank' : 'list-append';
  const regions = await presplit(run, client);
  log(run, `${kind}: ${run.o.keys} keys over ${regions} Regions`);
  let events = 0;
  const env = { nextEvent: () => ++events, sleep, running, thinkMs: 20 };
  const api = transportTxnApi(client.txnTransport(), TXN_OPTIONS);
  const keys = Array.from({ length: run.o.keys }, (_, i) => key(i));
  const w = await startTxnWorkload(api, env, { kind, seed: run.o.seed, clients: run.o.clients, keys, setupDeadlineMs: Date.now() + 30_000 });
  // The ops count and the stall measure follow the transactions.
  const counted = setInterval(() => {
    run.counts.ops = w.counts.txns;
    if (w.counts.ok > run.counts.acked) {
      const at = run.now();
      run.stall.longestMs = Math.max(run.stall.longestMs, at - run.stall.lastAckMs);
      run.stall.lastAckMs = at;
    }
    run.counts.acked = w.counts.ok;
    run.counts.unknown = w.counts.info;
  }, 100);
  run.stall.lastAckMs = run.now();
  void w.finished.finally(() => clearInterval(counted));
  return w;
}

/** finishTxnChaos reads everything once more (30 s at most) and checks the history; unreadable is 1 when that read never committed. */
export async function finishTxnChaos(w: RunningTxnWorkload): Promise<{ verdict: TxnVerdict; unreadable: number }> {
  await w.finished;
  const read = await w.finalRead(Date.now() + 30_000);
  return { verdict: w.check(), unreadable: read ? 0 : 1 };
}
