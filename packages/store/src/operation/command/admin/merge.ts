import type { Entry } from '@flotilla/raft-core';
import { compareKeys, decode, encode, type AdminRequest, type RaftCmdRequest, type Region } from '@flotilla/proto';
import { assert, type StoreContext } from '../../../context';
import type { Peer } from '../../../raft/peer';
import type { Callback, CommandResult } from '../../../raft/proposal';
import { wake } from '../../hibernate';
import { destroyPeer } from '../../life';
import { regionHeartbeat } from '../../pd';
import { checkEpoch, type ApplyContext, type ApplyEffect } from '../apply-context';
import { encodeCommand, err } from '../command';
import { propose } from '../propose';

// Merge, all three sides in one place (docs/merge.md): the source leader
// proposes PrepareMerge (startMerge), then drives the merge from its
// periodic check (mergeCheck → tryCommitMerge) until the target applies
// CommitMerge — catching the local source replica up first (catchUpSource)
// — or, once the target's epoch moved on, rolls it back.

/** MAX_MERGE_WAITERS bounds the callbacks waiting on one Region's merge; one more is answered ServerIsBusy. */
export const MAX_MERGE_WAITERS = 64;

/**
 * startMerge proposes PrepareMerge on the source Region (docs/merge.md).
 * The callback is answered when the merge commits (or rolls back).
 */
export function startMerge(ctx: StoreContext, src: Peer, targetRegionId: number, cb: Callback): void {
  const tgt = ctx.peers.get(targetRegionId);
  if (!tgt || !tgt.initialized) return cb(err.invalid(`target region ${targetRegionId} has no peer on this store; move peers first`));
  if (tgt.mergeState) return cb(err.invalid(`target region ${targetRegionId} is itself merging`));
  const refused = checkMergeable(src.region, tgt.region);
  if (refused) return cb(refused);
  const r = src.raw.raft;
  let minIndex = r.raftLog.lastIndex();
  for (const [, pr] of r.prs.progress) if (pr.match < minIndex) minIndex = pr.match;
  if (minIndex < src.apply.truncatedIndex) return cb(err.busy('a source replica is too far behind to merge; retry later', 1000));
  if (src.mergeWaiters.length >= MAX_MERGE_WAITERS) return cb(err.busy(`more than ${MAX_MERGE_WAITERS} merge requests wait on region ${src.regionId}`, 1000));
  src.mergeWaiters.push(cb);
  const a = src.region;
  const admin: AdminRequest = { type: 'prepareMerge', target: tgt.region, minIndex };
  propose(ctx, src, encodeCommand({ header: { regionId: a.id, regionEpoch: a.epoch }, writes: [], admin }), (res) => {
    if (!res.ok) {
      src.mergeWaiters = src.mergeWaiters.filter((w) => w !== cb);
      cb(res);
    }
  });
}

/** checkMergeable refuses a merge of Regions that are not adjacent, not on the same stores, or still adding a learner. */
function checkMergeable(a: Region, b: Region): CommandResult | undefined {
  const adjacent = (a.endKey.length > 0 && compareKeys(a.endKey, b.startKey) === 0) || (b.endKey.length > 0 && compareKeys(b.endKey, a.startKey) === 0);
  if (!adjacent) return err.invalid(`regions ${a.id} and ${b.id} are not adjacent`);
  const storesA = a.peers.map((p) => p.storeId).sort().join(',');
  const storesB = b.peers.map((p) => p.storeId).sort().join(',');
  if (storesA !== storesB) return err.invalid(`regions ${a.id} and ${b.id} must have voters on the same stores (${storesA} vs ${storesB})`);
  // A learner is a replica still being added (placement's replica checker
  // promotes it shortly): wait for it rather than refuse the merge.
  if (a.peers.some((p) => p.role !== 'voter') || b.peers.some((p) => p.role !== 'voter')) {
    return err.busy(`regions ${a.id} and ${b.id} still have a learner being added; retry when it is a voter`, 200);
  }
  return undefined;
}

/**
 * tryCommitMerge drives a prepared merge from the source leader: make the
 * local target peer the target's leader, then propose CommitMerge there.
 * Rollback happens only once the target's epoch has moved past the one
 * the merge was prepared against: from then on no CommitMerge for this
 * merge can apply on any target replica, so rolling back cannot race a
 * late commit. (A timeout alone never rolls back; see docs/merge.md.)
 */
