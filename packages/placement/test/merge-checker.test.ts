import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Region } from '@flotilla/proto';
import { ClusterSim } from './sim/cluster-sim';
import { MergeChecker, type MergeCheckerOptions } from '../src/schedule/merge-checker';
import { ReplicaChecker } from '../src/schedule/replica-checker';
import { BalanceLeader } from '../src/schedule/balance-leader';
import { BalanceRegion } from '../src/schedule/balance-region';
import { OperatorController } from '../src/schedule/operator-controller';
import type { Operator, RegionInfo } from '../src/types';

let sims: ClusterSim[] = [];
afterEach(() => {
  for (const s of sims) s.close();
  sims = [];
});

const KiB = 1024;
/** Test thresholds: 64 KiB / 1,000 keys; no split interval unless a test sets one. */
const small: MergeCheckerOptions = { maxMergeRegionSizeBytes: 64 * KiB, maxMergeRegionKeys: 1_000, splitMergeIntervalMs: 0 };

function newSim(merge: MergeCheckerOptions, withReplicaChecker = false): ClusterSim {
  const s = new ClusterSim({ maxReplicas: 3, schedulers: [...(withReplicaChecker ? [new ReplicaChecker()] : []), new MergeChecker({ ...small, ...merge })] });
  sims.push(s);
  return s;
}

/** sized gives the simulated Regions sizes, in key order. */
function sized(sim: ClusterSim, sizes: { bytes: number; keys?: number }[]): Region[] {
  const ordered = [...sim.regions.values()].sort((a, b) => Buffer.compare(Buffer.from(a.region.startKey), Buffer.from(b.region.startKey)));
  ordered.forEach((r, i) => {
    r.sizeBytes = sizes[i]!.bytes;
    r.keys = sizes[i]!.keys ?? 10;
  });
  return ordered.map((r) => r.region);
}

const opsIdle = (sim: ClusterSim): boolean => sim.cluster.operators.size === 0;

