import type { Entry } from '@flotilla/raft-core';
import type { Peer as PeerMeta, RaftCmdRequest, Region } from '@flotilla/proto';
import { MvccOverlay, type MvccView } from '@flotilla/kv-engine';
import type { KvBatch, StateMachine } from '../../engines';
import type { Peer } from '../../raft/peer';
import type { CommandResult } from '../../raft/proposal';
import { err } from './command';

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
  private mvccOverlay: MvccOverlay | undefined;
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
  /** mvcc is the round's view of the transactional tables: committed rows plus this round's writes (kv-engine mvcc/overlay.ts). */
  get mvcc(): MvccOverlay {
    this.mvccOverlay ??= new MvccOverlay(this.sm.mvccRead, (op) => this.batch.mvcc(op));
    return this.mvccOverlay;
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
    this.mvccOverlay = undefined;
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
  /** applyEntries applies another peer's entries into this round's batch (merge's CatchUpLogs); set by the poller. */
  applyEntries(peer: Peer, entries: Entry[]): void;
  /** mvccFor: the MVCC view a transactional command of peer applies through (the watch hub records its write records: watch/hub.ts). */
  mvccFor?(peer: Peer): MvccView;
}

/** checkEpoch answers EpochNotMatch when the command was made against another version or conf version of the Region. */
export function checkEpoch(peer: Peer, cmd: RaftCmdRequest, checkVersion: boolean, checkConfVer: boolean): CommandResult | undefined {
  const cur = peer.region.epoch;
  const req = cmd.header.regionEpoch;
  if ((checkVersion && req.version !== cur.version) || (checkConfVer && req.confVer !== cur.confVer)) {
    return err.epochNotMatch([peer.region]);
  }
  return undefined;
}
