import { EntryType, decodeConfChangeEntry, type ConfChangeV2, type Entry } from '@flotilla/raft-core';
import {
  compareKeys,
  keyInRegion,
  type AdminRequest,
  type CasResult,
  type KvWrite,
  type Peer as PeerMeta,
  type RaftCmdRequest,
  type Region,
} from '@flotilla/proto';
import type { KvBatch, StateMachine } from '../engines';
import { RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, type Peer } from '../raft/peer';
import { decodeCommand, err, type CommandResult } from './command';

/**
 * ApplyBatch wraps one poll round's KvBatch with an overlay of the round's
 * point writes, so a compare-and-swap later in the same round sees the
 * puts and deletes applied before it. A delete-range in the round makes the
 * overlay incomplete; then a CAS flushes the batch first (rare).
 */
export class ApplyBatch {
  batch: KvBatch;
  private overlay = new Map<string, Uint8Array | null>();
  private hasRangeDelete = false;
  flushes = 0;
  constructor(private readonly sm: StateMachine) {
    this.batch = sm.newBatch();
  }
  put(key: Uint8Array, value: Uint8Array): void {
    this.batch.put(key, value);
    this.overlay.set(hexKey(key), value);
  }
  delete(key: Uint8Array): void {
    this.batch.delete(key);
    this.overlay.set(hexKey(key), null);
  }
  deleteRange(start: Uint8Array, end: Uint8Array): void {
    this.batch.deleteRange(start, end);
    this.hasRangeDelete = true;
  }
  get(key: Uint8Array): Uint8Array | null {
    const o = this.overlay.get(hexKey(key));
    if (o !== undefined) return o;
    if (this.hasRangeDelete) this.flush();
    return this.sm.get(key) ?? null;
  }
  /** flush writes what is collected so far and starts a fresh batch. */
  flush(): void {
    if (!this.batch.isEmpty) this.sm.write(this.batch);
    this.batch = this.sm.newBatch();
    this.overlay.clear();
    this.hasRangeDelete = false;
    this.flushes++;
  }
}

function hexKey(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
}

/** ApplyEffect is a consequence of an applied admin command the store must act on after the KV write. */
export type ApplyEffect =
  | { type: 'split'; parent: Peer; regions: Region[]; wasLeader: boolean }
  | { type: 'prepareMerge'; peer: Peer }
  | { type: 'commitMerge'; target: Peer; sourceId: number }
  | { type: 'rollbackMerge'; peer: Peer }
  | { type: 'confChange'; peer: Peer; removedSelf: boolean; added: PeerMeta[]; removed: PeerMeta[] }
  | { type: 'compact'; peer: Peer; index: number; term: number };

export interface ApplyContext {
  batch: ApplyBatch;
  effects: ApplyEffect[];
  /** respond answers a proposal at (index, term); the store matches it to a callback. */
  respond(peer: Peer, index: number, term: number, result: CommandResult): void;
  storeId: number;
  /**
   * catchUpSource makes the local source peer of a merge apply everything
   * up to `commit` (CatchUpLogs), using the entries CommitMerge carries;
   * false if it cannot (then the merge must not apply here).
   */
  catchUpSource(sourceRegionId: number, commit: number, entries: Uint8Array[]): boolean;
  /** splitRegionExists: the store already has (or removed) this Region: a replayed split must not reset it. */
  splitRegionExists(regionId: number): boolean;
}

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