describe('merge checker', () => {
  it('merges small adjacent Regions until one is left, covering the whole key space', () => {
    const sim = newSim({ limit: 8 });
    sim.setup(3, 8, () => [0, 1, 2]);
    sized(sim, Array.from({ length: 8 }, () => ({ bytes: 2 * KiB })));
    sim.mergeCommitDelayRounds = 2; // the prepared source heartbeats its bumped version once before the commit
    const rounds = sim.runUntil(() => sim.regions.size === 1 && sim.cluster.regionCount() === 1 && opsIdle(sim), 100);
    expect(rounds).toBeGreaterThan(0);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0);
    expect(sim.cluster.operators.stats.canceled).toBe(0); // the PrepareMerge version bump did not cancel anything
    expect(sim.cluster.operators.stats.finished).toBe(7);
    expect(sim.merges).toHaveLength(7);
    expect(sim.rollbacks).toBe(0);
    // Pairs merge in parallel: 8 -> 4 -> 2 -> 1 needs far fewer rounds than 7 merges one at a time.
    expect(sim.maxInFlight.get('merge-checker')).toBe(4);
    const last = sim.cluster.regionAt(0)!.region;
    expect(last.startKey).toHaveLength(0);
    expect(last.endKey).toHaveLength(0);
    expect(sim.cluster.regionCountOf(sim.storeIds()[0]!)).toBe(1);
    sim.cluster.checkInvariants();
    // Nothing more to do: a lone Region has no neighbour.
    for (let i = 0; i < 5; i++) sim.round();
    expect(sim.cluster.operators.stats.added).toBe(7);
  });

  it('never merges a Region above either threshold, nor Regions that are not neighbours', () => {
    const sim = newSim({});
    sim.setup(3, 7, () => [0, 1, 2]);
    const regions = sized(sim, [
      { bytes: 1 * KiB },
      { bytes: 1024 * KiB }, // too big
      { bytes: 1 * KiB },
      { bytes: 1 * KiB, keys: 5_000 }, // too many keys
      { bytes: 1 * KiB },
      { bytes: 2 * KiB },
      { bytes: 3 * KiB },
    ]);
    const rounds = sim.runUntil(() => sim.regions.size === 5 && opsIdle(sim), 50);
    expect(rounds).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) sim.round();
    expect(sim.violations).toEqual([]);
    expect(sim.regions.size).toBe(5);
    // Only the three small Regions at the end merged (two merges); Regions 0 and 2 are small but not neighbours.
    const merged = new Set(sim.merges.flatMap((m) => [m.source.id, m.target.id]));
    expect([...merged].sort((a, b) => a - b)).toEqual([regions[4]!.id, regions[5]!.id, regions[6]!.id].sort((a, b) => a - b));
    for (const m of sim.merges) {
      expect(m.sourceSize).toBeLessThanOrEqual(64 * KiB);
      expect(m.sourceKeys).toBeLessThanOrEqual(1_000);
    }
    expect(sim.regions.has(regions[0]!.id) && sim.regions.has(regions[1]!.id) && sim.regions.has(regions[2]!.id) && sim.regions.has(regions[3]!.id)).toBe(true);
  });

  it('merges into the smaller of the two neighbours', () => {
    const sim = newSim({});
    sim.setup(3, 3, () => [0, 1, 2]);
    const check = (sizes: number[]): number | undefined => {
      const regions = sized(sim, sizes.map((bytes) => ({ bytes })));
      sim.round(); // placement learns sizes and leaders...
      sim.cluster.operators.all().forEach((op) => sim.cluster.operators.cancel(op.regionId, 'test'));
      const checker = new MergeChecker(small);
      const got = checker.check(sim.cluster, sim.cluster.region(regions[1]!.id)!, new Set(), sim.clockMs);
      return got?.target;
    };
    const left = [...sim.regions.values()].sort((a, b) => Buffer.compare(Buffer.from(a.region.startKey), Buffer.from(b.region.startKey)));
    // The sim executes merge steps: stop its leaders from doing so while we only look at choices.
    for (const r of left) r.ignoreOperators = true;
    expect(check([5 * KiB, 1 * KiB, 2 * KiB])).toBe(left[2]!.region.id);
    expect(check([2 * KiB, 1 * KiB, 5 * KiB])).toBe(left[0]!.region.id);
    expect(check([2 * KiB, 1 * KiB, 500 * KiB])).toBe(left[0]!.region.id); // the right one is too big anyway
    expect(check([500 * KiB, 1 * KiB, 500 * KiB])).toBeUndefined();
    expect(sim.merges).toHaveLength(0);
  });

  it('leaves Regions alone for splitMergeIntervalMs after a split and after placement starts', () => {
    const interval = 60_000;
    const sim = newSim({ splitMergeIntervalMs: interval });
    sim.setup(3, 2, () => [0, 1, 2]);
    const setupAt = sim.clockMs;
    sized(sim, [{ bytes: 1 * KiB }, { bytes: 1 * KiB }]);
    // Both came out of the setup split (and placement just started): nothing for 59 rounds of 1 s.
    for (let i = 0; i < 59; i++) sim.round();
    expect(sim.cluster.operators.stats.added).toBe(0);
    expect(sim.runUntil(() => sim.regions.size === 1 && opsIdle(sim), 20)).toBeGreaterThan(0);
    expect(sim.merges).toHaveLength(1);
    const mergedAt = sim.clockMs;
    expect(mergedAt - setupAt).toBeGreaterThanOrEqual(interval);
    // Split the merged Region: the halves are fresh again and stay apart for the interval.
    const [only] = [...sim.regions.keys()];
    sim.split(only!);
    const splitAt = sim.clockMs;
    expect(sim.regions.size).toBe(2);
    for (let i = 0; i < 55; i++) sim.round();
    expect(sim.regions.size).toBe(2);
    expect(sim.runUntil(() => sim.regions.size === 1 && opsIdle(sim), 20)).toBeGreaterThan(0);
    expect(sim.clockMs - splitAt).toBeGreaterThanOrEqual(interval);
    expect(sim.violations).toEqual([]);
  });

  it('drops a merge operator as soon as its target changes, then merges what is left', () => {
    const sim = newSim({});
    sim.setup(3, 2, () => [0, 1, 2]);
    const [a, b] = sized(sim, [{ bytes: 1 * KiB }, { bytes: 2 * KiB }]);
    sim.regions.get(a!.id)!.ignoreOperators = true; // the source's leader sits on the step
    sim.round();
    expect(sim.cluster.operators.get(a!.id)?.kind).toBe('merge');
    expect(sim.cluster.hasOperator(b!.id)).toBe(true);
    sim.split(b!.id); // the target splits under the merge
    expect(sim.cluster.operators.get(a!.id)).toBeUndefined();
    expect(sim.cluster.operators.stats.canceled).toBe(1);
    expect(sim.cluster.hasOperator(b!.id)).toBe(false);
    sim.regions.get(a!.id)!.ignoreOperators = false;
    expect(sim.runUntil(() => sim.regions.size === 1 && opsIdle(sim), 30)).toBeGreaterThan(0);
    expect(sim.violations).toEqual([]);
  });

  it('keeps at most `limit` operators in flight', () => {
    const sim = newSim({ limit: 3 });
    sim.setup(3, 30, () => [0, 1, 2]);
    sized(sim, Array.from({ length: 30 }, () => ({ bytes: 1 * KiB })));
    sim.mergeCommitDelayRounds = 3;
    expect(sim.runUntil(() => sim.regions.size === 1 && opsIdle(sim), 200)).toBeGreaterThan(0);
    expect(sim.maxInFlight.get('merge-checker')).toBe(3);
    expect(sim.merges).toHaveLength(29);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0);
  });

  it('moves the source peers onto the target stores first (leader moved away before its peer goes), then merges', () => {
    const sim = newSim({}, true);
    // Region 0 on stores 0,1,2 led from store 0; Region 1 on stores 1,2,3.
    sim.setup(4, 2, (i) => (i === 0 ? [0, 1, 2] : [1, 2, 3]));
    const [r0, r1] = sized(sim, [{ bytes: 1 * KiB }, { bytes: 2 * KiB }]);
    expect(sim.runUntil(() => sim.regions.size === 1 && opsIdle(sim), 60)).toBeGreaterThan(0);
    expect(sim.violations).toEqual([]); // includes: the merge never started before the stores matched
    expect(sim.cluster.operators.stats.rejected).toBe(0);
    expect(sim.stepsApplied).toMatchObject({ addLearner: 1, promoteLearner: 1, removePeer: 1, merge: 1 });
    // One operator (moves, then the merge step), as PD builds it: the pair stays locked throughout.
    expect(sim.cluster.operators.stats).toMatchObject({ added: 1, finished: 1 });
    expect(sim.stepsApplied.transferLeader).toBeGreaterThanOrEqual(1);
    expect(sim.merges).toEqual([expect.objectContaining({ source: expect.objectContaining({ id: r0!.id }) })]);
    const merged = sim.regions.get(r1!.id)!.region;
    const s = sim.storeIds();
    expect(merged.peers.map((p) => p.storeId).sort((a, b) => a - b)).toEqual([s[1]!, s[2]!, s[3]!].sort((a, b) => a - b));
  });

  it('moves all three peers when the two Regions share no store', () => {
    const sim = newSim({}, true);
    sim.setup(6, 2, (i) => (i === 0 ? [0, 1, 2] : [3, 4, 5]));
    const [, r1] = sized(sim, [{ bytes: 1 * KiB }, { bytes: 2 * KiB }]);
    expect(sim.runUntil(() => sim.regions.size === 1 && opsIdle(sim), 80)).toBeGreaterThan(0);
    expect(sim.violations).toEqual([]);
    expect(sim.cluster.operators.stats.rejected).toBe(0);
    expect(sim.stepsApplied).toMatchObject({ addLearner: 3, promoteLearner: 3, removePeer: 3, merge: 1 });
    const s = sim.storeIds();
    expect(sim.regions.get(r1!.id)!.region.peers.map((p) => p.storeId).sort((a, b) => a - b)).toEqual([s[3]!, s[4]!, s[5]!].sort((a, b) => a - b));
  });

  it('is in the default scheduler set, with PD/TiKV defaults, and mergeChecker: false removes it', () => {
    const on = new ClusterSim({});
    const off = new ClusterSim({ mergeChecker: false });
    sims.push(on, off);
    const mc = on.cluster.schedulers.find((s) => s.name === 'merge-checker');
    expect(mc).toBeInstanceOf(MergeChecker);
    expect(mc!.limit).toBe(8);
    expect(off.cluster.schedulers.map((s) => s.name)).not.toContain('merge-checker');
    expect(() => new MergeChecker({ maxMergeRegionKeys: -1 })).toThrow(/maxMergeRegionKeys/);
    // Defaults: 20 MiB / 200,000 keys; nothing within an hour of the start.
    const sim = new ClusterSim({ schedulers: [new MergeChecker()] });
    sims.push(sim);
    sim.setup(3, 3, () => [0, 1, 2]);
    sized(sim, [{ bytes: 20 * 1024 * KiB, keys: 200_000 }, { bytes: 1 * KiB }, { bytes: 20 * 1024 * KiB + 1 }]);
    sim.roundMs = 60_000;
    for (let i = 0; i < 59; i++) sim.round();
    expect(sim.cluster.operators.stats.added).toBe(0);
    expect(sim.runUntil(() => sim.merges.length > 0, 5)).toBeGreaterThan(0);
    // Only the pair at the limits merged; the one a byte above stays apart.
    expect(sim.regions.size).toBe(2);
    for (let i = 0; i < 5; i++) sim.round();
    expect(sim.regions.size).toBe(2);
  });
});

