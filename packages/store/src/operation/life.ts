import { MessageType, type ConfState } from '@flotilla/raft-core';
import { compareKeys, type RaftMessage, type Region } from '@flotilla/proto';
import type { StoreContext } from '../context';
import type { ApplyState } from '../engines';
import type { CommandResult } from '../raft/proposal';
import type { PeerMsg } from '../router/message';
import { Peer } from '../raft/peer';
import { emptyConf, initialApplyState } from '../raft/storage';
import { err } from './command/command';
import { failPending } from './command/propose';
import { setHibernating } from './hibernate';

/**
 * recover recreates every Region peer from the KV engine's region states.
 * The logs the KV engine is ahead of are repaired first, in one write,
 * and only then do the peers start: raft reads its initial state from the
 * log, and a peer started on the unrepaired one has an applied index past
 * its last index (the power-loss run found a split's new Region durable in
 * kv.db and absent from raft.db, and the store refused to start).
 */
export function recover(ctx: StoreContext): void {
  const toStart: Peer[] = [];
  for (const { regionId, apply, local } of ctx.sm.loadRegions()) {
    if (local.state === 'tombstone') {
      ctx.tombstones.set(regionId, local.tombstonePeerId ?? Number.MAX_SAFE_INTEGER);
      continue;
    }
    const me = local.region.peers.find((p) => p.storeId === ctx.storeId);
    if (!me) continue;
    const applyState = apply ?? initialApplyState();
    ensureLogMatchesApply(ctx, regionId, applyState, local.confState);
    const peer = new Peer(local.region, me.id, applyState, local.confState, true);
    peer.mergeState = local.merge;
    toStart.push(peer);
  }
  if (!ctx.pendingLog.isEmpty) ctx.flushPendingLog();
  for (const peer of toStart) startPeer(ctx, peer);
  ctx.logger.info({ regions: ctx.peers.size }, 'store recovered region peers');
}

/**
 * ensureLogMatchesApply repairs the one gap a crash can leave between the
 * two engines: the KV engine durably applied a snapshot or a split (its
 * apply state is ahead) but the log engine's matching write was lost.
 * The log then restarts at the applied index, as after a snapshot.
 */
function ensureLogMatchesApply(ctx: StoreContext, regionId: number, apply: ApplyState, confState: ConfState): void {
  const has = ctx.log.hasRegion(regionId);
  const last = has ? ctx.log.lastIndex(regionId) : 0;
  if (!has || last < apply.appliedIndex) {
    ctx.pendingLog.applySnapshotMeta(regionId, apply.appliedIndex, apply.appliedTerm, confState);
    const hs = has ? ctx.log.raftState(regionId).hardState : { term: 0, vote: 0, commit: 0 };
    ctx.pendingLog.setHardState(regionId, {
      term: Math.max(hs.term, apply.appliedTerm),
      vote: hs.term >= apply.appliedTerm ? hs.vote : 0,
      commit: apply.appliedIndex,
    });
  }
}

export function startPeer(ctx: StoreContext, peer: Peer): void {
  peer.start(ctx.config, ctx.log.storage(peer.regionId), ctx.sm, ctx.random, ctx.raftLoggerFor(peer.regionId));
  ctx.peers.set(peer.regionId, peer);
  ctx.metrics.regions = ctx.peers.size;
}

/**
 * maybeCreatePeer creates an uninitialized peer for a Region this store
 * has not heard of, when the message is one that starts a peer's life
 * (a vote, a heartbeat from a new leader, an append or a snapshot) and no
 * initialized local Region overlaps the message's range.
 */
