// @flotilla/client — the routing client (TiKV's raw client).
//   client.ts          FlotillaClient: API, routing, one attempt against one Region, re-routing after a failure
//   retry.ts           RetryState/RetryPolicy: per-call deadline and retry budget, backoff with jitter; raceDeadline;
//                      RETRY_ACTIONS: per failure, invalidate the Region? clear the leader? back off? throw?
//   region-cache.ts    RegionCache: Regions sorted by startKey, binary search, leader per Region
//   connection.ts      StoreConnection / ConnectionPool: one WebSocket per store, request IDs, bounded pending map
//   route-provider.ts  RouteProvider: the slice of placement routing needs (PlacementClient fits it)
//   response.ts        zod validation of store responses
//   bytes.ts           key/value conversion (string = UTF-8) and argument validation against proto LIMITS
//   errors.ts          ClientError (typed codes) and the internal ConnectionError
//   txn/               transactions (issue #17): transport.ts the seam to routing (client-transport.ts implements it),
//                      txn.ts runTxn/Transaction, commit.ts 2PC/1PC, resolver.ts lock resolution, snapshot.ts reads at a ts,
//                      txn-if.ts etcd-style If/Then/Else, buffer.ts buffered writes and TXN_LIMITS, errors.ts TxnAbortedError
//   watch/             change feeds (issue #18): watch.ts Watch (merge by resolved ts, resubscribe, service safe point),
//                      socket.ts one /watch WebSocket per store, range.ts prefixes and ranges
//   lease/             client.lease (lease.ts), KeepAlive (keepalive.ts), the guard key (guard.ts), ClientLeaseReaper (placement's reaper)
//   recipes/           client.lock (mutex.ts) and client.election (election.ts) on the revision-ordered queue (queue.ts)
//
//   const client = await FlotillaClient.connect({ placement: '127.0.0.1:20160' });
//   await client.put('k', 'v'); await client.get('k'); client.close();
export { FlotillaClient, type BatchOptions, type FlotillaClientOptions } from './client';
export { ClientError, type ClientErrorCode } from './errors';
export { RegionCache, type CachedRegion } from './region-cache';
export type { RouteProvider, StoreAddress } from './route-provider';
export { toBytes, type Bytes } from './bytes';
export { runTxn, Transaction, type TxnOptions, type TxnOutcome, type TxnValue } from './txn/txn';
export { decodeValue, encodeValue, VALUE_HEADER_BYTES, type StoredValue } from './txn/value';
export { Snapshot, type VersionedValue, type LeasedPair } from './txn/snapshot';
export { TxnIf, holds, type Compare, type CompareOp, type TxnOp, type OpResult, type TxnIfResult } from './txn/txn-if';
export { TxnAbortedError, type TxnAbortReason } from './txn/errors';
export type { TxnHooks } from './txn/commit';
export type { TxnPhase, TxnTrace } from './txn/trace';
export type { TxnTransport, KeyGroup, GroupResult, ReadResult, ScanPage } from './txn/transport';
export { LeaseClient, type LeaseApi } from './lease/lease';
export { KeepAlive, type KeepAliveResponse } from './lease/keepalive';
export { ClientLeaseReaper, reapIn } from './lease/reaper';
export { INTERNAL_PREFIX, guardKey } from './lease/guard';
export { Election, type ElectionOptions, type LeaderView, type Leadership } from './recipes/election';
export type { LockHolder, LockOptions } from './recipes/mutex';
export { Watch, CompactedError, type WatchOptions, type WatchItem, type WatchChange, type WatchProgress, type WatchEnv } from './watch/watch';
export type { FeedSocket, FeedHandlers } from './watch/socket';
export { prefixEnd, type WatchRange } from './watch/range';
