import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Region } from '@flotilla/proto';
import { ClusterSim, spread } from './sim/cluster-sim';
import { ReplicaChecker } from '../src/schedule/replica-checker';
import { BalanceLeader } from '../src/schedule/balance-leader';
import { BalanceRegion } from '../src/schedule/balance-region';
import { checkOperatorSafety } from '../src/schedule/operator';
import { OperatorController } from '../src/schedule/operator-controller';
import type { Operator, RegionInfo } from '../src/types';

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

describe('replica checker', () => {
  it('grows single-voter Regions to maxReplicas on the emptiest stores, within its limit', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 4 })] });
    sim.setup(5, 20, () => [0]);
    const rounds = sim.runUntil(() => sim.allHealthy(3), 200);
    expect(rounds).toBeGreaterThan(0);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0); // no scheduler proposed an unsafe operator
    expect(sim.maxInFlight.get('replica-checker')).toBeLessThanOrEqual(4);
    expect(sim.maxInFlight.get('replica-checker')).toBeGreaterThan(0);
    const counts = sim.regionCounts();
    const first = sim.storeIds()[0]!;
    expect(counts.get(first)).toBe(20);
    expect(spread(counts, (id) => id !== first)).toBeLessThanOrEqual(1);
    // Placement's own view agrees with the simulated truth.
    for (const id of sim.storeIds()) expect(sim.cluster.regionCountOf(id)).toBe(counts.get(id));
  });

  it('replaces the peers of a store only once it is down, never dropping below a live quorum', () => {
    const maxStoreDownTimeMs = 60_000;
    const sim = newSim({ maxReplicas: 3, maxStoreDownTimeMs, storeDisconnectMs: 5_000, schedulers: [new ReplicaChecker({ limit: 3 })] });
    sim.setup(5, 30, (i) => [i % 5, (i + 1) % 5, (i + 2) % 5]);
    const victim = sim.storeIds()[1]!;
    sim.killStore(victim);
    // Disconnected but not yet down: no replacement may start.
    for (let i = 0; i < 50; i++) sim.round();
    expect(sim.cluster.storeInfo(victim)?.state).toBe('disconnected');
    expect(sim.stepsApplied.addLearner).toBe(0);
    const rounds = sim.runUntil(() => sim.allHealthy(3), 400);
    expect(rounds).toBeGreaterThan(0);
    expect(sim.cluster.storeInfo(victim)?.state).toBe('down');
    expect(sim.regionCounts().get(victim)).toBe(0);
    sim.round(); // placement learns of the last removal from the next heartbeat
    expect(sim.cluster.regionCountOf(victim)).toBe(0);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0); // no scheduler proposed an unsafe operator
    expect(sim.maxInFlight.get('replica-checker')).toBeLessThanOrEqual(3);
  });

  it('leaves a Region without a live quorum alone (no operator could commit)', () => {
    const sim = newSim({ maxReplicas: 3, maxStoreDownTimeMs: 10_000, storeDisconnectMs: 2_000, schedulers: [new ReplicaChecker({ limit: 8 })] });
    sim.setup(5, 5, () => [0, 1, 2]);
    sim.killStore(sim.storeIds()[1]!);
    sim.killStore(sim.storeIds()[2]!);
    for (let i = 0; i < 60; i++) sim.round();
    expect(sim.cluster.operators.stats.added).toBe(0);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0); // no scheduler proposed an unsafe operator
  });

  it('removes extra voters (never the leader) down to maxReplicas', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 2 })] });
    sim.setup(5, 12, () => [0, 1, 2, 3, 4]);
    expect(sim.runUntil(() => sim.allHealthy(3), 200)).toBeGreaterThan(0);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0); // no scheduler proposed an unsafe operator
    expect(sim.maxInFlight.get('replica-checker')).toBeLessThanOrEqual(2);
  });

  it('replaces peers of a removed (tombstone) store', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 4 })] });
    sim.setup(4, 10, () => [0, 1, 2]);
    const gone = sim.storeIds()[2]!;
    sim.cluster.dispatch('removeStore', { storeId: gone });
    sim.storeAlive.set(gone, false);
    expect(sim.cluster.storeInfo(gone)?.state).toBe('tombstone');
    expect(sim.runUntil(() => sim.allHealthy(3), 200)).toBeGreaterThan(0);
    expect(sim.regionCounts().get(gone)).toBe(0);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0); // no scheduler proposed an unsafe operator
  });
});

