// startTxnWorkload: one txn workload (bank or list-append) with its clients
// over a TxnApi, and its verdict. The simulation and the chaos runner both
// start one and check it at the end.
import { mulberry32 } from '@flotilla/transport';
import { checkBank } from './bank';
import { checkListAppend, explainListAppend } from './list-append';
import type { TxnApi } from './api';
import { BankWorkload, ListAppendWorkload, type TxnCounts, type WorkloadEnv } from './workloads';

export type TxnWorkloadKind = 'bank' | 'list-append';
export const TXN_WORKLOADS: readonly TxnWorkloadKind[] = ['bank', 'list-append'];

/** TxnVerdict: the checker's answer and a flat summary for the JSON line. */
export interface TxnVerdict {
  ok: boolean;
  summary: Record<string, unknown>;
  /** explanation: one line per violation (empty when ok). */
  explanation: string;
}

export interface TxnWorkloadOptions {
  kind: TxnWorkloadKind;
  seed: number;
  clients: number;
  /** keys: the list-append keys, or the bank's accounts. */
  keys: readonly string[];
  /** setupDeadlineMs: the bank's initial balances must be committed by then (Date.now() clock). */
  setupDeadlineMs: number;
}

export interface RunningTxnWorkload {
  /** finished settles when every client saw env.running() turn false and its last transaction ended. */
  finished: Promise<void>;
  counts: TxnCounts;
  /** finalRead reads everything in one more transaction after the clients stopped, again until it commits or deadlineMs passes; says whether it did. */
  finalRead(deadlineMs: number): Promise<boolean>;
  check(): TxnVerdict;
}

/** retryUntil runs attempt until it says true or the deadline passes, 100 ms apart. */
async function retryUntil(attempt: () => Promise<boolean>, deadlineMs: number, sleep: (ms: number) => Promise<void>): Promise<boolean> {
  while (Date.now() < deadlineMs) {
    if (await attempt()) return true;
    await sleep(100);
  }
  return false;
}

/** startTxnWorkload sets the workload up (the bank's balances) and starts its clients. */
export async function startTxnWorkload(api: TxnApi, env: WorkloadEnv, o: TxnWorkloadOptions): Promise<RunningTxnWorkload> {
  const rngOf = (i: number) => mulberry32(o.seed * 7919 + i + 1);
  if (o.kind === 'bank') {
    const w = new BankWorkload(api, o.keys, env);
    if (!(await w.setup(o.setupDeadlineMs))) throw new Error('bank: the initial balances did not commit before the setup deadline');
    const finished = Promise.all(Array.from({ length: o.clients }, (_, i) => w.client(i, rngOf(i)))).then(() => undefined);
    return {
      finished,
      counts: w.counts,
      finalRead: (deadlineMs) => retryUntil(() => w.readAll(), deadlineMs, env.sleep),
      check: () => {
        const r = checkBank(w.accounts, w.total, w.reads);
        const summary = { workload: 'bank', accounts: w.accounts.length, total: w.total, ...w.counts, transfers: w.transfers, reads: r.reads, violations: r.violations };
        return { ok: r.ok, summary, explanation: r.sample.map((v) => v.explanation).join('\n') };
      },
    };
  }
  const w = new ListAppendWorkload(api, o.keys, env);
  const finished = Promise.all(Array.from({ length: o.clients }, (_, i) => w.client(i, rngOf(i)))).then(() => undefined);
  return {
    finished,
    counts: w.counts,
    finalRead: (deadlineMs) => retryUntil(() => w.readAll(o.clients), deadlineMs, env.sleep),
    check: () => {
      const r = checkListAppend(w.history);
      const byType: Record<string, number> = {};
      for (const a of r.anomalies) byType[a.type] = (byType[a.type] ?? 0) + 1;
      const summary = { workload: 'list-append', ...w.counts, edges: r.stats.edges, anomalies: byType, allowedG2: r.allowed.length };
      return { ok: r.ok, summary, explanation: explainListAppend(r) };
    },
  };
}
