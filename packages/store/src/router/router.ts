import { MessageType } from '@flotilla/raft-core';
import { isStoreMessageType, type RaftMessage } from '@flotilla/proto';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import { onStoreMessage, wake, wakeRegionsLedFrom } from '../operation/hibernate';
import { destroyPeer, maybeCreatePeer } from '../operation/life';

/** onRaftMessages routes one frame's raft messages to their peers' mailboxes. */
export function onRaftMessages(ctx: StoreContext, msgs: RaftMessage[]): void {
  for (const m of msgs) routeRaftMessage(ctx, m, undefined);
  ctx.schedulePoll();
}

/**
 * routeRaftMessage finds (or creates) the peer a raft message is for and
 * queues it. Drops, each counted by reason: a message for another store; one
 * for an older peer of a Region than ours; one no local peer may be created
 * for (tombstone, overlap, not a first message); a full mailbox.
 */
export function routeRaftMessage(ctx: StoreContext, m: RaftMessage, snapshotData: Uint8Array | undefined): void {
  if (ctx.closed) return;
  if (m.toPeer.storeId !== ctx.storeId) return ctx.metrics.dropMessage('wrong-store');
  const peer = peerFor(ctx, m);
  if (!peer) return;
  if (isStoreMessageType(m.message.msgType)) return onStoreMessage(ctx, peer, m);
  if (peer.mailbox.length >= ctx.config.mailboxCapacity) return ctx.metrics.dropMessage('mailbox-full');
  const t = m.message.msgType;
  // A quiet leader still hears the answers to its last heartbeats; they
  // must not wake it, or it would never stay asleep.
  if (peer.hibernating) {
    if (!(peer.isLeader && t === MessageType.MsgHeartbeatResponse)) wake(ctx, peer);
  } else if (t !== MessageType.MsgHeartbeat && t !== MessageType.MsgHeartbeatResponse) peer.idleTicks = 0;
  peer.lastHeard.set(m.fromPeer.id, ctx.now());
  if (m.fromPeer.id === peer.leaderId || t === MessageType.MsgApp || t === MessageType.MsgHeartbeat || t === MessageType.MsgSnapshot) peer.leaderMissingTicks = 0;
  if (snapshotData) peer.mailbox.push({ kind: 'snapshotData', msg: m.message, fromPeer: m.fromPeer, data: snapshotData });
  else peer.mailbox.push({ kind: 'raft', msg: m.message, fromPeer: m.fromPeer });
  ctx.metrics.messagesReceived++;
  ctx.dirty.add(peer);
}

/** peerFor returns the local peer a message is addressed to, replacing a stale one or creating one; undefined = dropped (counted). */
function peerFor(ctx: StoreContext, m: RaftMessage): Peer | undefined {
  let peer = ctx.peers.get(m.regionId);
  if (peer && peer.peerId !== m.toPeer.id) {
    if (m.toPeer.id < peer.peerId) {
      ctx.metrics.dropMessage('stale-peer');
      return undefined;
    }
    // A store holds at most one peer of a Region and peer IDs only grow:
    // a message to a larger ID means ours was removed (while we were away)
    // and the Region re-added this store. Ours is stale: replace it.
    ctx.logger.info({ regionId: m.regionId, stalePeer: peer.peerId, newPeer: m.toPeer.id }, 'replacing a stale peer');
    destroyPeer(ctx, peer, true);
    peer = undefined;
  }
  peer ??= maybeCreatePeer(ctx, m);
  if (!peer) ctx.metrics.dropMessage('no-peer');
  return peer;
}

/** onSnapshot reassembles a streamed snapshot and routes it with its MsgSnapshot header. */
export async function onSnapshot(ctx: StoreContext, header: RaftMessage, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const c of chunks) {
    parts.push(c);
    total += c.length;
  }
  const data = Buffer.concat(parts, total);
  routeRaftMessage(ctx, header, data);
  ctx.schedulePoll();
}

/** onStoreUnreachable tells the leaders with a follower on that store, and wakes the followers it led. */
export function onStoreUnreachable(ctx: StoreContext, storeId: number): void {
  for (const p of ctx.peers.values()) {
    if (!p.isLeader) continue;
    for (const x of p.region.peers) if (x.storeId === storeId) ctx.send(p, { kind: 'unreachable', toPeerId: x.id });
  }
  wakeRegionsLedFrom(ctx, new Set([storeId]));
}
