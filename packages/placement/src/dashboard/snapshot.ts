import type { PlacementCluster } from '../cluster';
import { renderKey, renderOperator } from '../http';
import type { RegionFlow, RegionInfo } from '../types';
import { groupViewOf } from './group';

/** DASHBOARD_MAX_REGIONS bounds the Regions one snapshot carries (the page says when it was cut). */
export const DASHBOARD_MAX_REGIONS = 5_000;
/** HOT_REGIONS is how many Regions each hot list holds. */
export const HOT_REGIONS = 10;

/** keyFraction places a key on [0, 1] by its first 6 bytes read as a base-256 fraction, so the Region map draws ranges to scale. */
export function keyFraction(k: Uint8Array, isEnd: boolean): number {
  if (k.length === 0) return isEnd ? 1 : 0;
  let f = 0;
  let scale = 1;
  for (let i = 0; i < Math.min(6, k.length); i++) {
    scale /= 256;
    f += k[i]! * scale;
  }
  return f;
}

const NO_FLOW: RegionFlow = { readKeysPerSec: 0, readBytesPerSec: 0, writeKeysPerSec: 0, writeBytesPerSec: 0 };

/** renderDashboardRegion is one Region as the dashboard draws it: keys rendered, leader store, peers' stores, size, keys and flow. */
export function renderDashboardRegion(info: RegionInfo) {
  const r = info.region;
  return {
    id: r.id,
    startKey: renderKey(r.startKey),
    endKey: renderKey(r.endKey),
    startFrac: keyFraction(r.startKey, false),
    endFrac: keyFraction(r.endKey, true),
    version: r.epoch.version,
    confVer: r.epoch.confVer,
    leaderStoreId: info.leader?.storeId ?? null,
    peerStoreIds: r.peers.map((p) => p.storeId),
    approximateSizeBytes: info.approximateSizeBytes,
    approximateKeys: info.approximateKeys,
    downPeers: info.downPeers.length,
    pendingPeers: info.pendingPeers.length,
    flow: info.flow ?? NO_FLOW,
  };
}

export type DashboardRegion = ReturnType<typeof renderDashboardRegion>;

/** hotRegions returns up to `limit` Regions with traffic, hottest first by `by` (key/byte rates per second). */
export function hotRegions(cluster: PlacementCluster, by: keyof RegionFlow, limit: number): DashboardRegion[] {
  const out: RegionInfo[] = [];
  for (let i = 0; i < cluster.tree.size; i++) {
    const info = cluster.tree.at(i)!;
    if (info.flow && info.flow[by] > 0) out.push(info);
  }
  out.sort((a, b) => b.flow![by] - a.flow![by] || a.region.id - b.region.id);
  return out.slice(0, limit).map(renderDashboardRegion);
}

/** buildSnapshot is everything the dashboard page draws, read from placement's in-memory state. */
export function buildSnapshot(cluster: PlacementCluster) {
  const regions: DashboardRegion[] = [];
  const total = cluster.tree.size;
  for (let i = 0; i < Math.min(total, DASHBOARD_MAX_REGIONS); i++) regions.push(renderDashboardRegion(cluster.tree.at(i)!));
  return {
    atMs: Date.now(),
    cluster: { ...cluster.clusterInfo(), bootstrapped: cluster.isBootstrapped() },
    // The placement group (role, term and log progress of every member) and the oracle, from the leader that serves this.
    group: groupViewOf(cluster),
    stores: cluster.allStores().map((s) => ({
      id: s.id,
      address: s.address,
      state: s.state,
      lowSpace: s.lowSpace === true,
      lastHeartbeatMs: s.lastHeartbeatMs,
      capacityBytes: s.stats?.capacityBytes ?? null,
      usedBytes: s.stats?.usedBytes ?? null,
      availableBytes: s.stats?.availableBytes ?? null,
      regionCount: s.regionCount,
      leaderCount: s.leaderCount,
    })),
    regionTotal: total,
    regions,
    hot: {
      writeBytes: hotRegions(cluster, 'writeBytesPerSec', HOT_REGIONS),
      writeKeys: hotRegions(cluster, 'writeKeysPerSec', HOT_REGIONS),
      readBytes: hotRegions(cluster, 'readBytesPerSec', HOT_REGIONS),
      readKeys: hotRegions(cluster, 'readKeysPerSec', HOT_REGIONS),
    },
    operators: cluster.operators.all().map(renderOperator),
    recentOperators: cluster.operators.recent(),
    // The key visualizer's size and newest column: the page fetches /dashboard/heatmap again when a column was added.
    heatmap: cluster.heatmap.summary(),
    operatorStats: cluster.operators.stats,
  };
}

export type DashboardSnapshot = ReturnType<typeof buildSnapshot>;
