import { EntryType, type Entry } from '@flotilla/raft-core';
import { compareKeys, keyInRegion, type AdminRequest, type CasResult, type KvWrite, type RaftCmdRequest, type Region, type TxnCommand } from '@flotilla/proto';
import { applyTxnCommand } from '@flotilla/kv-engine';
import type { Peer } from '../../raft/peer';
import type { CommandResult } from '../../raft/proposal';
import { applyCompactLog } from './admin/compact-log';
import { applyConfChangeEntry } from './admin/conf-change';
import { applyCommitMerge, applyPrepareMerge, applyRollbackMerge } from './admin/merge';
import { applySplit } from './admin/split';
import { checkEpoch, type ApplyContext } from './apply-context';
import { decodeCommand, err } from './command';
import { applyGc } from '../../gc/apply';
import { gcOf } from '../../gc/command';
import { batchOf } from '../../raft/write-batch';

/**
 * applyEntries applies one peer's committed entries to the round's batch and
 * advances its apply state. Every replica runs exactly this, so every
 * decision (epoch checks, CAS outcomes, split boundaries) is made the same
 * way everywhere.
 */
export function applyEntries(peer: Peer, entries: Entry[], ctx: ApplyContext): void {
  for (const e of entries) {
    if (e.index <= peer.apply.appliedIndex) continue; // already applied (replay after restart)
    if (peer.pendingRemove) break;
    let result: CommandResult;
    if (e.entryType === EntryType.EntryNormal) {
      result = e.data.length === 0 ? { ok: true } : applyNormal(peer, e, ctx);
    } else {
      result = applyConfChangeEntry(peer, e, ctx);
    }
    peer.apply = { ...peer.apply, appliedIndex: e.index, appliedTerm: e.term };
    ctx.respond(peer, e.index, e.term, result);
  }
  ctx.batch.batch.setApplyState(peer.regionId, peer.apply);
}

function applyNormal(peer: Peer, e: Entry, ctx: ApplyContext): CommandResult {
  let cmd: RaftCmdRequest;
  try {
    cmd = decodeCommand(e.data);
  } catch (error) {
    return err.invalid(`undecodable command at index ${e.index}: ${(error as Error).message}`);
  }
  if (cmd.admin) return applyAdmin(peer, cmd, cmd.admin, e, ctx);
  // A Region being merged away accepts no more writes (docs/merge.md).
  if (peer.mergeState) return err.epochNotMatch([peer.region]);
  const stale = checkEpoch(peer, cmd, true, false);
  if (stale) return stale;
  if (cmd.txn) return applyTxn(peer, cmd, cmd.txn, ctx);
  const gc = gcOf(cmd);
  if (gc) return applyGc(peer, gc, ctx);
  const batch = batchOf(cmd);
  if (batch) return { ok: true, batch: batch.map((writes) => applyWrites(peer, writes, ctx)) };
  return applyWrites(peer, cmd.writes, ctx);
}

/**
 * applyWrites applies one client command's writes, all or none (a key
 * outside the Region refuses the command). A batched entry runs it once
 * per command, in order, so each command gets its own result and a
 * refused one leaves its neighbours applied (raft/write-batch.ts).
 */
function applyWrites(peer: Peer, writes: KvWrite[], ctx: ApplyContext): CommandResult {
  for (const w of writes) {
    const bad = writeOutsideRegion(w, peer.region);
    if (bad) return err.keyNotInRegion(bad, peer.region);
  }
  const casResults: CasResult[] = [];
  for (const w of writes) {
    switch (w.type) {
      case 'put':
        ctx.batch.put(w.key, w.value);
        break;
      case 'delete':
        ctx.batch.delete(w.key);
        break;
      case 'deleteRange': {
        const [s, end] = clipRange(w.startKey, w.endKey, peer.region);
        if (end.length === 0 || compareKeys(s, end) < 0) ctx.batch.deleteRange(s, end);
        break;
      }
      case 'cas': {
        const previous = ctx.batch.get(w.key);
        const matches = w.expected === null ? previous === null : previous !== null && compareKeys(previous, w.expected) === 0;
        if (matches) {
          if (w.value === null) ctx.batch.delete(w.key);
          else ctx.batch.put(w.key, w.value);
        }
        casResults.push({ succeeded: matches, previous });
        break;
      }
    }
  }
  return casResults.length > 0 ? { ok: true, cas: casResults } : { ok: true };
}

/**
 * applyTxn runs a Percolator command over the round's MVCC view (the
 * committed tables plus this round's earlier writes), so its rows commit in
 * the round's one KV transaction with the apply state. The keys were checked
 * against the Region at proposal; the epoch check above makes that hold here.
 */
function applyTxn(peer: Peer, cmd: RaftCmdRequest, txn: TxnCommand, ctx: ApplyContext): CommandResult {
  if (txn.type === 'prewrite' && txn.onePc === true && cmd.onePcCommitTs === undefined) return err.invalid('a one-phase prewrite entry without its commit ts');
  return { ok: true, txn: applyTxnCommand(ctx.mvccFor?.(peer) ?? ctx.batch.mvcc, txn, peer.region, txn.type === 'prewrite' ? cmd.onePcCommitTs : undefined) };
}

function writeOutsideRegion(w: KvWrite, region: Region): Uint8Array | undefined {
  if (w.type === 'deleteRange') return undefined; // clipped to the Region instead
  return keyInRegion(w.key, region) ? undefined : w.key;
}

function clipRange(start: Uint8Array, end: Uint8Array, region: Region): [Uint8Array, Uint8Array] {
  const s = compareKeys(start, region.startKey) < 0 ? region.startKey : start;
  let e = end;
  if (region.endKey.length > 0 && (e.length === 0 || compareKeys(e, region.endKey) > 0)) e = region.endKey;
  return [s, e];
}

/** applyAdmin dispatches an applied admin command to the file that owns it (operation/command/admin/). */
function applyAdmin(peer: Peer, cmd: RaftCmdRequest, admin: AdminRequest, e: Entry, ctx: ApplyContext): CommandResult {
  switch (admin.type) {
    case 'compactLog':
      return applyCompactLog(peer, admin, ctx);
    case 'batchSplit': {
      const stale = checkEpoch(peer, cmd, true, true);
      if (stale) return stale;
      return applySplit(peer, admin, ctx);
    }
    case 'prepareMerge':
      return applyPrepareMerge(peer, cmd, admin, e, ctx);
    case 'commitMerge':
      return applyCommitMerge(peer, cmd, admin, ctx);
    case 'rollbackMerge':
      return applyRollbackMerge(peer, admin, ctx);
    default:
      return err.invalid(`admin command ${(admin as AdminRequest).type} is not supported by this store version (entry ${e.index})`);
  }
}