describe('balance-leader', () => {
  it('evens out leader counts within its limit', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new BalanceLeader({ limit: 3 })] });
    sim.setup(4, 40, (i) => [0, 1 + (i % 3), 1 + ((i + 1) % 3)]);
    expect(spread(sim.leaderCounts())).toBe(40);
    const rounds = sim.runUntil(() => spread(sim.leaderCounts()) <= 1, 300);
    expect(rounds).toBeGreaterThan(0);
    expect(sim.maxInFlight.get('balance-leader')).toBeLessThanOrEqual(3);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0); // no scheduler proposed an unsafe operator
    // Converged means stable: more rounds do not keep moving leaders.
    const before = sim.stepsApplied.transferLeader;
    for (let i = 0; i < 20; i++) sim.round();
    expect(sim.stepsApplied.transferLeader - before).toBeLessThanOrEqual(2);
  });
});

describe('balance-region', () => {
  it('spreads Regions onto new empty stores by add-then-remove moves', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 4 }), new BalanceRegion({ limit: 2 }), new BalanceLeader({ limit: 2 })] });
    sim.setup(3, 30, () => [0, 1, 2]);
    for (let i = 0; i < 3; i++) sim.addStore();
    const rounds = sim.runUntil(() => spread(sim.regionCounts()) <= 1 && sim.allHealthy(3), 600);
    expect(rounds).toBeGreaterThan(0);
    expect(sim.maxInFlight.get('balance-region')).toBeLessThanOrEqual(2);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0); // no scheduler proposed an unsafe operator
    expect(sim.stepsApplied.removePeer).toBeGreaterThanOrEqual(40);
  });
});

describe('operator controller', () => {
  it('times out an operator the Region never executes, then schedules it again', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 1, operatorTimeoutMs: 5_000 })] });
    sim.setup(4, 1, () => [0]);
    const only = [...sim.regions.values()][0]!;
    only.ignoreOperators = true;
    for (let i = 0; i < 20; i++) sim.round();
    expect(sim.cluster.operators.stats.timedOut).toBeGreaterThanOrEqual(2);
    only.ignoreOperators = false;
    expect(sim.runUntil(() => sim.allHealthy(3), 50)).toBeGreaterThan(0);
  });

  it('cancels an operator whose target store dies, and re-plans elsewhere', () => {
    const sim = newSim({ maxReplicas: 3, maxStoreDownTimeMs: 20_000, storeDisconnectMs: 3_000, schedulers: [new ReplicaChecker({ limit: 1 })] });
    sim.setup(5, 1, () => [0]);
    const only = [...sim.regions.values()][0]!;
    only.ignoreOperators = true;
    sim.round();
    const op = sim.cluster.operators.get(only.region.id)!;
    const target = op.steps[0]!.type === 'addLearner' ? op.steps[0]!.peer.storeId : -1;
    sim.killStore(target);
    for (let i = 0; i < 25; i++) sim.round(); // until the target is down
    expect(sim.cluster.storeInfo(target)?.state).toBe('down');
    only.ignoreOperators = false;
    sim.round();
    expect(sim.cluster.operators.stats.canceled).toBe(1);
    expect(sim.runUntil(() => sim.allHealthy(3), 100)).toBeGreaterThan(0);
    expect(sim.regionCounts().get(target)).toBe(0);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0); // no scheduler proposed an unsafe operator
  });

  it('cancels an operator when its Region splits', () => {
    const sim = newSim({ maxReplicas: 3, schedulers: [new ReplicaChecker({ limit: 1 })] });
    sim.setup(4, 1, () => [0]);
    const only = [...sim.regions.values()][0]!;
    only.ignoreOperators = true;
    sim.round();
    expect(sim.cluster.operators.has(only.region.id)).toBe(true);
    only.region = { ...only.region, endKey: Buffer.from('m'), epoch: { ...only.region.epoch, version: only.region.epoch.version + 1 } };
    sim.round();
    expect(sim.cluster.operators.stats.canceled).toBe(1);
  });
});

