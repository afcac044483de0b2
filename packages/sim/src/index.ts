// @flotilla/sim — whole-cluster deterministic simulation and its checkers.
//   linearizability.ts    Wing–Gong/Lowe search with memoisation, per-key partitions, KV model
//   simulation.ts         runSimulation(): setup, safety phase, liveness phase, check (the driver)
//   cluster.ts            SimCluster: placement + N real stores on one LocalNetwork; read-only peer views
//   clock.ts              the virtual clock (fake timers) and SimClock, which advances it slice by slice
//   sim-client.ts         SimClient: routes like the real client, calls Store.handleClientRequest, records
//   workload.ts           the clients' random KV mix, and the liveness phase's read-back of every key
//   faults.ts             FAULTS, the weighted fault table drawn once per slice; network faults; healing
//   checkers.ts           per-slice safety checkers, convergence, the linearizability verdict
//   report.ts             Recorder (history, fault log, failures, stats), the replay digest, describeCluster
//   scenarios.ts          small fixed scenarios: regression tests for STORE_BUGS.md
//   placement-adapter.ts  InProcessPlacement: PlacementApi over PlacementCluster.dispatch
//   placement-group.ts    SimPlacementGroup (placements: 3): 3 PlacementMembers, their raft over a LocalNetwork
//   placement-rpc.ts      RpcNet (store/TSO-client <-> member links: latency, loss, cuts), GroupCaller, GroupPlacement
//   placement-faults.ts   member crash/restart, partitions among members, store-placement cuts
//   placement-checkers.ts IdLedger (no duplicate ID), checkTso (TSO linearizability), LeaderRouting (leader's table)
//   tso-workload.ts       TSO clients recording send and answer order for checkTso
//   cli.ts                `pnpm sim --seeds N` (root script: tsx packages/sim/src/cli.ts)
//   txn/                  transactions (issue #17): bank.ts and list-append.ts (+ elle/) the checkers, workloads.ts
//                         and run.ts the bank / list-append clients over a TxnApi (api.ts; driver-api.ts: the real
//                         driver, model.ts: an in-memory reference), sim-transport.ts TxnTransport over SimCluster,
//                         simulation.ts runTxnSimulation, cli.ts its command line
//   watch/                the watch checker (issue #18): checker.ts checkWatches (exact delivery per watcher against the
//                         recorded commits), history.ts RecordingTxnApi and the records, adapter.ts SimWatchLinks (the
//                         client's FeedSocket over an in-memory link to each store's WatchHub; cuts; planted bugs),
//                         workload.ts the watchers (@flotilla/client's Watch), run.ts WatchRun (txn cli --watch)
//   chaos/main.ts         `pnpm chaos`: the same workload idea against real processes (--workload bank|list-append: chaos/txn.ts)
//   powerloss/            `pnpm powerloss`: real stores under an LD_PRELOAD shim (shim.c) that loses
//                         every write not fsynced; crash, restore, check durable state and history (its files: see its header)
//   netns/topology.ts     NetnsTopology: nodes in their own Linux network namespaces behind a hub router; cut/heal
//   netns/cuts.ts         partitions as one-way cuts: isolate, between (halves), bridge, oneWay
//   netns/names.ts        flt<pid>-<node> names, and telling a dead run's leftovers from a live one's
//   netns/subnet.ts       which 10.77.K.0/24 a run takes without shadowing the machine's networks
//   netns/ip.ts           running iproute2's `ip` (no iptables/nft needed)
//
// The driving loop (simulation.ts): start the cluster; then, per 100 ms slice
// of the safety phase, draw a fault from FAULTS and advance the clock (the
// safety checkers run after each slice); heal everything, read every key back,
// wait for convergence; check the whole history for linearizability.
export * from './linearizability';
export { runSimulation, type SimOptions } from './simulation';
export type { SimResult, SimStats } from './report';
export { FAULTS, type Fault } from './faults';
export { InProcessPlacement } from './placement-adapter';
export { checkTso, IdLedger, LeaderRouting, type TsoRecord, type LeaderView } from './placement-checkers';
export { NetnsTopology, netnsUnavailable, sweepStaleRuns, type NetnsTopologyOptions } from './netns/topology';
export { between, bridge, canReach, isolate, oneWay, type Cut } from './netns/cuts';
export { checkBank, type BankRead, type BankResult, type BankViolation } from './txn/bank';
export { checkListAppend, explainListAppend, type ListAppendResult, type Anomaly, type AnomalyType } from './txn/list-append';
export type { TxnRecord, MicroOp, TxnStatus } from './txn/history';
export { runTxnSimulation, type TxnSimOptions, type TxnSimResult } from './txn/simulation';
export { checkWatches, type WatchCheckResult, type WatchFailure } from './watch/checker';
export type { WatchCommit, WatcherRecord, WatchDelivered } from './watch/history';