export function tryCommitMerge(ctx: StoreContext, src: Peer): void {
  const ms = src.mergeState;
  if (!ms || !src.isLeader || src.commitMergeInFlight || ctx.peers.get(src.regionId) !== src) return;
  const tgt = ctx.peers.get(ms.target.id);
  if (!tgt || !tgt.initialized) {
    // The target peer is gone from this store (e.g. the target itself was
    // merged away or moved). Placement knows whether the target still has
    // the prepared epoch; if not, no CommitMerge can ever apply: roll back.
    if (ctx.now() - src.mergeStartedMs > ctx.config.mergeTargetCheckAfterMs) void checkMergeTargetGone(ctx, src);
    return;
  }
  const te = tgt.region.epoch;
  if (te.version !== ms.target.epoch.version || te.confVer !== ms.target.epoch.confVer) {
    proposeRollbackMerge(ctx, src);
    return;
  }
  if (!tgt.isLeader) {
    tgt.raw.transferLeader(tgt.peerId);
    wake(ctx, tgt);
    ctx.markDirty(tgt);
    return;
  }
  let carried: Uint8Array[];
  try {
    carried = ctx.log.entries(src.regionId, ms.minIndex + 1, ms.commit + 1).map((e) => encode(e));
  } catch (e) {
    ctx.logger.error({ regionId: src.regionId, err: (e as Error).message }, 'merge: source entries unavailable');
    return;
  }
  src.commitMergeInFlight = true;
  const admin: AdminRequest = { type: 'commitMerge', source: src.region, commit: ms.commit, entries: carried };
  propose(ctx, tgt, encodeCommand({ header: { regionId: tgt.regionId, regionEpoch: ms.target.epoch }, writes: [], admin }), (res) => {
    src.commitMergeInFlight = false;
    if (!res.ok) ctx.logger.info({ regionId: src.regionId, err: res.error.type }, 'commit merge not applied; will retry');
  });
}

async function checkMergeTargetGone(ctx: StoreContext, src: Peer): Promise<void> {
  const ms = src.mergeState;
  if (!ms || src.staleCheckInFlight) return;
  src.staleCheckInFlight = true;
  try {
    const info = await ctx.pd.getRegionById(ms.target.id);
    const e = info?.region.epoch;
    // Only a strictly newer target epoch (or a target placement replaced
    // with a newer Region) proves no CommitMerge for this merge can apply;
    // an older placement view proves nothing.
    const moved = !info || e!.version > ms.target.epoch.version || e!.confVer > ms.target.epoch.confVer;
    if (moved && src.mergeState === ms && src.isLeader && !ctx.peers.get(ms.target.id)) {
      ctx.logger.warn({ regionId: src.regionId, target: ms.target.id }, 'merge target gone or changed (placement); rolling back');
      ctx.send(src, { kind: 'rollbackMerge' });
    }
  } catch (e) {
    ctx.logger.debug({ regionId: src.regionId, err: (e as Error).message }, 'merge target check failed');
  } finally {
    src.staleCheckInFlight = false;
  }
}

export function proposeRollbackMerge(ctx: StoreContext, src: Peer): void {
  const ms = src.mergeState;
  if (!ms || src.commitMergeInFlight) return;
  src.commitMergeInFlight = true;
  ctx.logger.info({ regionId: src.regionId, target: ms.target.id }, 'target epoch changed; rolling back merge');
  const admin: AdminRequest = { type: 'rollbackMerge', commit: ms.commit };
  propose(ctx, src, encodeCommand({ header: { regionId: src.regionId, regionEpoch: src.region.epoch }, writes: [], admin }), (res) => {
    if (!res.ok) src.commitMergeInFlight = false;
  });
}

/** mergeCheck drives every prepared merge this store leads (periodic task). */
export function mergeCheck(ctx: StoreContext): void {
  if (ctx.closed) return;
  for (const p of ctx.peers.values()) {
    if (!p.mergeState || !p.isLeader) continue;
    if (p.mergeStartedMs === 0) p.mergeStartedMs = ctx.now();
    tryCommitMerge(ctx, p);
  }
}

/**
 * catchUpSource is CatchUpLogs (docs/merge.md): before the target absorbs
 * the source, the local source replica applies everything up to the
 * source's PrepareMerge — from its own log where it has the entries, from
 * the entries CommitMerge carries otherwise — in the same KV transaction.
 */
export function catchUpSource(ctx: StoreContext, sourceId: number, commit: number, carried: Uint8Array[], apply: ApplyContext): boolean {
  const src = ctx.peers.get(sourceId);
  if (!src) return ctx.tombstones.has(sourceId) ? true : sourceNeverHere(ctx, sourceId);
  assert(src.initialized, `merge: source region ${sourceId} is not initialized on store ${ctx.storeId}`);
  if (src.apply.appliedIndex >= commit) return true;
  const entries: Entry[] = [];
  let next = src.apply.appliedIndex + 1;
  try {
    const own = ctx.log.entries(sourceId, next, Math.min(ctx.log.lastIndex(sourceId), commit) + 1);
    for (const e of own) entries.push(e);
    next += own.length;
  } catch {
    // compacted or missing locally: the carried entries must cover it
  }
  for (const b of carried) {
    const e = decode(b) as Entry;
    if (e.index === next && e.index <= commit) {
      entries.push(e);
      next++;
    }
  }
  assert(next > commit, `merge: source region ${sourceId} cannot catch up to ${commit} (reached ${next - 1})`);
  apply.applyEntries(src, entries);
  return true;
}

function sourceNeverHere(ctx: StoreContext, sourceId: number): boolean {
  // Placement only merges Regions whose peers share stores; a store
  // without the source peer cannot hold the source's data.
  ctx.logger.error({ sourceId }, 'merge: source region was never on this store');
  return false;
}

