// @flotilla/sim — whole-cluster deterministic simulation and its checkers.
//   linearizability.ts  Wing–Gong/Lowe search with memoisation, per-key partitions, KV model
export * from './linearizability';
