// `pnpm chaos --duration-s N [--seed S] [--clients 4] [--keys 16] [--lease-reads] [--partitions] [--workload register|bank|list-append|watch|lock] [--plant-bug] [--placement-members 1|3]`
//
// Chaos test of a local cluster of REAL processes: placement + 3 stores
// (`flotilla placement` / `flotilla store` from apps/node), concurrent
// FlotillaClients recording every invocation and completion (a failed write
// is indeterminate: it may or may not have applied), and faults: SIGKILL +
// restart, SIGSTOP/SIGCONT, leader transfers (admin request to the leader)
// and splits; with --partitions every process runs in its own network
// namespace and network partitions join the table. At the end the network
// heals, every process is resumed, the history gets a final read of every
// key, and it is checked for linearizability (which includes "every
// acknowledged write is read back"). Prints ops, faults and the verdict;
// exits 1 on a violation or when the cluster does not recover. With
// --workload bank|list-append the clients run transactions instead
// (txn.ts; the checkers in ../txn/), under the same faults; --workload
// watch runs watchers beside transactional writers (watch.ts, checked by
// watch-check.ts; merges join the faults), --workload lock runs lock
// contenders writing a fenced register (lock.ts, checked by lock-check.ts).
//
//   options.ts    the command line          cluster.ts   where processes live, startCluster
//   procs.ts      launch / kill a process   workload.ts  the recording clients, the final read
//   nemesis.ts    process faults, the table partition.ts the partition faults
//   run.ts        the run's shared state    ../netns/    the namespace topology
//   placement-faults.ts  the placement leader's SIGKILL / SIGSTOP (--placement-members 3)
//   txn.ts        the bank / list-append workloads over client.txnTransport()
//   watch.ts      the watch workload   watch-check.ts  its checker
//   lock.ts       the lock workload    lock-check.ts   its checker
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlotillaClient } from '@flotilla/client';
import { mulberry32 } from '@flotilla/transport';
import { checkKvHistory, explainFailure } from '../linearizability';
import { NetnsTopology, netnsUnavailable } from '../netns/topology';
import { netnsNodes, placementProcs, startCluster } from './cluster';
import { chaosFaults, drawChaosFault, resumeAll } from './nemesis';
import { PLACEMENT_FAULTS } from './placement-faults';
import { parseChaosArgs, USAGE, type ChaosOptions } from './options';
import { kill, killSync, sleep } from './procs';
import type { Chaos } from './run';
import { startLockChaos } from './lock';
import { finishTxnChaos, startTxnChaos } from './txn';
import { startWatchChaos, WATCH_FAULTS } from './watch';
import { readEveryKey, startWorkers } from './workload';
import type { TxnVerdict } from '../txn/run';

/** verdict checks the history, prints the JSON summary and the verdict, and returns the exit code. */
function verdict(run: Chaos, unreadable: number): number {
  const { o, counts, faults, history } = run;
  const check = checkKvHistory(history);
  const total = Object.values(faults).reduce((a, b) => a + b, 0);
  const network = run.net ? `netns 10.77.${run.net.subnet}.0/24` : 'loopback';
  const summary = { seed: o.seed, durationS: o.durationS, placementMembers: o.placementMembers, readOnly: o.leaseReads ? 'lease-based' : 'safe', partitions: o.partitions, network, ...counts, longestStallMs: Math.round(run.stall.longestMs), faults: total, faultKinds: faults, unreadableKeys: unreadable, linearizability: check.verdict };
  console.log(JSON.stringify(summary));
  if (check.verdict === 'illegal') {
    console.error(`VIOLATION: ${explainFailure(history, check)}`);
    return 1;
  }
  if (unreadable > 0) {
    console.error(`FAIL: ${unreadable} keys unreadable after recovery`);
    return 1;
  }
  console.error(`verdict: ${check.verdict === 'ok' ? 'linearizable' : 'search budget exhausted (inconclusive)'}; ${counts.ops} ops, ${total} faults`);
  return 0;
}

/** txnVerdict prints a transaction workload's JSON summary and verdict, and returns the exit code. */
function txnVerdict(run: Chaos, v: TxnVerdict, unreadable: number): number {
  const { o, faults } = run;
  const total = Object.values(faults).reduce((a, b) => a + b, 0);
  const network = run.net ? `netns 10.77.${run.net.subnet}.0/24` : 'loopback';
  const summary = { seed: o.seed, durationS: o.durationS, placementMembers: o.placementMembers, readOnly: o.leaseReads ? 'lease-based' : 'safe', partitions: o.partitions, network, ...v.summary, longestStallMs: Math.round(run.stall.longestMs), faults: total, faultKinds: faults, unreadableKeys: unreadable, checker: v.ok ? 'ok' : 'violation' };
  console.log(JSON.stringify(summary));
  if (!v.ok) {
    console.error(`VIOLATION (${o.workload}):\n${v.explanation}`);
    return 1;
  }
  if (unreadable > 0) {
    console.error('FAIL: the final read of every key did not commit within 30 s after recovery');
    return 1;
  }
  console.error(`verdict: ${o.workload} ok; ${String(v.summary['txns'])} transactions, ${total} faults`);
  return 0;
}

