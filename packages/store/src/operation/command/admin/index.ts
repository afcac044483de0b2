import { ConfChangeType } from '@flotilla/raft-core';
import type { AdminRequest, RequestHeader } from '@flotilla/proto';
import type { OperatorInstruction } from '@flotilla/placement/client';
import type { StoreContext } from '../../../context';
import type { Peer } from '../../../raft/peer';
import type { Callback, CommandResult } from '../../../raft/proposal';
import { expireLease } from '../../query';
import type { ApplyEffect } from '../apply-context';
import { encodeCommand, err } from '../command';
import { propose } from '../propose';
import { onCompactApplied } from './compact-log';
import { onConfChangeApplied, startConfChange } from './conf-change';
import { onCommitMergeApplied, onPrepareMergeApplied, onRollbackMergeApplied, startMerge } from './merge';
import { onSplitApplied } from './split';

/** startAdmin starts a raw admin command (tools, tests, placement operators). */
export function startAdmin(ctx: StoreContext, peer: Peer, header: RequestHeader, admin: AdminRequest, cb: Callback): void {
  switch (admin.type) {
    case 'transferLeader':
      expireLease(peer);
      peer.raw.transferLeader(admin.peer.id);
      ctx.markDirty(peer);
      return cb({ ok: true });
    case 'changePeer':
    case 'changePeerV2':
      return startConfChange(ctx, peer, header, admin, cb);
    case 'compactLog':
    case 'batchSplit':
      return propose(ctx, peer, encodeCommand({ header, writes: [], admin }), cb);
    case 'prepareMerge':
      // Raw PrepareMerge (tools and tests); the 'merge' op computes minIndex and checks placement rules.
      return propose(ctx, peer, encodeCommand({ header, writes: [], admin }), cb);
    default:
      return cb(err.invalid(`admin command ${admin.type} is not supported yet`));
  }
}

/** afterApply acts on one applied admin command once the round's KV write is done. */
export function afterApply(ctx: StoreContext, e: ApplyEffect): void {
  // A membership change, split or merge changes who may elect a leader or
  // which keys the Region holds: the next read confirms leadership anew.
  if (e.type === 'split') expireLease(e.parent);
  else if (e.type === 'commitMerge') expireLease(e.target);
  else if (e.type !== 'compact') expireLease(e.peer);
  switch (e.type) {
    case 'compact':
      return onCompactApplied(ctx, e);
    case 'confChange':
      return onConfChangeApplied(ctx, e);
    case 'split':
      return onSplitApplied(ctx, e);
    case 'prepareMerge':
      return onPrepareMergeApplied(ctx, e);
    case 'commitMerge':
      return onCommitMergeApplied(ctx, e);
    case 'rollbackMerge':
      return onRollbackMergeApplied(ctx, e);
  }
}

/** executeOperator runs one step placement asked for (idempotent: repeated until done). */
export function executeOperator(ctx: StoreContext, p: Peer, op: OperatorInstruction): void {
  if (!p.isLeader || ctx.peers.get(p.regionId) !== p) return;
  const header = { regionId: p.regionId, regionEpoch: p.region.epoch };
  const step = op.step;
  const done = (r: CommandResult) => {
    if (!r.ok) ctx.logger.info({ regionId: p.regionId, op: op.kind, err: r.error.type }, 'operator step not applied');
  };
  ctx.logger.info({ regionId: p.regionId, operator: op.operatorId, step: step.type }, 'executing operator step');
  // Decide on the Region's membership only: the peer cache is for routing
  // and already holds a peer whose first proposal may have been lost.
  const stepPeer = 'peer' in step ? step.peer : undefined;
  const member = stepPeer ? p.region.peers.find((x) => x.id === stepPeer.id) : undefined;
  switch (step.type) {
    case 'addLearner':
      if (member) return;
      return startAdmin(ctx, p, header, { type: 'changePeer', changeType: ConfChangeType.AddLearnerNode, peer: { ...step.peer, role: 'learner' } }, done);
    case 'addPeer':
    case 'promoteLearner':
      if (member?.role === 'voter') return;
      return startAdmin(ctx, p, header, { type: 'changePeer', changeType: ConfChangeType.AddNode, peer: { ...step.peer, role: 'voter' } }, done);
    case 'removePeer':
      if (!member) return;
      if (step.peer.id === p.peerId) return handOffLeadership(ctx, p);
      return startAdmin(ctx, p, header, { type: 'changePeer', changeType: ConfChangeType.RemoveNode, peer: step.peer }, done);
    case 'transferLeader': {
      const target = p.region.peers.find((x) => x.storeId === step.toStoreId);
      if (target && target.id !== p.peerId) {
        p.raw.transferLeader(target.id);
        ctx.markDirty(p);
      }
      return;
    }
    case 'merge':
      if (p.mergeState) return;
      return startMerge(ctx, p, step.target.id, done);
  }
}

/** handOffLeadership: never remove the leader itself; hand leadership to another voter first. */
function handOffLeadership(ctx: StoreContext, p: Peer): void {
  const other = p.region.peers.find((x) => x.id !== p.peerId && x.role === 'voter');
  if (other) p.raw.transferLeader(other.id);
  ctx.markDirty(p);
}