describe('operator safety', () => {
  const region: Region = {
    id: 1,
    startKey: new Uint8Array(),
    endKey: new Uint8Array(),
    epoch: { version: 1, confVer: 1 },
    peers: [
      { id: 11, storeId: 1, role: 'voter' },
      { id: 12, storeId: 2, role: 'voter' },
      { id: 13, storeId: 3, role: 'voter' },
    ],
  };
  const info: RegionInfo = { region, leader: region.peers[0]!, approximateSizeBytes: 0, approximateKeys: 0, downPeers: [], pendingPeers: [] };
  const store3Dead = (id: number): boolean => id !== 3;

  it('rejects removing a live voter while another voter is dead', () => {
    expect(checkOperatorSafety(info, [{ type: 'removePeer', peer: region.peers[1]! }], store3Dead)).toMatch(/only 1 of 2 voters live/);
    expect(checkOperatorSafety(info, [{ type: 'removePeer', peer: region.peers[2]! }], store3Dead)).toBeNull();
  });

  it('rejects removing the leader, and accepts it after a transfer', () => {
    expect(checkOperatorSafety(info, [{ type: 'removePeer', peer: region.peers[0]! }], () => true)).toMatch(/leader/);
    expect(
      checkOperatorSafety(info, [{ type: 'transferLeader', fromStoreId: 1, toStoreId: 2, peer: region.peers[1]! }, { type: 'removePeer', peer: region.peers[0]! }], () => true),
    ).toBeNull();
  });

  it('rejects remove-before-add when a voter is down, accepts add-before-remove', () => {
    const learner = { id: 14, storeId: 4, role: 'learner' as const };
    const addFirst = [
      { type: 'addLearner' as const, peer: learner },
      { type: 'promoteLearner' as const, peer: { ...learner, role: 'voter' as const } },
      { type: 'removePeer' as const, peer: region.peers[2]! },
    ];
    expect(checkOperatorSafety(info, addFirst, store3Dead)).toBeNull();
    const removeFirst = [{ type: 'removePeer' as const, peer: region.peers[1]! }, ...addFirst.slice(0, 2)];
    expect(checkOperatorSafety(info, removeFirst, store3Dead)).not.toBeNull();
    // A direct voter add is not counted live until caught up: 1 live of 2 dead-ish is unsafe.
    const twoDead = (id: number): boolean => id === 1;
    expect(checkOperatorSafety(info, [{ type: 'addPeer', peer: { ...learner, role: 'voter' } }], twoDead)).toMatch(/no live quorum/);
  });

  it('the controller refuses an unsafe operator and a second operator for the same Region', () => {
    const persisted: (Operator | null)[] = [];
    const ctl = new OperatorController({ persist: (_id, op) => persisted.push(op) });
    const mk = (id: number, steps: Operator['steps']): Operator => ({
      id,
      regionId: 1,
      kind: 'remove-replica',
      scheduler: 'test',
      regionVersion: 1,
      steps,
      currentStep: 0,
      createdAtMs: 0,
      deadlineMs: 1000,
      description: '',
    });
    expect(ctl.add(mk(1, [{ type: 'removePeer', peer: region.peers[1]! }]), info, store3Dead)).not.toBeNull();
    expect(ctl.add(mk(2, [{ type: 'removePeer', peer: region.peers[2]! }]), info, store3Dead)).toBeNull();
    expect(ctl.add(mk(3, [{ type: 'removePeer', peer: region.peers[2]! }]), info, store3Dead)).toMatch(/already has operator/);
    expect(ctl.stats.rejected).toBe(2);
    // The heartbeat that shows the peer gone finishes the operator.
    const after: RegionInfo = { ...info, region: { ...region, peers: region.peers.slice(0, 2), epoch: { version: 1, confVer: 2 } } };
    expect(ctl.onHeartbeat(info, 10)?.step.type).toBe('removePeer');
    expect(ctl.onHeartbeat(after, 20)).toBeUndefined();
    expect(ctl.stats.finished).toBe(1);
    expect(persisted.at(-1)).toBeNull();
  });

  it('finishes a merge operator when the target Region absorbs the source, cancels other operators of replaced Regions', () => {
    const ctl = new OperatorController({ persist: () => {} });
    const target: Region = { ...region, id: 2 };
    const mk = (id: number, regionId: number, steps: Operator['steps']): Operator => ({
      id, regionId, kind: 'merge', scheduler: 'merge-checker', regionVersion: 1, steps, currentStep: 0, createdAtMs: 0, deadlineMs: 1000, description: '',
    });
    expect(ctl.add(mk(1, 1, [{ type: 'merge', target }]), info, () => true)).toBeNull();
    ctl.onRegionReplaced(1, 2);
    expect(ctl.stats.finished).toBe(1);
    expect(ctl.add(mk(2, 1, [{ type: 'merge', target }]), info, () => true)).toBeNull();
    ctl.onRegionReplaced(1, 3);
    expect(ctl.stats.canceled).toBe(1);
  });

  it('moves leadership away first when the peer to remove has become leader, and cancels when a step turns unsafe', () => {
    const ctl = new OperatorController({ persist: () => {} });
    const op: Operator = {
      id: 7,
      regionId: 1,
      kind: 'remove-replica',
      scheduler: 'test',
      regionVersion: 1,
      steps: [{ type: 'removePeer', peer: region.peers[1]! }],
      currentStep: 0,
      createdAtMs: 0,
      deadlineMs: 1000,
      description: '',
    };
    const allLive = (): boolean => true;
    expect(ctl.add(op, info, allLive)).toBeNull();
    const ledByVictim: RegionInfo = { ...info, leader: region.peers[1]! };
    const first = ctl.onHeartbeat(ledByVictim, 1, allLive);
    expect(first?.step).toMatchObject({ type: 'transferLeader', fromStoreId: 2 });
    expect(first?.step.type === 'transferLeader' && first.step.toStoreId).not.toBe(2);
    expect(ctl.onHeartbeat(info, 2, allLive)?.step.type).toBe('removePeer');
    // Store 3 dies before the removal runs: removing peer 12 would now leave 1 of 2 voters live.
    expect(ctl.onHeartbeat(info, 3, store3Dead)).toBeUndefined();
    expect(ctl.stats.canceled).toBe(1);
  });
});

