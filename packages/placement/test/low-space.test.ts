import { afterEach, describe, expect, it } from 'vitest';
import { ClusterSim } from './sim/cluster-sim';
import { PlacementCluster } from '../src/cluster';
import { BalanceRegion } from '../src/schedule/balance-region';
import { ReplicaChecker } from '../src/schedule/replica-checker';

// Placement stops placing replicas on a store low on space (TiKV PD's
// low-space-ratio, issue #15 item 4): a store whose heartbeat reports less
// than (1 - lowSpaceRatio) of its capacity available takes no new replica
// from the replica checker, the region balancer or the merge checker.

let sims: ClusterSim[] = [];
afterEach(() => {
  for (const s of sims) s.close();
  sims = [];
});
function newSim(opts: ConstructorParameters<typeof ClusterSim>[0]): ClusterSim {
  const s = new ClusterSim(opts);
  sims.push(s);
  return s;
}
/** LOW: 10% of the sim's 1e12-byte capacity available, under the default 20% (lowSpaceRatio 0.8). */
const LOW = 1e11;

describe('low space', () => {
  it('the replica checker never grows a Region onto a store low on space, although it is the emptiest', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 8 })] });
    sim.setup(4, 12, () => [0]);
    const low = sim.storeIds()[3]!;
    sim.availableBytes.set(low, LOW);
    sim.round();
    expect(sim.cluster.storeInfo(low)?.lowSpace).toBe(true);
    expect(sim.runUntil(() => sim.allHealthy(3), 200)).toBeGreaterThan(0);
    expect(sim.regionCounts().get(low) ?? 0).toBe(0);
    for (const id of sim.storeIds().slice(0, 3)) expect(sim.regionCounts().get(id)).toBe(12);
    expect(sim.violations).toEqual([]);
  });

  it('the region balancer moves replicas to a new store with space, and none to one low on space', () => {
    for (const lowSpace of [false, true]) {
      const sim = newSim({ maxReplicas: 3, schedulers: [new BalanceRegion({ limit: 4 })] });
      sim.setup(3, 12, () => [0, 1, 2]);
      const fresh = sim.addStore();
      if (lowSpace) sim.availableBytes.set(fresh, LOW);
      for (let i = 0; i < 60; i++) sim.round();
      const moved = sim.regionCounts().get(fresh) ?? 0;
      if (lowSpace) expect(moved).toBe(0);
      else expect(moved).toBeGreaterThan(0);
      expect(sim.violations).toEqual([]);
    }
  });

  it('a store is low when available < capacity * (1 - lowSpaceRatio); no reported capacity is never low; the ratio is checked', () => {
    const sim = newSim({ maxReplicas: 1, lowSpaceRatio: 0.9, schedulers: [] });
    sim.setup(1, 1, () => [0]);
    const id = sim.storeIds()[0]!;
    const c = sim.cluster;
    const beat = (capacityBytes: number, availableBytes: number) =>
      c.dispatch('storeHeartbeat', { stats: { storeId: id, capacityBytes, usedBytes: 0, availableBytes, regionCount: 0, leaderCount: 0 } });
    expect(c.isLowSpace(id)).toBe(false); // no heartbeat yet
    beat(1000, 101);
    expect(c.isLowSpace(id)).toBe(false);
    beat(1000, 99);
    expect(c.isLowSpace(id)).toBe(true);
    expect(c.storeInfo(id)).toMatchObject({ lowSpace: true, stats: { capacityBytes: 1000, availableBytes: 99 } });
    beat(0, 0);
    expect(c.isLowSpace(id)).toBe(false);
    expect(() => new PlacementCluster({ dataDir: sim.dir, lowSpaceRatio: 1.5 })).toThrow(/lowSpaceRatio: 1.5 is not in \(0, 1\]/);
  });
});
