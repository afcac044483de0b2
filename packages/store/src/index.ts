// @flotilla/store — the Multi-Raft host, in TiKV raftstore-v2's shape. Each
// operation is a free function over a StoreContext; `Store` is the facade.
//   start.ts                     startStore(): identity, engines, transport, registration, recovery
//   start-error.ts               StoreStartError: a refused configuration or data dir (nothing written)
//   cluster-secret.ts            the raft secret; the development secret is loopback only
//   identity.ts                  store.json (store ID, cluster ID) checked against placement before anything opens
//   placement-wait.ts            waiting for a placement that does not answer (backoff, a log line per try)
//   registration.ts              registering in the background after a start without placement
//   address-book.ts              peers' raft addresses kept in the data dir for when placement is away
//   durable-file.ts              small files written atomically (temp, fsync, rename)
//   store.ts                     Store: the public facade (start, close, client requests, status, inspect)
//   context.ts                   StoreContext: engines, transport, placement, clock, store-wide state; assert
//   bootstrap.ts                 the bootstrap Region in both engines
//   inspect.ts                   PeerView: a read-only copy of a peer for checkers and tools
//   tombstones.ts                the bounded set of Regions this store left
//   open-engines.ts              raft.db and kv.db opened and checked (a damaged file refuses the start)
//   storage-fault.ts             StoreStorageError; a full disk or damaged file stops the store cleanly (guardStorage)
//   disk-usage.ts                capacity / available / used bytes of the data dir (statfs) for store heartbeats
//   batch/poller.ts              the poll round: collect readies, persist, apply, finish
//   batch/ticks.ts               the table of every periodic task and its interval (StoreConfig)
//   router/message.ts            PeerMsg: every way into a peer, droppable or not
//   router/router.ts             inbound raft messages and snapshots → mailboxes (drops counted by reason)
//   fsm/peer.ts                  the mailbox dispatcher: one switch over PeerMsg
//   raft/peer.ts                 Peer: one Region replica (RawNode, Region meta, apply state, pending work)
//   raft/storage.ts              PeerStorage (raft's Storage), snapshot generation, initial states
//   raft/proposal.ts             CommandResult, Callback, Proposal, ReadWaiter
//   operation/send.ts            outgoing raft messages and snapshots
//   operation/hibernate.ts       hibernation: sleep, wake, MsgHibernate
//   operation/query.ts           linearizable reads: ReadIndex, the leader lease (raw reads and snapshot reads)
//   operation/txn.ts             transactional commands: checks at the leader, proposal, the 1PC fast path
//   operation/txn-read.ts        snapshot reads of the transactional keyspace; the memory-lock wait
//   mem-locks.ts                 MemLockTable: 1PC key locks held until the entry applies (TiKV's concurrency manager)
//   operation/life.ts            peer life: recover, create, destroy, stale-peer check
//   operation/pd.ts              store and Region heartbeats to placement (operators → mailbox)
//   operation/ready/             a Ready before persistence; snapshot install
//   operation/command/           encode/propose/apply commands; admin/{conf-change,split,merge,compact-log}
//                                each own their propose, apply and after-apply sides
//   server/client-server.ts      client API (WebSocket /client), /metrics, /status
//   server/watch-server.ts       change feeds (WebSocket /watch on the client port)
//   watch/                       hub.ts feeds per Region and the apply hook, feed.ts catch-up then live, resolved.ts the resolved ts
//   kv/                          the state machine adapter over @flotilla/kv-engine
//   config.ts                    StoreConfig, profiles (production, demo)
//   metrics.ts                   counters and histograms in Prometheus text
export { startStore, type StoreOptions, type StoreHandle } from './start';
export { Store, type StoreDeps, type StoreLogger } from './store';
export { resolveConfig, storeConfigOverridesSchema, PROFILES, DEMO, PRODUCTION, type StoreConfig, type ProfileName } from './config';
export { KvEngineStateMachine } from './kv/kv-engine-state-machine';
export type { StateMachine, ApplyState, RegionLocalState, PlacementApi } from './engines';
export type { PeerView } from './inspect';
export { StoreStorageError } from './storage-fault';
export { StoreStartError, type StoreStartErrorCode } from './start-error';
export { DEVELOPMENT_CLUSTER_SECRET, isLoopbackHost } from './cluster-secret';
export type { DiskUsage } from './disk-usage';
export { ClientServer, CLIENT_PATH } from './server/client-server';
