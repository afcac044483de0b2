import type { Message } from '@flotilla/raft-core';
import type { ClientRequest, Peer as PeerMeta } from '@flotilla/proto';
import type { OperatorInstruction } from '@flotilla/placement/client';
import type { GcProposal } from '../gc/worker';
import type { WatchProbe } from '../watch/resolved';
import type { Callback } from '../raft/proposal';

/**
 * PeerMsg is every way into a peer (TiKV's PeerMsg). Anything that changes
 * a peer — a raft message, a tick, a client command, a placement operator,
 * the outcome of a snapshot send or of an asynchronous check — is queued in
 * the peer's mailbox and handled by fsm/peer.ts in the next poll round, so a
 * peer is only ever mutated from inside a round. Each variant says whether
 * it may be dropped: droppable ones are refused when the mailbox is full
 * (their sender retries or the next periodic pass repeats them); the others
 * bypass the bound, and each of their sources is itself bounded.
 */
export type PeerMsg =
  /** raft: a raft message from another peer. May be dropped: raft retransmits. */
  | { kind: 'raft'; msg: Message; fromPeer: PeerMeta }
  /** snapshotData: a MsgSnapshot with its streamed data. May be dropped: the sender's snapshot fails and raft sends it again. */
  | { kind: 'snapshotData'; msg: Message; fromPeer: PeerMeta; data: Uint8Array }
  /** tick: one base tick of raft time. May be dropped: a lost tick only delays a timeout. */
  | { kind: 'tick' }
  /**
   * command: a client request already checked against the store (Region known
   * and initialized). Must not be lost: when the mailbox is full it is
   * answered ServerIsBusy instead of queued, so every callback is answered.
   */
  | { kind: 'command'; req: ClientRequest; cb: Callback }
  /** operator: one step of a placement operator. May be dropped: placement repeats it in the next heartbeat answer. */
  | { kind: 'operator'; op: OperatorInstruction }
  /** snapshotStatus: how sending a snapshot to a follower ended. Must not be lost: raft keeps the follower in snapshot state until told. */
  | { kind: 'snapshotStatus'; toPeerId: number; status: 'finish' | 'failure' }
  /** unreachable: the transport could not reach a follower's store. May be dropped: it only makes the leader probe sooner. */
  | { kind: 'unreachable'; toPeerId: number }
  /** wake: the leader's store looks dead; a hibernated follower should tick again. May be dropped: the next store heartbeat repeats it. */
  | { kind: 'wake' }
  /**
   * destroy: placement says this peer is stale (merged away or removed).
   * Must not be lost: it is the verdict of a check that is not repeated
   * while the peer hears from a leader.
   */
  | { kind: 'destroy'; cleanData: boolean; reason: string }
  /** rollbackMerge: the merge target moved on; roll the prepared merge back. May be dropped: the merge check repeats it. */
  | { kind: 'rollbackMerge' }
  /**
   * proposeSplit: placement allocated IDs for a split this leader asked for.
   * Must not be lost: the split's callback is answered only from here.
   */
  | { kind: 'proposeSplit'; epochVersion: number; keys: Uint8Array[]; ids: { newRegionId: number; newPeerIds: number[] }[]; cb: Callback }
  /**
   * proposeOnePc: the oracle answered a 1PC prewrite's commit ts; propose it
   * (operation/txn.ts). Must not be lost: its callback releases the
   * transaction's memory locks.
   */
  | { kind: 'proposeOnePc'; req: Extract<ClientRequest, { op: 'txn' }>; commitTs: bigint; cb: Callback }
  /** proposeGc: one planned GC batch (gc/worker.ts). Must not be lost: the store's GC pass waits for its answer (bounded). */
  | GcProposal
  /** watchProbe: a resolved-ts pass confirms leadership (watch/resolved.ts). Must not be lost: its Region takes no new probe until it is answered (one in flight per Region). */
  | WatchProbe;

/** PeerMsgKind names each variant (for metrics and logs). */
export type PeerMsgKind = PeerMsg['kind'];

/** TICK is the one shared tick message: ticking thousands of peers allocates nothing. */
export const TICK: PeerMsg = { kind: 'tick' };

/** isDroppable says whether a message may be refused when the peer's mailbox is full. */
export function isDroppable(m: PeerMsg): boolean {
  switch (m.kind) {
    case 'raft':
    case 'snapshotData':
    case 'tick':
    case 'operator':
    case 'unreachable':
    case 'wake':
    case 'rollbackMerge':
      return true;
    case 'command':
    case 'snapshotStatus':
    case 'destroy':
    case 'proposeSplit':
    case 'proposeOnePc':
    case 'proposeGc':
    case 'watchProbe':
      return false;
  }
}
