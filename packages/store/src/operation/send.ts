import { MessageType, type Message } from '@flotilla/raft-core';
import type { Peer as PeerMeta, RaftMessage } from '@flotilla/proto';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';

/** sendRaft wraps one raft message in its envelope and queues it on the transport (snapshots go to the snapshot channel). */
export function sendRaft(ctx: StoreContext, peer: Peer, m: Message): void {
  const to = peer.peerById(m.to);
  if (!to) {
    ctx.metrics.dropMessage('unknown-target-peer');
    return;
  }
  const env: RaftMessage = {
    regionId: peer.regionId,
    fromPeer: peer.meta(),
    toPeer: to,
    regionEpoch: peer.region.epoch,
    message: m,
    startKey: peer.region.startKey,
    endKey: peer.region.endKey,
    isTombstone: false,
  };
  if (env.fromPeer.storeId === 0) env.fromPeer = { ...env.fromPeer, storeId: ctx.storeId };
  if (m.msgType === MessageType.MsgSnapshot && m.snapshot) {
    sendSnapshot(ctx, peer, to, env);
    return;
  }
  ctx.transport.send(to.storeId, env);
  ctx.metrics.messagesSent++;
}

/**
 * sendSnapshot streams the snapshot's data on the snapshot channel; the
 * outcome comes back to the peer as a `snapshotStatus` message, which
 * reports it to raft.
 */
export function sendSnapshot(ctx: StoreContext, peer: Peer, to: PeerMeta, env: RaftMessage): void {
  const snap = env.message.snapshot!;
  const data = snap.data;
  const header: RaftMessage = { ...env, message: { ...env.message, snapshot: { ...snap, data: new Uint8Array(0) } } };
  const chunks: Uint8Array[] = [];
  const chunkBytes = ctx.config.snapshotChunkBytes;
  for (let off = 0; off < data.length; off += chunkBytes) chunks.push(data.subarray(off, Math.min(data.length, off + chunkBytes)));
  if (chunks.length === 0) chunks.push(new Uint8Array(0));
  ctx.metrics.snapshotsSent++;
  const report = (status: 'finish' | 'failure') => {
    if (ctx.peers.get(peer.regionId) === peer) ctx.send(peer, { kind: 'snapshotStatus', toPeerId: to.id, status });
  };
  ctx.transport.sendSnapshot(to.storeId, header, chunks).then(
    () => report('finish'),
    (e: Error) => {
      ctx.logger.warn({ regionId: peer.regionId, to: to.id, err: e.message }, 'snapshot send failed');
      report('failure');
    },
  );
}
