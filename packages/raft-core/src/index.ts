// @flotilla/raft-core — the pure Raft consensus module (etcd raft / raft-rs design).
// Module map: see README.md in this package.
export * from './types';
export * from './storage';