export function maybeCreatePeer(ctx: StoreContext, m: RaftMessage): Peer | undefined {
  if (m.isTombstone) return undefined;
  const gone = ctx.tombstones.get(m.regionId);
  if (gone !== undefined && m.toPeer.id <= gone) return undefined;
  const t = m.message.msgType;
  const initial =
    t === MessageType.MsgRequestVote ||
    t === MessageType.MsgRequestPreVote ||
    t === MessageType.MsgHeartbeat ||
    t === MessageType.MsgApp ||
    t === MessageType.MsgSnapshot;
  if (!initial) return undefined;
  for (const p of ctx.peers.values()) {
    if (!p.initialized) continue;
    if (rangesOverlap(p.region.startKey, p.region.endKey, m.startKey, m.endKey)) {
      // An older overlapping peer may be left over from a merge or removal
      // this store missed: ask placement about it now rather than later.
      if (p.region.epoch.version < m.regionEpoch.version) void checkStalePeer(ctx, p);
      return undefined;
    }
  }
  // Leftover raft state of an earlier peer of this Region (an uninitialized
  // peer, which recovery does not restart, or one skipped at recovery) must
  // not seed the new one's log; but its term and vote carry over.
  if (ctx.log.hasRegion(m.regionId)) {
    const vote = durableVote(ctx, m.regionId);
    ctx.pendingLog.removeRegion(m.regionId);
    if (vote.term > 0) ctx.pendingLog.setHardState(m.regionId, { term: vote.term, vote: vote.vote, commit: 0 });
    ctx.flushPendingLog();
  }
  const region: Region = { id: m.regionId, startKey: m.startKey, endKey: m.endKey, epoch: { confVer: 0, version: 0 }, peers: [] };
  const peer = new Peer(region, m.toPeer.id, { appliedIndex: 0, appliedTerm: 0, truncatedIndex: 0, truncatedTerm: 0 }, emptyConf(), false);
  // Remember the sender so the first responses can be routed.
  peer.peerCache.set(m.fromPeer.id, m.fromPeer);
  peer.peerCache.set(m.toPeer.id, m.toPeer);
  startPeer(ctx, peer);
  ctx.logger.info({ regionId: m.regionId, peerId: m.toPeer.id }, 'created uninitialized peer');
  return peer;
}

/**
 * TermVote is the part of a hard state that must survive a peer being
 * replaced by another of the same Region: a peer that granted a vote in a
 * term and then forgot it could grant a second one in that term, and two
 * leaders could be elected in it. Recovery restarts only Regions the KV
 * engine knows, so an uninitialized peer (created by a vote request, never
 * given a snapshot) is not restarted: its vote lives only in the log engine.
 */
export interface TermVote {
  term: number;
  vote: number;
}

/** durableVote reads the term and vote the log engine holds for a Region (zero when it has none). */
export function durableVote(ctx: StoreContext, regionId: number): TermVote {
  if (!ctx.log.hasRegion(regionId)) return { term: 0, vote: 0 };
  const hs = ctx.log.raftState(regionId).hardState;
  return { term: hs.term, vote: hs.vote };
}

/**
 * peerVote is the term and vote of a live peer: raft's in-memory values,
 * which are at least what is durable and include a vote whose Ready is
 * still queued in this round (destroyPeer drops queued log writes).
 */
export function peerVote(ctx: StoreContext, peer: Peer): TermVote {
  const d = durableVote(ctx, peer.regionId);
  const r = peer.raw.raft;
  return r.term >= d.term ? { term: r.term, vote: r.vote } : d;
}

/**
 * seedHardState is the hard state a Region's new peer starts from when its
 * log starts at initIndex/initTerm (a split's new Region): the initial one,
 * unless an earlier peer of this Region on this store already voted in a
 * later term, whose term and vote it keeps (etcd raft's rule that a vote
 * is never cast twice in a term holds across the replacement).
 */
export function seedHardState(prior: TermVote, initTerm: number, initIndex: number): { term: number; vote: number; commit: number } {
  if (prior.term > initTerm) return { term: prior.term, vote: prior.vote, commit: initIndex };
  return { term: initTerm, vote: 0, commit: initIndex };
}

