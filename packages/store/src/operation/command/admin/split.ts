import { compareKeys, keyInRegion, type AdminRequest, type Region } from '@flotilla/proto';
import type { StoreContext } from '../../../context';
import { Peer } from '../../../raft/peer';
import type { Callback, CommandResult } from '../../../raft/proposal';
import { RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, confStateFromRegion, initialApplyState } from '../../../raft/storage';
import { destroyPeer, durableVote, peerVote, seedHardState, startPeer } from '../../life';
import { regionHeartbeat } from '../../pd';
import type { ApplyContext, ApplyEffect } from '../apply-context';
import { encodeCommand, err } from '../command';
import { propose } from '../propose';

/**
 * startSplit asks placement for IDs for a split at the given keys; the
 * answer comes back to the peer as a `proposeSplit` message, which
 * proposes the BatchSplit if the Region has not changed meanwhile.
 */
export async function startSplit(ctx: StoreContext, peer: Peer, splitKeys: Uint8Array[], cb: Callback): Promise<void> {
  // A key that is already this Region's start key is already a boundary:
  // splitting there is a no-op, so a repeated split (or one whose answer
  // was lost) succeeds instead of sending the client around the retry loop.
  const keys = [...splitKeys]
    .sort(compareKeys)
    .filter((k, i, a) => (i === 0 || compareKeys(a[i - 1]!, k) !== 0) && compareKeys(k, peer.region.startKey) !== 0);
  for (const k of keys) {
    if (!keyInRegion(k, peer.region)) return cb(err.keyNotInRegion(k, peer.region));
  }
  if (keys.length === 0) return cb({ ok: true, regions: [peer.region] });
  const region = peer.region;
  let ids;
  try {
    ids = await ctx.pd.askBatchSplit(region, keys.length);
  } catch (e) {
    return cb(err.unavailable(`placement: ${(e as Error).message}`));
  }
  if (ctx.peers.get(region.id) !== peer) return cb(err.epochNotMatch([peer.region]));
  ctx.send(peer, { kind: 'proposeSplit', epochVersion: region.epoch.version, keys, ids, cb });
}

/** onProposeSplit proposes a BatchSplit with the IDs placement allocated, unless the Region moved on meanwhile. */
export function onProposeSplit(ctx: StoreContext, peer: Peer, m: { epochVersion: number; keys: Uint8Array[]; ids: { newRegionId: number; newPeerIds: number[] }[]; cb: Callback }): void {
  const region = peer.region;
  if (region.epoch.version !== m.epochVersion) return m.cb(err.epochNotMatch([region]));
  if (!peer.isLeader) return m.cb(err.notLeader(peer.regionId, peer.leaderMeta()));
  const admin: AdminRequest = {
    type: 'batchSplit',
    splits: m.keys.map((k, i) => ({ splitKey: k, newRegionId: m.ids[i]!.newRegionId, newPeerIds: m.ids[i]!.newPeerIds })),
    rightDerive: false,
  };
  propose(ctx, peer, encodeCommand({ header: { regionId: region.id, regionEpoch: region.epoch }, writes: [], admin }), m.cb);
}

/**
 * preSplit splits the bootstrap Region at the given keys, at most
 * maxSplitKeysPerBatch per BatchSplit, right to left so the leader keeps the
 * remainder. Each round recomputes what is left from the Region's current
 * range, so a split that applied despite a lost answer is never repeated.
 */
export async function preSplit(ctx: StoreContext, keys: Uint8Array[], timeoutMs: number): Promise<void> {
  const sorted = [...keys].sort(compareKeys).filter((k, i, a) => k.length > 0 && (i === 0 || compareKeys(a[i - 1]!, k) !== 0));
  const deadline = ctx.now() + timeoutMs;
  const first = [...ctx.peers.values()].find((p) => p.region.startKey.length === 0);
  if (!first) return;
  while (ctx.now() < deadline && !ctx.closed) {
    const end = first.region.endKey;
    const todo = sorted.filter((k) => compareKeys(k, first.region.startKey) > 0 && (end.length === 0 || compareKeys(k, end) < 0));
    if (todo.length === 0) return;
    if (first.isLeader) {
      await new Promise<void>((resolve) => void startSplit(ctx, first, todo.slice(-ctx.config.maxSplitKeysPerBatch), () => resolve()));
    } else {
      await new Promise((r) => setTimeout(r, ctx.config.tickIntervalMs));
    }
  }
  ctx.logger.warn({ remaining: sorted.length }, 'pre-split did not finish in time');
}

/**
 * splitCheck looks at every led Region that applied something since its
 * last check and splits those over the thresholds. The approximate stats
 * only decide whether to scan; the scan's exact size and key count decide
 * whether to split, so an estimate that drifted high never splits a Region
 * that the recount just measured under the thresholds.
 */
