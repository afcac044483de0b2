// Whole-cluster deterministic simulation (FoundationDB / TigerBeetle VOPR
// style): placement and N stores in ONE process, a virtual clock, the
// in-memory LocalNetwork with seeded faults, crashes and restarts, forced
// splits, merges, conf changes and leader transfers, and a random KV
// workload whose history is checked for linearizability.
//
// One seed decides everything: the fault plan, the workload, the network's
// fault draws and (through the faked Date.now) the stores' raft seeds. Real
// I/O (SQLite, the client port each store listens on) happens only at
// store start/stop, which the driver awaits between clock slices, so it
// cannot interleave with simulated events. `runSimulation` twice with the
// same seed yields the same history digest; a test verifies it.
//
// The parts: cluster.ts (the processes), clock.ts (virtual time),
// sim-client.ts and workload.ts (the clients), faults.ts (the fault table),
// checkers.ts (safety during the run, convergence and linearizability at the
// end), report.ts (the record, the digest, the end-state report).

import { rmSync } from 'node:fs';
import { mulberry32 } from '@flotilla/transport';
import { SimCluster, startCluster } from './cluster';
import { installVirtualClock, makeSimDir, SimClock, SLICE_MS, virtualNow } from './clock';
import { checkHistory, convergence, SafetyCheckers } from './checkers';
import { healEverything, injectFaults, newFaultContext, startNetworkFaults } from './faults';
import { describeCluster, Recorder, type SimResult } from './report';
import { readEveryKey, Workload } from './workload';
import { checkTso } from './placement-checkers';
import { TsoWorkload } from './tso-workload';

/** checkPlacementHistory adds the replicated placement's end-of-run checks: duplicate IDs and TSO linearizability. */
function checkPlacementHistory(cluster: SimCluster, tso: TsoWorkload | undefined, rec: Recorder): void {
  for (const v of cluster.ledger.violations.slice(0, 20)) rec.fail(`placement: ${v}`);
  rec.stats.idsIssued = cluster.ledger.size;
  if (!tso) return;
  rec.stats.tsoAnswers = tso.records.length;
  rec.stats.tsoFailed = tso.failed;
  for (const v of checkTso(tso.records)) rec.fail(`placement: ${v}`);
}

export interface SimOptions {
  seed: number;
  /** stores in the cluster (3..5). */
  stores?: number;
  /** clients running the workload concurrently. */
  clients?: number;
  /** keys in the workload's key universe. */
  keys?: number;
  /** safetyMs: virtual ms of workload under faults. */
  safetyMs?: number;
  /** livenessBoundMs: after healing, everything must converge and serve within this many virtual ms. */
  livenessBoundMs?: number;
  /** opTimeoutMs: a client gives up on an operation after this long (its outcome is then unknown). */
  opTimeoutMs?: number;
  /** faults: false runs the same workload without any fault (a baseline). */
  faults?: boolean;
  /** maxStepsPerKey bounds the linearizability search per key. */
  maxStepsPerKey?: number;
  /**
   * removePeers enables the conf-change fault (remove a follower voter; placement re-adds
   * a replica). Default true. See STORE_BUGS.md #1: a store never re-creates a peer of a
   * Region it once had, so this fault can leave a Region without quorum.
   */
  removePeers?: boolean;
  /**
   * replaceStores enables losing one store's disk for good (at most once per seed) and
   * adding a fresh store: placement must move the lost store's replicas (default true).
   */
  replaceStores?: boolean;
  /** tickSkew: relative clock-rate drift between stores' tick timers (0 = none, 0.2 = ±20 %). */
  tickSkew?: number;
  /** readOnly: the stores' read mode ('safe' ReadIndex, default, or 'lease-based' leader leases). */
  readOnly?: 'safe' | 'lease-based';
  /** merges enables the merge fault: a random Region is merged into a neighbour (default true). */
  merges?: boolean;
  /** placementCrashes enables the placement crash/restart fault (default true). */
  placementCrashes?: boolean;
  /**
   * balance enables placement's balance-leader and balance-region schedulers (default true).
   * With more than 3 stores balance-region moves replicas back and forth, which runs into
   * STORE_BUGS.md #1; tests turn it off until that is fixed.
   */
  balance?: boolean;
  /**
   * injectStaleReads makes half of the workload's gets read some replica's state machine
   * directly (no ReadIndex, no leader check): a deliberate bug the checkers must catch.
   */
  injectStaleReads?: boolean;
  /** log prints progress lines (the CLI passes console.error). */
  log?: (line: string) => void;
  /** debugStores prints store warnings and errors. */
  debugStores?: boolean;
  /**
   * placements: 1 runs placement as one in-process PlacementCluster (default);
   * 3 runs it as a Raft group of three PlacementMembers over a simulated
   * network, with member crashes, partitions and store-placement cuts, TSO
   * clients, and the replicated-placement checkers (placement-checkers.ts).
   */
  placements?: 1 | 3;
  /** tsoClients: concurrent TSO clients with placements: 3 (default 2). */
  tsoClients?: number;
}

