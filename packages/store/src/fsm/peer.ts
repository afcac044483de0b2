import { RaftError } from '@flotilla/raft-core';
import { keyInRegion, type ClientRequest } from '@flotilla/proto';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import type { Callback } from '../raft/proposal';
import type { PeerMsg } from '../router/message';
import { executeOperator, startAdmin } from '../operation/command/admin';
import { startMerge, proposeRollbackMerge } from '../operation/command/admin/merge';
import { onProposeSplit, startSplit } from '../operation/command/admin/split';
import { err } from '../operation/command/command';
import { proposeWrite } from '../operation/command/propose';
import { writesBytes } from '../raft/write-batch';
import { maybeHibernate, wake } from '../operation/hibernate';
import { checkStalePeer, destroyPeer, failMailbox } from '../operation/life';
import { recordLoad } from '../operation/load-split-driver';
import { startRead, startTxnRead } from '../operation/query';
import { proposeOnePc, startTxn } from '../operation/txn';
import { onProposeGc } from '../gc/worker';
import { onWatchProbe } from '../watch/resolved';

/** LEADER_MISSING_ELECTIONS: a peer without a leader for this many election timeouts asks placement whether it is stale. */
export const LEADER_MISSING_ELECTIONS = 10;

/**
 * drainMailbox handles up to maxMessagesPerPeerPerPoll queued messages of
 * one peer, in order (TiKV's PeerFsmDelegate::on_msgs). A peer destroyed by
 * one of them answers the rest that carry a callback.
 */
export function drainMailbox(ctx: StoreContext, peer: Peer): void {
  const n = Math.min(peer.mailbox.length, ctx.config.maxMessagesPerPeerPerPoll);
  if (n === 0) return;
  const items = peer.mailbox.splice(0, n);
  for (let i = 0; i < items.length; i++) {
    onPeerMsg(ctx, peer, items[i]!);
    if (ctx.peers.get(peer.regionId) !== peer) {
      failMailbox(items.slice(i + 1), err.regionNotFound(peer.regionId));
      return;
    }
  }
  if (peer.mailbox.length > 0) ctx.dirty.add(peer);
}

/** onPeerMsg is the one dispatcher: every way into a peer passes here (router/message.ts lists them). */
export function onPeerMsg(ctx: StoreContext, peer: Peer, m: PeerMsg): void {
  switch (m.kind) {
    case 'raft':
    case 'snapshotData':
      return stepRaft(ctx, peer, m);
    case 'tick':
      return onTick(ctx, peer);
    case 'command':
      return onCommand(ctx, peer, m.req, m.cb);
    case 'operator':
      return executeOperator(ctx, peer, m.op);
    case 'snapshotStatus':
      return peer.raw.reportSnapshot(m.toPeerId, m.status);
    case 'unreachable':
      if (peer.isLeader) peer.raw.reportUnreachable(m.toPeerId);
      return;
    case 'wake':
      return wake(ctx, peer);
    case 'destroy':
      return destroyPeer(ctx, peer, m.cleanData);
    case 'rollbackMerge':
      if (peer.mergeState && peer.isLeader) proposeRollbackMerge(ctx, peer);
      return;
    case 'proposeSplit':
      return onProposeSplit(ctx, peer, m);
    case 'proposeOnePc':
      return proposeOnePc(ctx, peer, m.req, m.commitTs, m.cb);
    case 'proposeGc':
      return onProposeGc(ctx, peer, m);
    case 'watchProbe':
      return onWatchProbe(ctx, peer, m);
  }
}

function stepRaft(ctx: StoreContext, peer: Peer, m: Extract<PeerMsg, { kind: 'raft' | 'snapshotData' }>): void {
  if (m.kind === 'snapshotData') {
    m.msg.snapshot = m.msg.snapshot ? { ...m.msg.snapshot, data: m.data } : undefined;
  }
  if (!peer.peerById(m.fromPeer.id)) peer.peerCache.set(m.fromPeer.id, m.fromPeer);
  try {
    peer.raw.step(m.msg);
  } catch (e) {
    // Responses from peers not in the configuration, etc.: expected and
    // harmless. Anything else (raft-core's invariant asserts) is a bug and
    // must crash the store rather than be logged away.
    if (!(e instanceof RaftError)) throw e;
    ctx.logger.debug({ regionId: peer.regionId, err: e.message }, 'dropped raft message');
  }
}

/** onTick advances raft time by one tick and runs the per-tick checks (stale peer, hibernation). */
function onTick(ctx: StoreContext, p: Peer): void {
  if (p.hibernating) return;
  p.raw.tick();
  p.ticks++;
  ctx.metrics.peerTicks++;
  // Ticks since the last word from a leader (reset when one arrives):
  // a follower or learner cut off for long asks placement if it is stale.
  // Learners never campaign, so "no known leader" alone would miss them.
  if (!p.isLeader) {
    const every = ctx.config.electionTicks * LEADER_MISSING_ELECTIONS;
    if (++p.leaderMissingTicks % every === 0) void checkStalePeer(ctx, p);
  } else {
    p.leaderMissingTicks = 0;
  }
  maybeHibernate(ctx, p);
}

/**
 * onCommand starts one client request on the peer. The store checked the
 * Region when the request arrived; leadership and the epoch are checked
 * here, as of this round.
 */
function onCommand(ctx: StoreContext, peer: Peer, req: ClientRequest, cb: Callback): void {
  wake(ctx, peer);
  if (!peer.isLeader) return cb(err.notLeader(peer.regionId, peer.leaderMeta()));
  // A Region being merged away serves nothing: its range is about to belong to the target.
  if (peer.mergeState) return cb(err.epochNotMatch([peer.region]));
  if (req.op !== 'admin' && req.header.regionEpoch.version !== peer.region.epoch.version) return cb(err.epochNotMatch([peer.region]));
  recordLoad(ctx, peer, req);
  switch (req.op) {
    case 'read':
      return startRead(ctx, peer, req.read, cb);
    case 'write': {
      for (const w of req.writes) {
        if (w.type !== 'deleteRange' && !keyInRegion(w.key, peer.region)) return cb(err.keyNotInRegion(w.key, peer.region));
      }
      peer.flow.write(req.writes.length, writesBytes(req.writes));
      return proposeWrite(ctx, peer, req.header, req.writes, cb);
    }
    case 'admin':
      return startAdmin(ctx, peer, req.header, req.admin, cb);
    case 'split':
      return void startSplit(ctx, peer, req.splitKeys, cb);
    case 'merge':
      return startMerge(ctx, peer, req.targetRegionId, cb);
    case 'txn':
      return startTxn(ctx, peer, req, cb);
    case 'txnRead':
      return startTxnRead(ctx, peer, req.read, cb);
  }
}