/**
 * destroyPeer removes a peer; with cleanData its range's keys go too (it
 * left the Region). The KV engine records a tombstone with the peer's ID,
 * for an uninitialized peer too, so that after a restart a late message to
 * that ID does not create it again with its vote forgotten; a split that
 * replaces an uninitialized peer with the Region's first initialized one
 * (same ID) passes tombstone=false and carries the vote itself.
 */
export function destroyPeer(ctx: StoreContext, peer: Peer, cleanData: boolean, tombstone = true): void {
  failPending(peer, err.regionNotFound(peer.regionId));
  failMailbox(peer.mailbox.splice(0), err.regionNotFound(peer.regionId));
  ctx.peers.delete(peer.regionId);
  ctx.dirty.delete(peer);
  ctx.metrics.regions = ctx.peers.size;
  if (peer.hibernating) setHibernating(ctx, peer, false);
  if (peer.initialized) {
    const b = ctx.sm.newBatch();
    if (cleanData) {
      let overlapped = false;
      for (const p of ctx.peers.values()) if (p.initialized && rangesOverlap(p.region.startKey, p.region.endKey, peer.region.startKey, peer.region.endKey)) overlapped = true;
      if (!overlapped) b.deleteRegionData(peer.region.startKey, peer.region.endKey);
    }
    b.setRegionState(peer.regionId, { region: peer.region, state: 'tombstone', confState: peer.confState, tombstonePeerId: peer.peerId });
    ctx.sm.write(b);
  } else if (tombstone) {
    const b = ctx.sm.newBatch();
    b.setRegionState(peer.regionId, { region: peer.region, state: 'tombstone', confState: emptyConf(), tombstonePeerId: peer.peerId });
    ctx.sm.write(b);
  }
  ctx.tombstones.set(peer.regionId, peer.peerId);
  // Written at once: a new peer of the same Region (a re-add) must not
  // start from the old peer's raft state. Log changes queued for it earlier
  // in this round (a compaction applied just before its own removal) go:
  // they would name a log that no longer exists.
  const id = peer.regionId;
  for (const b of [ctx.pendingLog, ...ctx.deferredLog]) {
    const keep = b.ops.filter((op) => op.regionId !== id);
    if (keep.length !== b.ops.length) b.ops.splice(0, b.ops.length, ...keep);
  }
  ctx.pendingLog.removeRegion(id);
  ctx.flushPendingLog();
}

/** failMailbox answers the messages that carry a callback (they must not be lost) of a peer that will not handle them. */
export function failMailbox(msgs: PeerMsg[], result: CommandResult): void {
  for (const m of msgs) if (m.kind === 'command' || m.kind === 'proposeSplit' || m.kind === 'proposeOnePc') m.cb(result);
}

/**
 * checkStalePeer asks placement whether a peer that has had no leader for
 * a long time (or that blocks a newer overlapping Region) still belongs to
 * its Region; if not (the Region was merged away, or a newer membership no
 * longer lists this peer — TiKV's stale peer check) it sends the peer a
 * `destroy` message.
 */
export async function checkStalePeer(ctx: StoreContext, p: Peer): Promise<void> {
  if (p.staleCheckInFlight || ctx.closed) return;
  p.staleCheckInFlight = true;
  try {
    const verdict = await staleVerdict(ctx, p);
    if (verdict && ctx.peers.get(p.regionId) === p) {
      ctx.logger.info({ regionId: p.regionId, peerId: p.peerId, why: verdict.reason }, 'destroying stale peer');
      ctx.send(p, { kind: 'destroy', ...verdict });
    }
  } catch (e) {
    ctx.logger.debug({ regionId: p.regionId, err: (e as Error).message }, 'stale peer check failed');
  } finally {
    p.staleCheckInFlight = false;
  }
}