function checkEpoch(peer: Peer, cmd: RaftCmdRequest, checkVersion: boolean, checkConfVer: boolean): CommandResult | undefined {
  const cur = peer.region.epoch;
  const req = cmd.header.regionEpoch;
  if ((checkVersion && req.version !== cur.version) || (checkConfVer && req.confVer !== cur.confVer)) {
    return err.epochNotMatch([peer.region]);
  }
  return undefined;
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
  for (const w of cmd.writes) {
    const bad = writeOutsideRegion(w, peer.region);
    if (bad) return err.keyNotInRegion(bad, peer.region);
  }
  const casResults: CasResult[] = [];
  for (const w of cmd.writes) {
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

function applyAdmin(peer: Peer, cmd: RaftCmdRequest, admin: AdminRequest, e: Entry, ctx: ApplyContext): CommandResult {
  switch (admin.type) {
    case 'compactLog': {
      if (admin.compactIndex <= peer.apply.truncatedIndex) return { ok: true };
      if (admin.compactIndex > peer.apply.appliedIndex) return err.invalid('compact index beyond applied index');
      peer.apply = { ...peer.apply, truncatedIndex: admin.compactIndex, truncatedTerm: admin.compactTerm };
      ctx.effects.push({ type: 'compact', peer, index: admin.compactIndex, term: admin.compactTerm });
      return { ok: true };
    }
    case 'batchSplit': {
      const stale = checkEpoch(peer, cmd, true, true);
      if (stale) return stale;
      return applySplit(peer, admin, ctx);
    }
    case 'prepareMerge': {
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
    case 'commitMerge': {
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
    case 'rollbackMerge': {
      if (!peer.mergeState || peer.mergeState.commit !== admin.commit) return err.invalid('no such merge to roll back');
      peer.mergeState = undefined;
      peer.region = { ...peer.region, epoch: { ...peer.region.epoch, version: peer.region.epoch.version + 1 } };
      ctx.batch.batch.setRegionState(peer.regionId, peer.localState());
      ctx.effects.push({ type: 'rollbackMerge', peer });
      return { ok: true, regions: [peer.region] };
    }
    default:
      return err.invalid(`admin command ${(admin as AdminRequest).type} is not supported by this store version (entry ${e.index})`);
  }
}

function applySplit(peer: Peer, admin: Extract<AdminRequest, { type: 'batchSplit' }>, ctx: ApplyContext): CommandResult {
  const region = peer.region;
  const keys = admin.splits.map((s) => s.splitKey);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as Uint8Array;
    if (!keyInRegion(k, region) || compareKeys(k, region.startKey) === 0) return err.invalid('split key not strictly inside the Region');
    if (i > 0 && compareKeys(keys[i - 1] as Uint8Array, k) >= 0) return err.invalid('split keys must be strictly increasing');
  }
  for (const s of admin.splits) {
    if (s.newPeerIds.length !== region.peers.length) return err.invalid('split needs one new peer ID per existing peer');
  }
  const newVersion = region.epoch.version + admin.splits.length;
  const epoch = { confVer: region.epoch.confVer, version: newVersion };
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
    const conf = {
      voters: r.peers.filter((p) => p.role === 'voter').map((p) => p.id),
      learners: r.peers.filter((p) => p.role === 'learner').map((p) => p.id),
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    ctx.batch.batch.setRegionState(r.id, { region: r, state: 'normal', confState: conf });
    ctx.batch.batch.setApplyState(r.id, {
      appliedIndex: RAFT_INIT_LOG_INDEX,
      appliedTerm: RAFT_INIT_LOG_TERM,
      truncatedIndex: RAFT_INIT_LOG_INDEX,
      truncatedTerm: RAFT_INIT_LOG_TERM,
    });
  }
  ctx.effects.push({ type: 'split', parent: peer, regions, wasLeader: peer.isLeader });
  return { ok: true, regions };
}

/**
 * applyConfChangeEntry applies a membership change: the Region's peer list
 * and confVer change with the raft ConfState, in the same KV transaction.
 */
function applyConfChangeEntry(peer: Peer, e: Entry, ctx: ApplyContext): CommandResult {
  let cc: ConfChangeV2;
  try {
    cc = decodeConfChangeEntry(e.entryType, e.data);
  } catch (error) {
    return err.invalid(`undecodable conf change at index ${e.index}: ${(error as Error).message}`);
  }
  let cmd: RaftCmdRequest | undefined;
  if (e.context && e.context.length > 0) {
    try {
      cmd = decodeCommand(e.context);
    } catch {
      cmd = undefined;
    }
  }
  if (cmd) {
    const stale = checkEpoch(peer, cmd, false, true);
    // A stale change is skipped: raft's configuration stays as it was (not
    // calling applyConfChange is how etcd raft rejects a change).
    if (stale) return stale;
  }
  const changes = cc.changes;
  const wanted = new Map<number, PeerMeta>();
  if (cmd?.admin?.type === 'changePeer') wanted.set(cmd.admin.peer.id, cmd.admin.peer);
  if (cmd?.admin?.type === 'changePeerV2') for (const c of cmd.admin.changes) wanted.set(c.peer.id, c.peer);

  const before = peer.region.peers;
  let peers = [...before];
  const added: PeerMeta[] = [];
  const removed: PeerMeta[] = [];
  for (const c of changes) {
    const existing = peers.find((p) => p.id === c.nodeId);
    const storeId = wanted.get(c.nodeId)?.storeId ?? existing?.storeId ?? 0;
    if (c.changeType === 1) {
      if (existing) {
        peers = peers.filter((p) => p.id !== c.nodeId);
        removed.push(existing);
      }
    } else {
      const role = c.changeType === 2 ? 'learner' : 'voter';
      if (existing) peers = peers.map((p) => (p.id === c.nodeId ? { ...p, role } : p));
      else {
        const np: PeerMeta = { id: c.nodeId, storeId, role };
        peers.push(np);
        added.push(np);
      }
    }
  }
  peer.confState = peer.raw.applyConfChange(cc);
  // Leaving a joint config is an empty change: membership is already right.
  if (changes.length > 0) {
    peer.region = { ...peer.region, peers, epoch: { ...peer.region.epoch, confVer: peer.region.epoch.confVer + changes.length } };
  }
  const removedSelf = removed.some((p) => p.id === peer.peerId);
  if (removedSelf) peer.pendingRemove = true;
  ctx.batch.batch.setRegionState(peer.regionId, peer.localState());
  ctx.effects.push({ type: 'confChange', peer, removedSelf, added, removed });
  return { ok: true, regions: [peer.region] };
}
