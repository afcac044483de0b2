import { newMessage, type Message, type MessageType } from '@flotilla/raft-core';
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

/**
 * StoreMessageType names store-level messages that travel in a RaftMessage
 * envelope but are never stepped into raft (TiKV's ExtraMessage). Their
 * numbers sit above raft's message types.
 */
export const StoreMessageType = {
  /**
   * MsgHibernate: the leader has stopped ticking; a follower whose log
   * reaches `index` in `term` may stop ticking too. May be dropped: a
   * follower that misses it keeps ticking and, at worst, wakes the leader
   * with a pre-vote.
   */
  MsgHibernate: 64,
} as const;

/** isStoreMessageType: true for store-level message types (never given to raft). */
export function isStoreMessageType(t: number): boolean {
  return t >= 64 && t < 128;
}

/** StoreMessageType is one of the store-level message numbers. */
export type StoreMessageType = (typeof StoreMessageType)[keyof typeof StoreMessageType];

/**
 * newStoreMessage builds a store-level message in raft's Message shape, so
 * it travels in the same envelope and frames. Its type number lies outside
 * raft's MessageType on purpose; receivers check isStoreMessageType before
 * anything reaches raft, which is why this one conversion is safe.
 */
export function newStoreMessage(msgType: StoreMessageType, init: Partial<Message>): Message {
  return newMessage(msgType as number as MessageType, init);
}