async function staleVerdict(ctx: StoreContext, p: Peer): Promise<{ cleanData: boolean; reason: string } | undefined> {
  const info = await ctx.pd.getRegionById(p.regionId);
  if (ctx.peers.get(p.regionId) !== p) return undefined;
  if (!info) {
    // Placement replaces a Region only with a newer one covering its range (merge).
    const cover = await ctx.pd.getRegion(p.region.startKey).catch(() => null);
    const merged = cover !== null && cover.region.id !== p.regionId && cover.region.epoch.version > p.region.epoch.version;
    // If the merge target has a peer here, that peer's CommitMerge catches
    // this source up and destroys it; destroying it first would lose the
    // source's data from the merged Region on this store. The local target
    // may carry another ID than placement's current covering Region (it
    // may have split since), so any initialized local neighbour counts.
    if (!merged || (await mayBeAbsorbedLocally(ctx, p, cover.region))) return undefined;
    // Keep the keys: the range now belongs to the merged Region, whose
    // peer here (when it comes) starts from a snapshot of it.
    return { cleanData: false, reason: 'region merged away' };
  }
  if (info.region.peers.some((x) => x.id === p.peerId)) return undefined;
  const removed = info.region.epoch.confVer > p.region.epoch.confVer || !p.initialized;
  return removed ? { cleanData: true, reason: 'peer no longer in region' } : undefined;
}

/**
 * mayBeAbsorbedLocally: a local peer may still apply the CommitMerge that
 * absorbs p, so p's data must stay. Two ways: the Region now covering p's
 * range (`cover`, placement's view) has an initialized local peer that is
 * behind placement — catching up from its own log it may apply the merges
 * that absorb p, directly or through CatchUpLogs of an intermediate source;
 * or an initialized local neighbour touching or overlapping p is behind
 * placement's view of its own Region, so it may be p's merge target.
 * A neighbour placement no longer knows, whose range placement covers with
 * a newer Region, was merged away itself: it can move on only through the
 * covering Region's peer (the first case), never on its own. Counting it
 * made two such neighbours protect each other for ever (sim seed 90025:
 * Regions 1002 and 1007, both merged into 1021, kept each other alive on
 * a store and blocked its new peer of 1021).
 */
async function mayBeAbsorbedLocally(ctx: StoreContext, p: Peer, cover: Region): Promise<boolean> {
  const c = ctx.peers.get(cover.id);
  if (c && c !== p && c.initialized && c.region.epoch.version < cover.epoch.version) return true;
  const r = p.region;
  for (const q of [...ctx.peers.values()]) {
    if (q === p || !q.initialized) continue;
    const touches =
      (r.endKey.length > 0 && compareKeys(q.region.startKey, r.endKey) === 0) ||
      (q.region.endKey.length > 0 && compareKeys(q.region.endKey, r.startKey) === 0);
    if (!touches && !rangesOverlap(q.region.startKey, q.region.endKey, r.startKey, r.endKey)) continue;
    const info = await ctx.pd.getRegionById(q.regionId);
    if (info) {
      if (info.region.epoch.version > q.region.epoch.version) return true;
    } else if (!(await mergedAway(ctx, q))) return true;
  }
  return false;
}

/** mergedAway: placement covers q's range with a newer Region of another ID (q's own merge happened). */
async function mergedAway(ctx: StoreContext, q: Peer): Promise<boolean> {
  const cover = await ctx.pd.getRegion(q.region.startKey).catch(() => null);
  return cover !== null && cover.region.id !== q.regionId && cover.region.epoch.version > q.region.epoch.version;
}

export function rangesOverlap(aStart: Uint8Array, aEnd: Uint8Array, bStart: Uint8Array, bEnd: Uint8Array): boolean {
  // [aStart, aEnd) and [bStart, bEnd) overlap iff aStart < bEnd and bStart < aEnd (empty end = +inf).
  const aBeforeBEnd = bEnd.length === 0 || compareKeys(aStart, bEnd) < 0;
  const bBeforeAEnd = aEnd.length === 0 || compareKeys(bStart, aEnd) < 0;
  return aBeforeBEnd && bBeforeAEnd;
}