/** runSimulation runs one seed: setup, safety phase with faults, liveness phase, then the checkers. */
export async function runSimulation(opts: SimOptions): Promise<SimResult> {
  const o = withDefaults(opts);
  const realStart = performance.now();
  const rng = mulberry32(o.seed ^ 0x5eed);
  const dir = makeSimDir('flotilla-sim-');
  const fakeClock = installVirtualClock();
  const rec = new Recorder();
  const { stats } = rec;
  const cluster = new SimCluster(dir, o.seed, o.debugStores, o.balance, o.readOnly, o.tickSkew, o.placements, fakeClock);
  const checkers = new SafetyCheckers(cluster, (f) => rec.fail(f));
  let tso: TsoWorkload | undefined;
  const trace = () => o.log(`  t=${virtualNow()} ms ops=${stats.ops} acked=${stats.acknowledged} real=${Math.round(performance.now())}`);
  const clock = new SimClock(fakeClock, () => checkers.check(), trace);
  const workloadOptions = { seed: o.seed, clients: o.clients, keys: o.keys, opTimeoutMs: o.opTimeoutMs, injectStaleReads: o.injectStaleReads };

  try {
    // ----------------------------------------------------------------- setup
    await startCluster(cluster, o.stores, (ms) => clock.advance(ms));
    o.log(`seed ${o.seed}: cluster up (${o.stores} stores) at ${virtualNow()} ms virtual`);

    // ---------------------------------------------------------- safety phase
    const workload = new Workload(cluster, rec, workloadOptions);
    if (cluster.group && o.tsoClients > 0) tso = new TsoWorkload(cluster, rec, o.seed, o.tsoClients);
    const faults = newFaultContext(cluster, rng, rec, o, o.stores, o.keys);
    if (o.faults) startNetworkFaults(faults);
    const safetyEnd = Date.now() + o.safetyMs;
    while (Date.now() < safetyEnd) {
      if (o.faults) await injectFaults(faults);
      await clock.advance(SLICE_MS);
    }

    // -------------------------------------------------------- liveness phase
    workload.stop();
    await healEverything(cluster, rec, faults, (ms) => clock.advance(ms));
    rec.note('liveness-start');
    // Let in-flight client operations finish (they are bounded by opTimeoutMs).
    await clock.advanceFor(o.opTimeoutMs + 500);
    await workload.finished;
    // TSO clients go on through the liveness phase's start, then stop (a call is bounded by CALL_TIMEOUT_MS).
    tso?.stop();
    if (tso) await clock.runUntilSettled(tso.finished, Date.now() + 10_000);
    await awaitConvergence(cluster, clock, rec, workloadOptions, o.livenessBoundMs);
    stats.placementLeaders = checkers.finish().placementLeaders;
    checkPlacementHistory(cluster, tso, rec);
    if (rec.failures.length > 0) rec.fail(describeCluster(cluster));
    stats.regionsAtEnd = cluster.placementDown ? 0 : cluster.placement.tree.size;
  } catch (e) {
    rec.fail(`simulation crashed: ${(e as Error).stack ?? String(e)}`);
  } finally {
    stats.virtualMs = virtualNow();
    try {
      await cluster.close();
    } catch (e) {
      rec.fail(`close failed: ${(e as Error).message}`);
    }
    fakeClock.uninstall();
    rmSync(dir, { recursive: true, force: true });
  }

  // ----------------------------------------------------------------- check
  const { check, failure } = checkHistory(rec.history, o.maxStepsPerKey);
  stats.searchSteps = check.partitions.reduce((a, p) => a + p.steps, 0);
  if (failure) rec.fail(failure);
  stats.realMs = Math.round(performance.now() - realStart);
  return { seed: o.seed, ok: rec.failures.length === 0, failures: rec.failures, linearizability: check.verdict, stats, digest: rec.digest(), history: rec.history, faultLog: rec.faultLog };
}

/**
 * awaitConvergence is the liveness phase's bound: every key reads back, then
 * placement's routing table and every replica converge, within boundMs.
 */
async function awaitConvergence(cluster: SimCluster, clock: SimClock, rec: Recorder, workloadOptions: Parameters<typeof readEveryKey>[2], boundMs: number): Promise<void> {
  const livenessDeadline = Date.now() + boundMs;
  await clock.runUntilSettled(readEveryKey(cluster, rec, workloadOptions, livenessDeadline, boundMs), livenessDeadline + 1000);
  let converged: string | undefined = 'not checked';
  while (Date.now() < livenessDeadline) {
    converged = convergence(cluster);
    if (!converged) break;
    await clock.advance(SLICE_MS * 5);
  }
  if (converged) rec.fail(`liveness: cluster did not converge within ${boundMs} ms after healing: ${converged}`);
}

/** withDefaults fills in every option the caller left out. */
function withDefaults(opts: SimOptions): Required<Omit<SimOptions, 'log'>> & { log: (line: string) => void } {
  return {
    seed: opts.seed,
    stores: opts.stores ?? 3,
    clients: opts.clients ?? 4,
    keys: opts.keys ?? 24,
    safetyMs: opts.safetyMs ?? 15_000,
    livenessBoundMs: opts.livenessBoundMs ?? 30_000,
    opTimeoutMs: opts.opTimeoutMs ?? 3_000,
    faults: opts.faults ?? true,
    maxStepsPerKey: opts.maxStepsPerKey ?? 2_000_000,
    removePeers: opts.removePeers ?? true,
    replaceStores: opts.replaceStores ?? true,
    tickSkew: opts.tickSkew ?? 0,
    readOnly: opts.readOnly ?? 'safe',
    merges: opts.merges ?? true,
    placementCrashes: opts.placementCrashes ?? true,
    balance: opts.balance ?? true,
    placements: opts.placements ?? 1,
    tsoClients: opts.tsoClients ?? 2,
    injectStaleReads: opts.injectStaleReads ?? false,
    debugStores: opts.debugStores ?? false,
    log: opts.log ?? (() => {}),
  };
}
