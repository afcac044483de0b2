import type { Ready } from '@flotilla/raft-core';
import type { LogBatch } from '@flotilla/log-engine';
import { decode } from '@flotilla/proto';
import { assert, type StoreContext } from '../../context';
import type { ApplyState } from '../../engines';
import type { Peer } from '../../raft/peer';
import type { SnapshotPayload } from '../../raft/storage';

/**
 * applySnapshot installs a received snapshot: the KV engine ingests the
 * Region's range and states first, then the log engine's raft state moves
 * to the snapshot's index in this round's log write, which makes the
 * ingest durable before it (StoreContext.writeLog). A crash between the two
 * is repaired at recovery (operation/life.ts, ensureLogMatchesApply).
 */
export function applySnapshot(ctx: StoreContext, peer: Peer, rd: Ready, logBatch: LogBatch): void {
  const snap = rd.snapshot!;
  let payload: SnapshotPayload;
  try {
    payload = decode(snap.data) as SnapshotPayload;
  } catch (e) {
    throw new Error(`region ${peer.regionId}: undecodable snapshot at index ${snap.metadata.index}: ${(e as Error).message}`);
  }
  const { index, term, confState } = snap.metadata;
  // Invariant: raft hands out only snapshots newer than what this peer applied.
  assert(index >= peer.apply.appliedIndex, `region ${peer.regionId}: snapshot at ${index} below applied index ${peer.apply.appliedIndex}`);
  const region = payload.region;
  const apply: ApplyState = { appliedIndex: index, appliedTerm: term, truncatedIndex: index, truncatedTerm: term };
  peer.mergeState = payload.merge ?? undefined;
  peer.region = region;
  peer.confState = confState;
  ctx.sm.ingestSnapshot(peer.regionId, region.startKey, region.endKey, payload.pairs, apply, { ...peer.localState(), region, confState }, payload.txn);
  peer.apply = apply;
  peer.initialized = true;
  logBatch.applySnapshotMeta(peer.regionId, index, term, confState);
  ctx.metrics.snapshotsApplied++;
  ctx.logger.info({ regionId: peer.regionId, index, term, keys: payload.pairs.length }, 'applied snapshot');
}
