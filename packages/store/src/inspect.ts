import type { MergeState } from './engines';
import type { Peer } from './raft/peer';
import type { StateRole } from '@flotilla/raft-core';
import type { Region } from '@flotilla/proto';

/**
 * PeerView is a read-only snapshot of one Region peer on a store, for
 * checkers, tools and tests (TiKV's QueryDebugInfo). It is a copy: holding
 * one never keeps a destroyed peer alive, and changing it changes nothing.
 */
export interface PeerView {
  regionId: number;
  peerId: number;
  region: Region;
  initialized: boolean;
  isLeader: boolean;
  /** leaderId is the raft ID of the leader as this peer last saw it (0 = unknown). */
  leaderId: number;
  /** raftState is raft's role as this peer's RawNode has it. */
  raftState: StateRole;
  term: number;
  commitIndex: number;
  lastIndex: number;
  appliedIndex: number;
  truncatedIndex: number;
  hibernating: boolean;
  mergeState: MergeState | undefined;
  pendingProposals: number;
  pendingReads: number;
}

/** viewPeer copies what a checker may read off a live peer. */
export function viewPeer(p: Peer): PeerView {
  const r = p.raw.raft;
  return {
    regionId: p.regionId,
    peerId: p.peerId,
    region: p.region,
    initialized: p.initialized,
    isLeader: p.isLeader,
    leaderId: p.leaderId,
    raftState: r.state,
    term: r.term,
    commitIndex: r.raftLog.committed,
    lastIndex: r.raftLog.lastIndex(),
    appliedIndex: p.apply.appliedIndex,
    truncatedIndex: p.apply.truncatedIndex,
    hibernating: p.hibernating,
    mergeState: p.mergeState,
    pendingProposals: p.proposals.length,
    pendingReads: p.reads.length,
  };
}