describe('all schedulers together under random store failures', () => {
  it('never violates safety or limits, and converges once failures stop', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('kill', 'revive', 'add', 'none', 'none'), fc.nat()), { minLength: 10, maxLength: 40 }), (events) => {
        const limits = { replica: 4, leader: 3, region: 2 };
        const sim = newSim({
          maxReplicas: 3,
          maxStoreDownTimeMs: 8_000,
          storeDisconnectMs: 2_000,
          schedulers: [new ReplicaChecker({ limit: limits.replica }), new BalanceLeader({ limit: limits.leader }), new BalanceRegion({ limit: limits.region })],
        });
        sim.setup(5, 24, (i) => [i % 5, (i + 1) % 5, (i + 2) % 5]);
        for (const [what, n] of events) {
          const ids = sim.storeIds();
          const live = ids.filter((id) => sim.storeAlive.get(id));
          // One failure at a time (a second store dying before the first is replaced can cost a quorum, which nothing can repair).
          const degraded = [...sim.regions.values()].some((r) => r.region.peers.some((p) => !sim.storeAlive.get(p.storeId)));
          if (what === 'kill' && live.length > 4 && !degraded) sim.killStore(live[n % live.length]!);
          else if (what === 'revive') {
            const dead = ids.filter((id) => !sim.storeAlive.get(id));
            if (dead.length > 0) sim.storeAlive.set(dead[n % dead.length]!, true);
          } else if (what === 'add' && ids.length < 8) sim.addStore();
          for (let i = 0; i < 4; i++) sim.round();
        }
        // Failures stop: every Region must end with 3 live voters.
        expect(sim.runUntil(() => sim.allHealthy(3), 400)).toBeGreaterThan(0);
        expect(sim.violations).toEqual([]);
        expect(sim.cluster.operators.stats.rejected).toBe(0);
        expect(sim.maxInFlight.get('replica-checker') ?? 0).toBeLessThanOrEqual(limits.replica);
        expect(sim.maxInFlight.get('balance-leader') ?? 0).toBeLessThanOrEqual(limits.leader);
        expect(sim.maxInFlight.get('balance-region') ?? 0).toBeLessThanOrEqual(limits.region);
        sim.close();
        sims = sims.filter((s) => s !== sim);
      }),
      { numRuns: 15 },
    );
  });
});
