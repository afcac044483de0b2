// @flotilla/placement — the placement service (TiKV's PD) and its client.
//   client.ts        PlacementClient: what store, client and CLI import (like pd_client)
//   server.ts        startPlacementServer: WebSocket API (/ws, msgpack) + read-only HTTP JSON on one port
//   cluster.ts       PlacementCluster: the state machine every request goes through (no I/O but SQLite)
//   storage.ts       SQLite persistence (WAL, synchronous=FULL): meta, ID high-water, stores, Regions, operators
//   id-allocator.ts  durable high-water ID allocation
//   region-tree.ts   routing table ordered by start key; stale-epoch rules
//   packed-heartbeat.ts  the packed Region heartbeat of regionHeartbeatsPacked (meta as canonical bytes)
//   schema.ts        zod schemas of every method's params
//   http.ts          HTTP routes and readable key rendering
//   schedule/        Scheduler interface, OperatorController, replica checker, balance-leader, balance-region, merge checker
//   raft/            the placement Raft group: member.ts (PlacementMember), node.ts (RawNode driver), fsm.ts, transport.ts, ...
//   tso/             timestamp.ts (layout), oracle.ts (TimestampOracle: persisted window), batcher.ts (client batching)
//   types.ts         wire types; errors.ts typed errors
//   main.ts          `node --import tsx packages/placement/src/main.ts --data-dir D --listen 127.0.0.1:0`
export { PlacementClient, type PlacementClientOptions } from './client';
export { startPlacementServer, parseListen, WS_PATH, type PlacementServer, type PlacementServerOptions } from './server';
export { PlacementError, PlacementErrorCode, PlacementStorageError } from './errors';
export { renderKey, parseKey } from './http';
export { PLACEMENT_LIMITS } from './schema';
export { encodeRegionMeta, packHeartbeat, packable, type PackedHeartbeat } from './packed-heartbeat';
export { LEASE_LIMITS } from './lease/leader';
export type * from './types';
export { LOGICAL_BITS, LOGICAL_LIMIT, composeTs, splitTs } from './tso/timestamp';
export type { Scheduler, ClusterView, OperatorDraft, SchedulerLimits } from './schedule/scheduler';
export type { MergeCheckerOptions } from './schedule/merge-checker';
export type { HotRegionOptions, HotDimension } from './schedule/hot-region';
