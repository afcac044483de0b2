// @flotilla/sim — whole-cluster deterministic simulation and its checkers.
//   linearizability.ts    Wing–Gong/Lowe search with memoisation, per-key partitions, KV model
//   simulation.ts         runSimulation(): placement + N stores in one process on a virtual clock,
//                         LocalNetwork faults, crashes, splits, conf changes, leader transfers, checkers
//   placement-adapter.ts  InProcessPlacement: PlacementApi over PlacementCluster.dispatch
//   cli.ts                `pnpm sim --seeds N` (root script: tsx packages/sim/src/cli.ts)
export * from './linearizability';
export { runSimulation, type SimOptions, type SimResult, type SimStats } from './simulation';
export { InProcessPlacement } from './placement-adapter';