/** checkedVerdict prints the watch or lock workload's JSON summary and verdict, and returns the exit code. */
function checkedVerdict(run: Chaos, v: { ok: boolean; summary: Record<string, unknown>; explanation: string }): number {
  const { o, faults } = run;
  const total = Object.values(faults).reduce((a, b) => a + b, 0);
  const network = run.net ? `netns 10.77.${run.net.subnet}.0/24` : 'loopback';
  const summary = { seed: o.seed, durationS: o.durationS, placementMembers: o.placementMembers, readOnly: o.leaseReads ? 'lease-based' : 'safe', partitions: o.partitions, network, ...v.summary, longestStallMs: Math.round(run.stall.longestMs), faults: total, faultKinds: faults, checker: v.ok ? 'ok' : 'violation' };
  console.log(JSON.stringify(summary));
  if (!v.ok) {
    console.error(`VIOLATION (${o.workload}):\n${v.explanation}`);
    return 1;
  }
  console.error(`verdict: ${o.workload} ok; ${String(v.summary['eventsChecked'])} events checked, ${total} faults`);
  return 0;
}

/** newRun makes the run's state (and, with --partitions, its namespaces). */
async function newRun(o: ChaosOptions): Promise<Chaos> {
  let net: NetnsTopology | undefined;
  if (o.partitions) {
    const why = await netnsUnavailable();
    if (why) throw new Error(`--partitions needs network namespaces: ${why}`);
    net = await NetnsTopology.create({ nodes: netnsNodes(o.placementMembers), log: (l) => console.error(`[chaos] ${l}`) });
  }
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-chaos-'));
  const t0 = performance.now();
  return { o, rng: mulberry32(o.seed), dir, placements: await placementProcs(dir, net, o.placementMembers), stores: [], net, faults: {}, history: [], counts: { ops: 0, acked: 0, unknown: 0, failedReads: 0 }, stall: { lastAckMs: 0, longestMs: 0 }, now: () => performance.now() - t0 };
}

/** exitOnSignal: Ctrl-C (or SIGTERM) kills the children and removes the namespaces and data before exiting. */
function exitOnSignal(run: Chaos): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const p of [...run.stores, ...run.placements]) killSync(p);
      run.net?.destroySync();
      rmSync(run.dir, { recursive: true, force: true });
      process.exit(130);
    });
  }
}

async function main(): Promise<number> {
  const o = parseChaosArgs(process.argv.slice(2));
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  const run = await newRun(o);
  exitOnSignal(run);
  let client: FlotillaClient | undefined;
  try {
    client = await startCluster(run);
    const where = `${run.net ? `network namespaces on 10.77.${run.net.subnet}.0/24, partitions on` : '127.0.0.1'}, placement ${o.placementMembers === 1 ? 'one process' : `a group of ${o.placementMembers}`}`;
    console.error(`[chaos] cluster up in ${(run.now() / 1000).toFixed(1)} s on ${where}; seed ${o.seed}; reads ${o.leaseReads ? 'lease-based' : 'safe'}; running ${o.durationS} s`);
    const base = chaosFaults(run.net !== undefined, o.placementMembers);
    const table = o.workload === 'watch' ? [...base, ...WATCH_FAULTS] : base;
    let running = true;
    const checked = o.workload === 'watch' ? await startWatchChaos(run, client, () => running) : o.workload === 'lock' ? await startLockChaos(run, client, () => running) : undefined;
    const txn = o.workload === 'bank' || o.workload === 'list-append' ? await startTxnChaos(run, client, () => running) : undefined;
    const workers = checked ? checked.finished : txn ? txn.finished : startWorkers(run, () => running);
    const end = Date.now() + o.durationS * 1000;
    // A run with a placement group opens with the leader's SIGKILL, so even a short one fails placement over once.
    let opener = o.placementMembers > 1 ? PLACEMENT_FAULTS[0] : undefined;
    while (Date.now() < end) {
      await sleep(1500 + Math.floor(run.rng() * 2500));
      const s = run.stores[Math.floor(run.rng() * run.stores.length)]!;
      const x = run.rng();
      await (opener ?? drawChaosFault(table, x)).run(run, s, client);
      opener = undefined;
    }
    running = false;
    await resumeAll(run);
    await workers;
    if (checked) return checkedVerdict(run, await checked.finish());
    if (txn) {
      const { verdict: v, unreadable } = await finishTxnChaos(txn);
      return txnVerdict(run, v, unreadable);
    }
    return verdict(run, await readEveryKey(run, client));
  } finally {
    client?.close();
    for (const s of run.stores) await kill(s);
    for (const p of run.placements) await kill(p);
    await run.net?.destroy();
    rmSync(run.dir, { recursive: true, force: true });
  }
}

main().then(
  (c) => process.exit(c),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
