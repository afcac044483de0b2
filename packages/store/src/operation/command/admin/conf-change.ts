import { ConfChangeType, decodeConfChangeEntry, type ConfChangeV2, type Entry } from '@flotilla/raft-core';
import type { AdminRequest, ChangePeerType, Peer as PeerMeta, RaftCmdRequest, Region, RequestHeader } from '@flotilla/proto';
import type { StoreContext } from '../../../context';
import type { Peer } from '../../../raft/peer';
import type { Callback, CommandResult } from '../../../raft/proposal';
import { destroyPeer } from '../../life';
import { regionHeartbeat } from '../../pd';
import { checkEpoch, type ApplyContext, type ApplyEffect } from '../apply-context';
import { decodeCommand, encodeCommand, err } from '../command';
import { proposeConfChange } from '../propose';

type ChangePeerAdmin = Extract<AdminRequest, { type: 'changePeer' | 'changePeerV2' }>;

/** startConfChange checks a membership change against the Region and proposes it as a ConfChangeV2. */
export function startConfChange(ctx: StoreContext, peer: Peer, header: RequestHeader, admin: ChangePeerAdmin, cb: Callback): void {
  if (header.regionEpoch.confVer !== peer.region.epoch.confVer) return cb(err.epochNotMatch([peer.region]));
  const changes = admin.type === 'changePeer' ? [{ changeType: admin.changeType, peer: admin.peer }] : admin.changes;
  const bad = checkConfChange(peer.region, changes);
  if (bad) return cb(err.invalid(bad));
  const cc: ConfChangeV2 = { transition: 0, changes: changes.map((c) => ({ changeType: c.changeType, nodeId: c.peer.id })) };
  const context = encodeCommand({ header, writes: [], admin });
  for (const c of changes) if (!peer.peerById(c.peer.id)) peer.peerCache.set(c.peer.id, c.peer);
  proposeConfChange(ctx, peer, cc, context, cb);
}

/**
 * checkConfChange refuses membership changes a Region cannot survive (TiKV's
 * check_conf_change): a second peer on a store that already holds one (a
 * store hosts at most one peer per Region, so it could never exist), a peer
 * ID reused on another store, removing an unknown peer, or leaving no voter.
 */
export function checkConfChange(region: Region, changes: { changeType: ChangePeerType; peer: PeerMeta }[]): string | undefined {
  const peers = new Map(region.peers.map((p) => [p.id, p]));
  for (const c of changes) {
    const existing = peers.get(c.peer.id);
    if (c.changeType === ConfChangeType.RemoveNode) {
      if (!existing) return `peer ${c.peer.id} is not in region ${region.id}`;
      peers.delete(c.peer.id);
      continue;
    }
    if (existing && existing.storeId !== c.peer.storeId) return `peer ${c.peer.id} already exists on store ${existing.storeId}`;
    for (const p of peers.values()) {
      if (p.storeId === c.peer.storeId && p.id !== c.peer.id) return `store ${c.peer.storeId} already holds peer ${p.id} of region ${region.id}`;
    }
    peers.set(c.peer.id, { ...c.peer, role: c.changeType === ConfChangeType.AddLearnerNode ? 'learner' : 'voter' });
  }
  if (![...peers.values()].some((p) => p.role === 'voter')) return 'the change would leave the region without a voter';
  return undefined;
}

/**
 * applyConfChangeEntry applies a membership change: the Region's peer list
 * and confVer change with the raft ConfState, in the same KV transaction.
 */
export function applyConfChangeEntry(peer: Peer, e: Entry, ctx: ApplyContext): CommandResult {
  let cc: ConfChangeV2;
  try {
    cc = decodeConfChangeEntry(e.entryType, e.data);
  } catch (error) {
    return err.invalid(`undecodable conf change at index ${e.index}: ${(error as Error).message}`);
  }
  const cmd = decodeContext(e);
  if (cmd) {
    const stale = checkEpoch(peer, cmd, false, true);
    // A stale change is skipped: raft's configuration stays as it was (not
    // calling applyConfChange is how etcd raft rejects a change).
    if (stale) return stale;
  }
  const { peers, added, removed } = applyMembership(peer.region.peers, cc, wantedPeers(cmd));
  peer.confState = peer.raw.applyConfChange(cc);
  // Leaving a joint config is an empty change: membership is already right.
  if (cc.changes.length > 0) {
    peer.region = { ...peer.region, peers, epoch: { ...peer.region.epoch, confVer: peer.region.epoch.confVer + cc.changes.length } };
  }
  const removedSelf = removed.some((p) => p.id === peer.peerId);
  if (removedSelf) peer.pendingRemove = true;
  ctx.batch.batch.setRegionState(peer.regionId, peer.localState());
  ctx.effects.push({ type: 'confChange', peer, removedSelf, added, removed });
  return { ok: true, regions: [peer.region] };
}

function decodeContext(e: Entry): RaftCmdRequest | undefined {
  if (!e.context || e.context.length === 0) return undefined;
  try {
    return decodeCommand(e.context);
  } catch {
    return undefined;
  }
}

/** wantedPeers: the peer records (with their stores) the proposer named; raft's change carries only IDs. */
function wantedPeers(cmd: RaftCmdRequest | undefined): Map<number, PeerMeta> {
  const wanted = new Map<number, PeerMeta>();
  if (cmd?.admin?.type === 'changePeer') wanted.set(cmd.admin.peer.id, cmd.admin.peer);
  if (cmd?.admin?.type === 'changePeerV2') for (const c of cmd.admin.changes) wanted.set(c.peer.id, c.peer);
  return wanted;
}

function applyMembership(before: PeerMeta[], cc: ConfChangeV2, wanted: Map<number, PeerMeta>): { peers: PeerMeta[]; added: PeerMeta[]; removed: PeerMeta[] } {
  let peers = [...before];
  const added: PeerMeta[] = [];
  const removed: PeerMeta[] = [];
  for (const c of cc.changes) {
    const existing = peers.find((p) => p.id === c.nodeId);
    const storeId = wanted.get(c.nodeId)?.storeId ?? existing?.storeId ?? 0;
    if (c.changeType === ConfChangeType.RemoveNode) {
      if (existing) {
        peers = peers.filter((p) => p.id !== c.nodeId);
        removed.push(existing);
      }
    } else {
      const role = c.changeType === ConfChangeType.AddLearnerNode ? 'learner' : 'voter';
      if (existing) peers = peers.map((p) => (p.id === c.nodeId ? { ...p, role } : p));
      else {
        const np: PeerMeta = { id: c.nodeId, storeId, role };
        peers.push(np);
        added.push(np);
      }
    }
  }
  return { peers, added, removed };
}

/** onConfChangeApplied acts on an applied membership change: a removed peer destroys itself; a leader reports the new membership. */
export function onConfChangeApplied(ctx: StoreContext, e: Extract<ApplyEffect, { type: 'confChange' }>): void {
  const p = e.peer;
  if (e.removedSelf) {
    ctx.logger.info({ regionId: p.regionId, peerId: p.peerId }, 'peer removed from region; destroying');
    destroyPeer(ctx, p, true);
    return;
  }
  ctx.logger.info(
    { regionId: p.regionId, added: e.added.map((x) => x.id), removed: e.removed.map((x) => x.id), confVer: p.region.epoch.confVer },
    'applied conf change',
  );
  if (p.isLeader) void regionHeartbeat(ctx, p);
}
