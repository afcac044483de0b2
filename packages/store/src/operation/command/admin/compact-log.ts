import type { AdminRequest } from '@flotilla/proto';
import type { StoreContext } from '../../../context';
import type { Peer } from '../../../raft/peer';
import type { CommandResult } from '../../../raft/proposal';
import type { ApplyContext, ApplyEffect } from '../apply-context';
import { encodeCommand, err } from '../command';
import { propose } from '../propose';

// Raft log GC in three steps: a leader proposes CompactLog (raftLogGc); every
// replica applies it by moving its truncated index (applyCompactLog); the
// store then queues the log-engine compaction for the next log write, which
// makes the KV engine durable first (onCompactApplied, StoreContext.writeLog);
// the rows themselves are deleted later, in bounded batches (purgeLog).

/** raftLogGc proposes CompactLog on leaders whose log grew past the limits. */
export function raftLogGc(ctx: StoreContext): void {
  if (ctx.closed) return;
  for (const p of ctx.peers.values()) {
    if (!p.isLeader || !p.initialized || p.hibernating || p.mergeState) continue;
    const compactIndex = compactIndexFor(ctx, p);
    if (compactIndex === undefined) continue;
    let term: number;
    try {
      term = p.raw.raft.raftLog.term(compactIndex);
    } catch {
      continue;
    }
    const admin: AdminRequest = { type: 'compactLog', compactIndex, compactTerm: term };
    propose(ctx, p, encodeCommand({ header: { regionId: p.regionId, regionEpoch: p.region.epoch }, writes: [], admin }), () => {});
  }
}

/** compactIndexFor keeps what replicating followers still need, unless the log is far too long; undefined = nothing worth compacting. */
function compactIndexFor(ctx: StoreContext, p: Peer): number | undefined {
  const applied = p.apply.appliedIndex;
  const first = p.apply.truncatedIndex + 1;
  if (applied - first < ctx.config.raftLogGcThreshold) return undefined;
  let minMatch = applied;
  for (const [, pr] of p.raw.raft.prs.progress) if (pr.match < minMatch) minMatch = pr.match;
  const compactIndex = applied - first > ctx.config.raftLogGcCountLimit ? applied : minMatch;
  if (compactIndex <= p.apply.truncatedIndex + ctx.config.raftLogGcThreshold / 2) return undefined;
  return compactIndex;
}

export function applyCompactLog(peer: Peer, admin: Extract<AdminRequest, { type: 'compactLog' }>, ctx: ApplyContext): CommandResult {
  if (admin.compactIndex <= peer.apply.truncatedIndex) return { ok: true };
  if (admin.compactIndex > peer.apply.appliedIndex) return err.invalid('compact index beyond applied index');
  peer.apply = { ...peer.apply, truncatedIndex: admin.compactIndex, truncatedTerm: admin.compactTerm };
  ctx.effects.push({ type: 'compact', peer, index: admin.compactIndex, term: admin.compactTerm });
  return { ok: true };
}

/**
 * onCompactApplied queues the log compaction. Invariant: the raft log is
 * never purged past what the KV engine has durably applied — applies are
 * written without fsync, so the log write that carries the compaction
 * syncs the KV engine first and asserts the bound (StoreContext.writeLog).
 */
export function onCompactApplied(ctx: StoreContext, e: Extract<ApplyEffect, { type: 'compact' }>): void {
  ctx.pendingLog.compact(e.peer.regionId, e.index, e.term);
}

/** purgeLog deletes a bounded batch of compacted log rows (periodic task). */
export function purgeLog(ctx: StoreContext): void {
  if (ctx.closed) return;
  try {
    ctx.log.purge(ctx.config.purgeLogMaxRows);
  } catch (e) {
    ctx.logger.warn({ err: (e as Error).message }, 'log purge failed');
  }
}
