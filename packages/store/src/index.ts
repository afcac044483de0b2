// @flotilla/store — the Multi-Raft host.
//   start.ts                 startStore(): engines, placement, transport, bootstrap, recovery
//   store.ts                 Store: router, batch system (poll loop), apply effects, reads, workers
//   raft/peer.ts             Peer: one Region replica (RawNode, PeerStorage, apply state, pending work)
//   operation/command.ts     command encoding, proposals, typed results
//   operation/apply.ts       applying committed entries (writes, CAS, split, conf change, compact)
//   server/client-server.ts  client API (WebSocket /client), /metrics, /status
//   kv/                      the state machine adapter over @flotilla/kv-engine
//   config.ts                StoreConfig, profiles (production, demo)
//   metrics.ts               counters and histograms in Prometheus text
export { startStore, type StoreOptions, type StoreHandle } from './start';
export { Store, type StoreDeps, type StoreLogger } from './store';
export { resolveConfig, storeConfigOverridesSchema, PROFILES, DEMO, PRODUCTION, type StoreConfig, type ProfileName } from './config';
export { KvEngineStateMachine } from './kv/kv-engine-state-machine';
export type { StateMachine, ApplyState, RegionLocalState, PlacementApi } from './engines';
export type { PeerView } from './inspect';
export { ClientServer, CLIENT_PATH } from './server/client-server';
