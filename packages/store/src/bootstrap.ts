import { LogBatch } from '@flotilla/log-engine';
import type { Region } from '@flotilla/proto';
import type { StoreContext } from './context';
import { RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, confStateFromRegion, initialApplyState } from './raft/storage';

/** bootstrapRegion is Region 1 (the whole key space) with one peer on the bootstrapping store. */
export function bootstrapRegion(storeId: number, regionId: number, peerId: number): Region {
  return {
    id: regionId,
    startKey: new Uint8Array(0),
    endKey: new Uint8Array(0),
    epoch: { confVer: 1, version: 1 },
    peers: [{ id: peerId, storeId, role: 'voter' }],
  };
}

/** writeInitialRegion persists a new Region's states in both engines (bootstrap). */
export function writeInitialRegion(ctx: StoreContext, region: Region): void {
  const conf = confStateFromRegion(region);
  const b = ctx.sm.newBatch();
  b.setRegionState(region.id, { region, state: 'normal', confState: conf });
  b.setApplyState(region.id, initialApplyState());
  ctx.sm.write(b);
  const lb = new LogBatch();
  lb.applySnapshotMeta(region.id, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM, conf);
  lb.setHardState(region.id, { term: RAFT_INIT_LOG_TERM, vote: 0, commit: RAFT_INIT_LOG_INDEX });
  ctx.writeLog(lb);
}

/** removeInitialRegion undoes writeInitialRegion when another store won the bootstrap race. */
export function removeInitialRegion(ctx: StoreContext, regionId: number): void {
  const b = ctx.sm.newBatch();
  const r = ctx.sm.loadRegions().find((x) => x.regionId === regionId);
  if (r) b.setRegionState(regionId, { ...r.local, state: 'tombstone' });
  ctx.sm.write(b);
  ctx.writeLog(new LogBatch().removeRegion(regionId));
}
