import { StoreMessageType, newStoreMessage, type RaftMessage } from '@flotilla/proto';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import { sendRaft } from './send';

/** HIBERNATED_HEARTBEAT_FACTOR: a hibernated leader reports to placement this many times less often. */
export const HIBERNATED_HEARTBEAT_FACTOR = 6;

/**
 * setHibernating is the one writer of a peer's hibernation flag and of the
 * store's set of hibernated peers, so the count is derived from the set and
 * never kept by hand.
 */
export function setHibernating(ctx: StoreContext, peer: Peer, on: boolean): void {
  peer.hibernating = on;
  if (on) ctx.hibernated.add(peer);
  else ctx.hibernated.delete(peer);
  ctx.metrics.hibernated = ctx.hibernated.size;
}

export function wake(ctx: StoreContext, peer: Peer): void {
  if (peer.hibernating) {
    setHibernating(ctx, peer, false);
    if (peer.isLeader) {
      // The followers were caught up and alive when the leader went quiet;
      // without this, the first check-quorum after waking would find no
      // recent activity and step down. Reads confirm leadership with a
      // heartbeat round anyway (the lease expired during the nap).
      for (const [, pr] of peer.raw.raft.prs.progress) pr.recentActive = true;
    }
  }
  peer.idleTicks = 0;
}

/**
 * maybeHibernate stops ticking an idle Region (TiKV's hibernate Region).
 * The leader decides: once nothing is pending and every peer has its
 * whole log for hibernateAfterTicks ticks, it stops ticking (so sends no
 * heartbeats) and tells its followers with a MsgHibernate; a follower
 * whose log reaches the leader's last index stops ticking too, and one
 * that is behind keeps ticking and wakes the leader with a pre-vote.
 * Any proposal, read or non-heartbeat message wakes a peer; a leader's
 * store that goes unreachable (or that placement reports down) wakes the
 * followers, which then elect a new leader as usual.
 */
export function maybeHibernate(ctx: StoreContext, p: Peer): void {
  if (!ctx.config.hibernate || !p.isLeader || p.mergeState) return;
  if (p.proposals.length > 0 || p.reads.length > 0 || p.mailbox.length > 0 || !fullyReplicated(p)) {
    p.idleTicks = 0;
    return;
  }
  if (++p.idleTicks < ctx.config.hibernateAfterTicks) return;
  setHibernating(ctx, p, true);
  p.hibernateNoticePending = true;
}

/** fullyReplicated: everything is committed and applied here, no transfer is under way, and every peer has the whole log. */
function fullyReplicated(p: Peer): boolean {
  const r = p.raw.raft;
  const last = r.raftLog.lastIndex();
  if (r.raftLog.committed !== last || p.apply.appliedIndex !== last || r.leadTransferee !== 0) return false;
  for (const [id, pr] of r.prs.progress) if (id !== p.peerId && pr.match !== last) return false;
  return true;
}

/**
 * sendHibernateNotice tells the followers the leader went quiet. It runs
 * after the round's Ready messages are queued, so the notice follows the
 * leader's last heartbeat instead of overtaking it.
 */
export function sendHibernateNotice(ctx: StoreContext, p: Peer): void {
  p.hibernateNoticePending = false;
  if (!p.hibernating || !p.isLeader) return;
  const r = p.raw.raft;
  const last = r.raftLog.lastIndex();
  for (const x of p.region.peers) {
    if (x.id === p.peerId) continue;
    sendRaft(ctx, p, newStoreMessage(StoreMessageType.MsgHibernate, { to: x.id, from: p.peerId, term: r.term, index: last }));
  }
}

/** onStoreMessage handles store-level messages (never stepped into raft). */
export function onStoreMessage(ctx: StoreContext, peer: Peer, m: RaftMessage): void {
  if ((m.message.msgType as number) !== StoreMessageType.MsgHibernate) return;
  const r = peer.raw.raft;
  if (peer.isLeader || peer.hibernating || m.fromPeer.id !== peer.leaderId || m.message.term !== r.term) return;
  if (r.raftLog.lastIndex() < m.message.index) return;
  setHibernating(ctx, peer, true);
}

/** wakeRegionsLedFrom wakes hibernated followers whose leader lives on a store that looks dead. */
export function wakeRegionsLedFrom(ctx: StoreContext, storeIds: Set<number>): void {
  if (ctx.hibernated.size === 0 || storeIds.size === 0) return;
  for (const p of [...ctx.hibernated]) {
    if (p.isLeader) continue;
    const leader = p.leaderMeta();
    if (leader && storeIds.has(leader.storeId)) ctx.send(p, { kind: 'wake' });
  }
}
