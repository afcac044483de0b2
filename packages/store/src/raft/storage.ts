import type { ConfState, Entry, HardState, RaftState, Snapshot, Storage } from '@flotilla/raft-core';
import { encode, type Region } from '@flotilla/proto';
import type { TxnRows } from '@flotilla/kv-engine';
import type { ApplyState, MergeState, StateMachine } from '../engines';

/** RAFT_INIT_LOG_INDEX / TERM: where a bootstrapped or split Region's log starts (TiKV uses 5). */
export const RAFT_INIT_LOG_INDEX = 5;
export const RAFT_INIT_LOG_TERM = 5;

/** SnapshotPayload is what a Region snapshot carries: the Region meta and its key range. */
export interface SnapshotPayload {
  region: Region;
  confState: ConfState;
  /** merge: the Region's prepared merge, if it is merging (replicas must agree on it). */
  merge?: MergeState;
  pairs: { key: Uint8Array; value: Uint8Array }[];
  /** txn: the range's transactional rows (locks, write records, long values), absent when there are none. */
  txn?: TxnRows;
}

export function confStateFromRegion(region: Region): ConfState {
  const voters: number[] = [];
  const learners: number[] = [];
  for (const p of region.peers) (p.role === 'voter' ? voters : learners).push(p.id);
  return { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/** initialApplyState is a bootstrapped or split Region's apply state: applied and truncated at the initial log index. */
export function initialApplyState(): ApplyState {
  return { appliedIndex: RAFT_INIT_LOG_INDEX, appliedTerm: RAFT_INIT_LOG_TERM, truncatedIndex: RAFT_INIT_LOG_INDEX, truncatedTerm: RAFT_INIT_LOG_TERM };
}

/** emptyConf is the ConfState of an uninitialized peer (it learns its configuration from a snapshot). */
export function emptyConf(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/**
 * PeerStorage is raft's Storage for one Region on this store: the log
 * engine's RegionLogStorage for the log, with two store-level overrides:
 * the ConfState comes from the KV engine's region state (written with the
 * apply that changed it), and snapshots are generated from the KV engine's
 * range at the applied index.
 */
export class PeerStorage implements Storage {
  constructor(
    private readonly log: Storage,
    private readonly peer: { confState(): ConfState; hardStateOverride?: HardState },
    private readonly snapshotFn: (requestIndex: number, to: number) => Snapshot,
  ) {}
  initialState(): RaftState {
    const s = this.log.initialState();
    return { hardState: this.peer.hardStateOverride ?? s.hardState, confState: this.peer.confState() };
  }
  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    return this.log.entries(lo, hi, maxSize);
  }
  term(index: number): number {
    return this.log.term(index);
  }
  firstIndex(): number {
    return this.log.firstIndex();
  }
  lastIndex(): number {
    return this.log.lastIndex();
  }
  snapshot(requestIndex: number, to: number): Snapshot {
    return this.snapshotFn(requestIndex, to);
  }
}

/** SnapshotSource is what a snapshot is generated from: one peer's Region meta and apply state. */
export interface SnapshotSource {
  region: Region;
  confState: ConfState;
  mergeState: MergeState | undefined;
  apply: ApplyState;
}

/**
 * generateSnapshot reads the Region's range at the applied index. It runs
 * synchronously inside raft's call, between poll rounds' applies, so the
 * data and the (index, term) it is labelled with always agree.
 */
export function generateSnapshot(sm: StateMachine, peer: SnapshotSource): Snapshot {
  const { pairs, txn } = sm.snapshotRangeData(peer.region.startKey, peer.region.endKey);
  const payload: SnapshotPayload = { region: peer.region, confState: peer.confState, pairs };
  if (txn.locks.length + txn.writes.length + txn.data.length > 0) payload.txn = txn;
  if (peer.mergeState) payload.merge = peer.mergeState;
  return {
    data: encode(payload),
    metadata: { index: peer.apply.appliedIndex, term: peer.apply.appliedTerm, confState: peer.confState },
  };
}
