import type { ConfChangeType } from '@flotilla/raft-core';
import type { Peer, Region, RegionEpoch } from './region';
import type { RegionError } from './errors';
import type { TxnCommand, TxnRead, TxnResult } from './txn';

/** RequestHeader names the Region (and its epoch) a command is meant for. */
export interface RequestHeader {
  regionId: number;
  regionEpoch: RegionEpoch;
  /** peer is the peer the client believes leads the Region (optional). */
  peer?: Peer;
}

/** KvWrite is one write inside a replicated command; applied in order. */
export type KvWrite =
  | { type: 'put'; key: Uint8Array; value: Uint8Array }
  | { type: 'delete'; key: Uint8Array }
  | { type: 'deleteRange'; startKey: Uint8Array; endKey: Uint8Array }
  /** cas is decided at apply time: value is written (or deleted when null) only if the current value equals expected (null = absent). */
  | { type: 'cas'; key: Uint8Array; expected: Uint8Array | null; value: Uint8Array | null };

/** KvRead is a read served after ReadIndex or under a valid lease. */
export type KvRead =
  | { type: 'get'; key: Uint8Array }
  | { type: 'batchGet'; keys: Uint8Array[] }
  | { type: 'scan'; startKey: Uint8Array; endKey: Uint8Array; limit: number };

export type ChangePeerType = ConfChangeType;

/** AdminRequest changes a Region's shape or membership; replicated like writes. */
export type AdminRequest =
  | { type: 'changePeer'; changeType: ChangePeerType; peer: Peer }
  | { type: 'changePeerV2'; changes: { changeType: ChangePeerType; peer: Peer }[] }
  | { type: 'transferLeader'; peer: Peer }
  | { type: 'compactLog'; compactIndex: number; compactTerm: number }
  | { type: 'batchSplit'; splits: { splitKey: Uint8Array; newRegionId: number; newPeerIds: number[] }[]; rightDerive: boolean }
  | { type: 'prepareMerge'; target: Region; minIndex: number }
  | { type: 'commitMerge'; source: Region; commit: number; entries: Uint8Array[] }
  | { type: 'rollbackMerge'; commit: number };

/** RaftCmdRequest is what a peer proposes: writes or one admin request. */
export interface RaftCmdRequest {
  header: RequestHeader;
  writes: KvWrite[];
  admin?: AdminRequest;
  /** txn: a transactional command (txn.ts); set alone (writes empty, no admin). */
  txn?: TxnCommand;
  /** onePcCommitTs: with a prewrite of onePc, the commit ts the leader took from the oracle after locking the keys in memory. */
  onePcCommitTs?: bigint;
}

/** KvPair is a key and its value, as returned by reads. */
export interface KvPair {
  key: Uint8Array;
  value: Uint8Array;
}

/** CasResult says whether a compare-and-swap took effect, and the value it saw. */
export interface CasResult {
  succeeded: boolean;
  previous: Uint8Array | null;
}

/** ClientRequest is one call on a store's client API. */
export type ClientRequest =
  | { id: number; header: RequestHeader; op: 'read'; read: KvRead }
  | { id: number; header: RequestHeader; op: 'write'; writes: KvWrite[] }
  | { id: number; header: RequestHeader; op: 'admin'; admin: AdminRequest }
  /** split asks the Region's leader to split at the given keys (it allocates IDs from placement). */
  | { id: number; header: RequestHeader; op: 'split'; splitKeys: Uint8Array[] }
  /** merge asks the (source) Region's leader to merge it into the adjacent target Region (docs/merge.md). */
  | { id: number; header: RequestHeader; op: 'merge'; targetRegionId: number }
  /** txn: a Percolator command on the transactional keyspace, through the Region's Raft log (txn.ts). */
  | { id: number; header: RequestHeader; op: 'txn'; txn: TxnCommand }
  /** txnRead: a snapshot read of the transactional keyspace at a timestamp, after ReadIndex / lease. */
  | { id: number; header: RequestHeader; op: 'txnRead'; read: TxnRead };

/** ClientResponse answers a ClientRequest with the same id. */
export type ClientResponse =
  | {
      id: number;
      ok: true;
      value?: Uint8Array | null;
      values?: (Uint8Array | null)[];
      pairs?: KvPair[];
      cas?: CasResult[];
      /** regions is set by split: the Regions after the split, left to right. */
      regions?: Region[];
      /** txn answers op 'txn' and 'txnRead'. */
      txn?: TxnResult;
    }
  | { id: number; ok: false; error: RegionError };