describe('operator controller and merge operators', () => {
  const peers = [1, 2, 3].map((s) => ({ id: 10 + s, storeId: s, role: 'voter' as const }));
  const source: Region = { id: 1, startKey: new Uint8Array(), endKey: Buffer.from('m'), epoch: { version: 5, confVer: 3 }, peers };
  const target: Region = { id: 2, startKey: Buffer.from('m'), endKey: new Uint8Array(), epoch: { version: 5, confVer: 3 }, peers: peers.map((p) => ({ ...p, id: p.id + 10 })) };
  const infoOf = (region: Region): RegionInfo => ({ region, leader: region.peers[0]!, approximateSizeBytes: 0, approximateKeys: 0, downPeers: [], pendingPeers: [] });
  const mergeOp = (id: number): Operator => ({
    id, regionId: 1, kind: 'merge', scheduler: 'merge-checker', regionVersion: 5, steps: [{ type: 'merge', target }], currentStep: 0, createdAtMs: 0, deadlineMs: 10_000, description: '',
  });
  const live = (): boolean => true;

  it('keeps a merge operator through the PrepareMerge version bump and cancels it on rollback', () => {
    const ctl = new OperatorController({ persist: () => {} });
    expect(ctl.add(mergeOp(1), infoOf(source), live)).toBeNull();
    const prepared = infoOf({ ...source, epoch: { version: 6, confVer: 4 } });
    expect(ctl.onHeartbeat(prepared, 1, live)?.step.type).toBe('merge');
    expect(ctl.has(1)).toBe(true);
    const rolledBack = infoOf({ ...source, epoch: { version: 7, confVer: 4 } });
    expect(ctl.onHeartbeat(rolledBack, 2, live)).toBeUndefined();
    expect(ctl.stats.canceled).toBe(1);
    expect(ctl.isBusy(2)).toBe(false);
  });

  it('restores merge operators with their targets busy, and drops a persisted one whose target is taken', () => {
    const persisted: [number, Operator | null][] = [];
    const ctl = new OperatorController({ persist: (regionId, op) => persisted.push([regionId, op]) });
    const other: Operator = { ...mergeOp(2), regionId: 3 }; // Region 3 also merging into Region 2
    ctl.restore([mergeOp(1), other]);
    expect(ctl.has(1)).toBe(true);
    expect(ctl.isBusy(2)).toBe(true);
    expect(ctl.has(3)).toBe(false);
    expect(persisted).toEqual([[3, null]]);
    expect(ctl.countOf('merge-checker')).toBe(1);
  });

  it('keeps the target out of other operators while a source merges into it', () => {
    const ctl = new OperatorController({ persist: () => {} });
    expect(ctl.add(mergeOp(1), infoOf(source), live)).toBeNull();
    expect(ctl.isBusy(2)).toBe(true);
    expect(ctl.has(2)).toBe(false);
    expect(ctl.mergeSourceOf(2)).toBe(1);
    const onTarget: Operator = { ...mergeOp(2), regionId: 2, kind: 'remove-replica', steps: [{ type: 'removePeer', peer: target.peers[2]! }] };
    expect(ctl.add(onTarget, infoOf(target), live)).toMatch(/target of region 1's merge/);
    // A third Region may not merge into a target that is busy either.
    const third: Region = { ...source, id: 3 };
    expect(ctl.add({ ...mergeOp(3), regionId: 3 }, infoOf(third), live)).toMatch(/busy/);
    // The target's report that absorbs the source finishes the merge and frees the target.
    ctl.onRegionReplaced(1, 2);
    expect(ctl.stats.finished).toBe(1);
    expect(ctl.isBusy(2)).toBe(false);
    expect(ctl.add(onTarget, infoOf(target), live)).toBeNull();
  });
});

describe('merge checker with the default scheduler set', () => {
  it('merges everything down while the replica checker and balancers run, with no unsafe step', () => {
    const sim = new ClusterSim({ maxReplicas: 3, mergeChecker: { ...small, limit: 4 } });
    sims.push(sim);
    // 20 Regions on scattered 3-of-5 store sets: most pairs need peer moves before they can merge.
    const layouts = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [0, 3, 4], [0, 1, 4], [0, 2, 4], [1, 3, 4]];
    sim.setup(5, 20, (i) => layouts[(i * 3) % layouts.length]!);
    sized(sim, Array.from({ length: 20 }, (_, i) => ({ bytes: (1 + (i % 4)) * KiB })));
    sim.mergeCommitDelayRounds = 2;
    expect(sim.runUntil(() => sim.regions.size === 1 && opsIdle(sim), 200)).toBeGreaterThan(0);
    expect(sim.violations).toEqual([]);
    expect(sim.merges).toHaveLength(19);
    expect(sim.cluster.operators.stats.rejected).toBe(0);
    expect(sim.cluster.operators.stats.canceled).toBe(0);
    expect(sim.rollbacks).toBe(0);
    expect(sim.maxInFlight.get('merge-checker')).toBeLessThanOrEqual(4);
    expect(sim.allHealthy(3)).toBe(true);
    sim.cluster.checkInvariants();
  });
});