// ---------------------------------------------------------------- apply side

type MergeAdmin<T extends string> = Extract<AdminRequest, { type: T }>;

/** applyPrepareMerge freezes the source: a new epoch, and the merge state every replica agrees on. */
export function applyPrepareMerge(peer: Peer, cmd: RaftCmdRequest, admin: MergeAdmin<'prepareMerge'>, e: Entry, ctx: ApplyContext): CommandResult {
  const stale = checkEpoch(peer, cmd, true, true);
  if (stale) return stale;
  if (peer.mergeState) return err.invalid('region is already merging');
  const epoch = { version: peer.region.epoch.version + 1, confVer: peer.region.epoch.confVer + 1 };
  peer.region = { ...peer.region, epoch };
  peer.mergeState = { minIndex: admin.minIndex, commit: e.index, target: admin.target };
  ctx.batch.batch.setRegionState(peer.regionId, peer.localState());
  ctx.effects.push({ type: 'prepareMerge', peer });
  return { ok: true, regions: [peer.region] };
}

/** applyCommitMerge extends the target over the source's range, after the local source replica caught up. */
export function applyCommitMerge(peer: Peer, cmd: RaftCmdRequest, admin: MergeAdmin<'commitMerge'>, ctx: ApplyContext): CommandResult {
  const stale = checkEpoch(peer, cmd, true, true);
  if (stale) return stale;
  const src = admin.source;
  const tgt = peer.region;
  const leftAdjacent = src.endKey.length > 0 && compareKeys(src.endKey, tgt.startKey) === 0;
  const rightAdjacent = tgt.endKey.length > 0 && compareKeys(tgt.endKey, src.startKey) === 0;
  if (!leftAdjacent && !rightAdjacent) return err.invalid(`region ${src.id} is not adjacent to region ${tgt.id}`);
  if (!ctx.catchUpSource(src.id, admin.commit, admin.entries)) {
    return err.unavailable(`source region ${src.id} cannot catch up to ${admin.commit} on store ${ctx.storeId}`);
  }
  const version = Math.max(src.epoch.version, tgt.epoch.version) + 1;
  peer.region = {
    ...tgt,
    startKey: leftAdjacent ? src.startKey : tgt.startKey,
    endKey: leftAdjacent ? tgt.endKey : src.endKey,
    epoch: { ...tgt.epoch, version },
  };
  ctx.batch.batch.setRegionState(peer.regionId, peer.localState());
  ctx.effects.push({ type: 'commitMerge', target: peer, sourceId: src.id });
  return { ok: true, regions: [peer.region] };
}

/** applyRollbackMerge unfreezes the source with a newer epoch. */
export function applyRollbackMerge(peer: Peer, admin: MergeAdmin<'rollbackMerge'>, ctx: ApplyContext): CommandResult {
  if (!peer.mergeState || peer.mergeState.commit !== admin.commit) return err.invalid('no such merge to roll back');
  peer.mergeState = undefined;
  peer.region = { ...peer.region, epoch: { ...peer.region.epoch, version: peer.region.epoch.version + 1 } };
  ctx.batch.batch.setRegionState(peer.regionId, peer.localState());
  ctx.effects.push({ type: 'rollbackMerge', peer });
  return { ok: true, regions: [peer.region] };
}

// ---------------------------------------------------------------- after apply

type Effect<T extends ApplyEffect['type']> = Extract<ApplyEffect, { type: T }>;

export function onPrepareMergeApplied(ctx: StoreContext, e: Effect<'prepareMerge'>): void {
  ctx.logger.info({ regionId: e.peer.regionId, target: e.peer.mergeState?.target.id, commit: e.peer.mergeState?.commit }, 'merge prepared');
  if (e.peer.isLeader) {
    e.peer.mergeStartedMs = ctx.now();
    tryCommitMerge(ctx, e.peer);
  }
}

export function onCommitMergeApplied(ctx: StoreContext, e: Effect<'commitMerge'>): void {
  const src = ctx.peers.get(e.sourceId);
  if (src) {
    const waiters = src.mergeWaiters;
    src.mergeWaiters = [];
    for (const w of waiters) w({ ok: true, regions: [e.target.region] });
    destroyPeer(ctx, src, false);
  }
  ctx.logger.info({ regionId: e.target.regionId, source: e.sourceId, version: e.target.region.epoch.version }, 'merge committed');
  if (e.target.isLeader) void regionHeartbeat(ctx, e.target);
}

export function onRollbackMergeApplied(ctx: StoreContext, e: Effect<'rollbackMerge'>): void {
  const waiters = e.peer.mergeWaiters;
  e.peer.mergeWaiters = [];
  e.peer.commitMergeInFlight = false;
  for (const w of waiters) w(err.epochNotMatch([e.peer.region]));
  ctx.logger.info({ regionId: e.peer.regionId }, 'merge rolled back');
  if (e.peer.isLeader) void regionHeartbeat(ctx, e.peer);
}
