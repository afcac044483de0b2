import type { Message } from '@flotilla/raft-core';
import type { Peer, RegionEpoch } from './region';

/**
 * RaftMessage is the envelope one store sends another: a raft message for
 * one peer of one Region. startKey/endKey let the receiver create an
 * uninitialized peer for a Region it has not heard of (TiKV does the same);
 * isTombstone tells a removed peer to destroy itself.
 */
export interface RaftMessage {
  regionId: number;
  fromPeer: Peer;
  toPeer: Peer;
  regionEpoch: RegionEpoch;
  message: Message;
  startKey: Uint8Array;
  endKey: Uint8Array;
  isTombstone: boolean;
}