describe('merge checker with every scheduler under random failures and splits', () => {
  it('never violates safety or limits, and once faults stop leaves no mergeable pair and every Region healthy', () => {
    const byKey = (sim: ClusterSim) => [...sim.regions.values()].sort((a, b) => Buffer.compare(Buffer.from(a.region.startKey), Buffer.from(b.region.startKey)));
    const isSmall = (r: { sizeBytes?: number; keys?: number }): boolean => (r.sizeBytes ?? 96 << 20) <= 64 * KiB && (r.keys ?? 100_000) <= 1_000;
    const totals = { merges: 0, moves: 0, splits: 0, kills: 0 };
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 16, maxLength: 16 }),
        fc.array(fc.tuple(fc.constantFrom('kill', 'revive', 'split', 'none', 'none'), fc.nat()), { minLength: 10, maxLength: 30 }),
        (smallness, events) => {
          const limits = { replica: 4, merge: 3, leader: 3, region: 2 };
          const sim = new ClusterSim({
            maxReplicas: 3,
            maxStoreDownTimeMs: 8_000,
            storeDisconnectMs: 2_000,
            schedulers: [
              new ReplicaChecker({ limit: limits.replica }),
              new MergeChecker({ ...small, limit: limits.merge }),
              new BalanceLeader({ limit: limits.leader }),
              new BalanceRegion({ limit: limits.region }),
            ],
          });
          sims.push(sim);
          sim.mergeCommitDelayRounds = 2;
          sim.setup(5, 16, (i) => [i % 5, (i + 2) % 5, (i + 4) % 5]);
          sized(sim, smallness.map((sm) => (sm ? { bytes: 2 * KiB } : { bytes: 1024 * KiB })));
          for (const [what, n] of events) {
            const ids = sim.storeIds();
            const live = ids.filter((id) => sim.storeAlive.get(id));
            const degraded = [...sim.regions.values()].some((r) => r.region.peers.some((p) => !sim.storeAlive.get(p.storeId)));
            if (what === 'kill' && live.length > 4 && !degraded) sim.killStore(live[n % live.length]!);
            else if (what === 'revive') {
              const dead = ids.filter((id) => !sim.storeAlive.get(id));
              if (dead.length > 0) sim.storeAlive.set(dead[n % dead.length]!, true);
            } else if (what === 'split') {
              // A store splits a Region on its own (not one frozen by PrepareMerge, whose leader must be live).
              const cands = [...sim.regions.values()].filter((r) => !r.merging && sim.storeAlive.get(r.region.peers.find((p) => p.id === r.leaderId)!.storeId));
              if (cands.length > 0) sim.split(cands[n % cands.length]!.region.id);
            }
            for (let i = 0; i < 4; i++) sim.round();
          }
          const settled = (): boolean => {
            if (!sim.allHealthy(3) || sim.cluster.operators.size > 0) return false;
            const rs = byKey(sim);
            for (let i = 1; i < rs.length; i++) if (isSmall(rs[i - 1]!) && isSmall(rs[i]!)) return false;
            return true;
          };
          expect(sim.runUntil(settled, 600)).toBeGreaterThan(0);
          expect(sim.violations).toEqual([]);
          expect(sim.cluster.operators.stats.rejected).toBe(0);
          expect(sim.maxInFlight.get('merge-checker') ?? 0).toBeLessThanOrEqual(limits.merge);
          expect(sim.cluster.regionCount()).toBe(sim.regions.size);
          sim.cluster.checkInvariants();
          totals.merges += sim.merges.length;
          totals.moves += sim.stepsApplied.removePeer;
          totals.splits += events.filter(([w]) => w === 'split').length;
          totals.kills += sim.storeDiedAt.size;
          sim.close();
          sims = sims.filter((x) => x !== sim);
        },
      ),
      { numRuns: 12 },
    );
    // The runs did exercise merges, peer moves, splits and failures together.
    expect(totals.merges).toBeGreaterThan(0);
    expect(totals.moves).toBeGreaterThan(0);
    expect(totals.splits).toBeGreaterThan(0);
    expect(totals.kills).toBeGreaterThan(0);
  });
});
