import { keyInRegion } from '@flotilla/proto';
import type { ApplyContext } from '../operation/command/apply-context';
import type { Peer } from '../raft/peer';
import type { CommandResult } from '../raft/proposal';
import type { GcCommand } from './command';

/** appliedSafePoints: the highest GC safe point each peer applied a batch at (reads below it are refused; state.ts). */
const appliedSafePoints = new WeakMap<Peer, bigint>();

/** appliedSafePoint: the safe point of the last GC batch this peer applied since the store started (0n: none). */
export function appliedSafePoint(peer: Peer): bigint {
  return appliedSafePoints.get(peer) ?? 0n;
}

/**
 * applyGc removes a GC batch's rows through the round's MVCC view (so a
 * later command in the same round no longer sees them, on every replica
 * alike). Each delete is checked against what this log position holds, the
 * same on every replica: a key outside the Region (it split meanwhile), a
 * record above the batch's safe point, or a key now under a lock of
 * start_ts <= safe point (its transaction may still commit below it) is
 * skipped. Raw keys are never touched: the batch names transactional rows
 * only.
 */
export function applyGc(peer: Peer, gc: GcCommand, ctx: ApplyContext): CommandResult {
  const mvcc = ctx.batch.mvcc;
  const lockChecked = new Map<string, boolean>();
  for (const d of gc.deletes) {
    if (!keyInRegion(d.key, peer.region) || d.commitTs > gc.safePoint) continue;
    const k = Buffer.from(d.key.buffer, d.key.byteOffset, d.key.byteLength).toString('latin1');
    let locked = lockChecked.get(k);
    if (locked === undefined) {
      const l = mvcc.lock(d.key);
      locked = l !== undefined && l.startTs <= gc.safePoint;
      lockChecked.set(k, locked);
    }
    if (locked) continue;
    mvcc.delWrite(d.key, d.commitTs);
    if (d.dataStartTs !== undefined) mvcc.delData(d.key, d.dataStartTs);
  }
  if (gc.safePoint > appliedSafePoint(peer)) appliedSafePoints.set(peer, gc.safePoint);
  return { ok: true };
}