export function splitCheck(ctx: StoreContext): void {
  if (ctx.closed) return;
  const cfg = ctx.config;
  for (const p of ctx.peers.values()) {
    // Only Regions that applied something since their last check can have grown.
    if (!p.isLeader || !p.initialized || !p.splitCheckDirty) continue;
    p.splitCheckDirty = false;
    const { sizeBytes, keys } = ctx.sm.approximateStats(p.regionId, p.region.startKey, p.region.endKey);
    p.approximateSizeBytes = sizeBytes;
    p.approximateKeys = keys;
    if (sizeBytes < cfg.regionMaxSizeBytes && keys < cfg.regionMaxKeys) continue;
    if (p.splitInFlightVersion === p.region.epoch.version && ctx.now() - p.splitAskedAtMs < cfg.splitRetryAfterMs) continue;
    const scan = ctx.sm.approximateSplitKey(p.region.startKey, p.region.endKey);
    p.approximateSizeBytes = scan.sizeBytes;
    p.approximateKeys = scan.keys;
    if (scan.sizeBytes < cfg.regionMaxSizeBytes && scan.keys < cfg.regionMaxKeys) continue;
    const key = scan.splitKey;
    if (!key || !keyInRegion(key, p.region) || compareKeys(key, p.region.startKey) === 0) continue;
    p.splitInFlightVersion = p.region.epoch.version;
    p.splitAskedAtMs = ctx.now();
    ctx.logger.info({ regionId: p.regionId, sizeBytes: scan.sizeBytes, keys: scan.keys, approximateSizeBytes: sizeBytes, approximateKeys: keys }, 'region over split threshold; splitting');
    void startSplit(ctx, p, [key], (r) => {
      if (!r.ok) {
        p.splitInFlightVersion = 0;
        p.splitCheckDirty = true;
        ctx.logger.warn({ regionId: p.regionId, err: r.error.type }, 'auto split failed');
      }
    });
  }
}

/** applySplit cuts the Region at the split keys: it keeps the leftmost range, and each key starts a new Region to its right. */
export function applySplit(peer: Peer, admin: Extract<AdminRequest, { type: 'batchSplit' }>, ctx: ApplyContext): CommandResult {
  const region = peer.region;
  const bad = checkSplit(region, admin);
  if (bad) return err.invalid(bad);
  const keys = admin.splits.map((s) => s.splitKey);
  const epoch = { confVer: region.epoch.confVer, version: region.epoch.version + admin.splits.length };
  // The original Region keeps the leftmost range; each split creates the
  // Region to the right of its key (rightDerive=false).
  const regions: Region[] = [];
  const left: Region = { ...region, endKey: keys[0] as Uint8Array, epoch };
  regions.push(left);
  admin.splits.forEach((s, i) => {
    const next = admin.splits[i + 1];
    regions.push({
      id: s.newRegionId,
      startKey: s.splitKey,
      endKey: next ? next.splitKey : region.endKey,
      epoch,
      peers: region.peers.map((p, j) => ({ id: s.newPeerIds[j] as number, storeId: p.storeId, role: p.role })),
    });
  });
  peer.region = left;
  ctx.batch.batch.setRegionState(left.id, peer.localState());
  for (const r of regions.slice(1)) {
    if (ctx.splitRegionExists(r.id)) continue;
    ctx.batch.batch.setRegionState(r.id, { region: r, state: 'normal', confState: confStateFromRegion(r) });
    ctx.batch.batch.setApplyState(r.id, initialApplyState());
  }
  ctx.effects.push({ type: 'split', parent: peer, regions, wasLeader: peer.isLeader });
  return { ok: true, regions };
}

function checkSplit(region: Region, admin: Extract<AdminRequest, { type: 'batchSplit' }>): string | undefined {
  const keys = admin.splits.map((s) => s.splitKey);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as Uint8Array;
    if (!keyInRegion(k, region) || compareKeys(k, region.startKey) === 0) return 'split key not strictly inside the Region';
    if (i > 0 && compareKeys(keys[i - 1] as Uint8Array, k) >= 0) return 'split keys must be strictly increasing';
  }
  for (const s of admin.splits) {
    if (s.newPeerIds.length !== region.peers.length) return 'split needs one new peer ID per existing peer';
  }
  return undefined;
}

/** onSplitApplied starts this store's peers of the new Regions (the old leader's campaign at once) and reports the split. */
export function onSplitApplied(ctx: StoreContext, e: Extract<ApplyEffect, { type: 'split' }>): void {
  const { parent, regions, wasLeader } = e;
  parent.splitInFlightVersion = 0;
  for (const r of regions.slice(1)) {
    const me = r.peers.find((p) => p.storeId === ctx.storeId);
    if (!me) continue;
    const existing = ctx.peers.get(r.id);
    // An uninitialized peer of the new Region (created by a vote request from
    // a store that applied the split first) may have voted in this term:
    // the new peer keeps that vote (TiKV keeps such a peer's raft state).
    let prior = durableVote(ctx, r.id);
    if (existing) {
      if (existing.initialized) continue;
      prior = peerVote(ctx, existing);
      destroyPeer(ctx, existing, false, false);
    }
    const conf = confStateFromRegion(r);
    ctx.pendingLog.applySnapshotMeta(r.id, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, conf);
    ctx.pendingLog.setHardState(r.id, seedHardState(prior, RAFT_INIT_LOG_TERM, RAFT_INIT_LOG_INDEX));
    ctx.flushPendingLog();
    const peer = new Peer(r, me.id, initialApplyState(), conf, true);
    startPeer(ctx, peer);
    if (wasLeader) peer.raw.campaign();
    ctx.markDirty(peer);
  }
  ctx.logger.info({ regionId: parent.regionId, regions: regions.map((r) => r.id) }, 'split applied');
  if (wasLeader) {
    void ctx.pd.reportBatchSplit(regions).catch((err: Error) => ctx.logger.warn({ err: err.message }, 'reportBatchSplit failed'));
    void regionHeartbeat(ctx, parent);
  }
}
