// runTxnSimulation: a transaction workload (bank or list-append) in the
// deterministic simulation: placement and N real stores on the virtual
// clock (cluster.ts), the keyspace pre-split so the workload's keys span
// many Regions, the run's seeded faults (faults.ts: crashes, partitions,
// splits, merges, leader transfers, conf changes, placement crashes), then
// healing, a final read that must succeed (liveness) and the checker.
//
// The clients run the REAL Percolator driver from @flotilla/client (runTxn
// over SimTxnTransport) — or, with backend 'model', the in-memory reference
// model, which tests this harness's wiring without the store's transactions.
import { rmSync } from 'node:fs';
import { mulberry32 } from '@flotilla/transport';
import { SimCluster, startCluster } from '../cluster';
import { installVirtualClock, makeSimDir, SimClock, SLICE_MS, virtualNow } from '../clock';
import { SafetyCheckers } from '../checkers';
import { healEverything, injectFaults, newFaultContext, startNetworkFaults } from '../faults';
import { bytes, keyName } from '../keys';
import { InProcessPlacement, resetTimestampOracle } from '../placement-adapter';
import { Recorder } from '../report';
import type { TxnApi } from './api';
import { transportTxnApi } from './driver-api';
import { ModelTxnApi, type ModelMode } from './model';
import { startTxnWorkload, type TxnVerdict, type TxnWorkloadKind } from './run';
import { SimTxnTransport } from './sim-transport';
import { WatchRun, type WatchSimOptions, type WatchVerdict } from '../watch/run';

export interface TxnSimOptions {
  seed: number;
  workload: TxnWorkloadKind;
  /** backend: 'driver' (default) runs @flotilla/client's driver against the stores; 'model' the in-memory reference. */
  backend?: 'driver' | { model: ModelMode };
  stores?: number;
  clients?: number;
  /** keys: list-append keys or bank accounts (default 8), each pre-split into a Region of its own. */
  keys?: number;
  safetyMs?: number;
  livenessBoundMs?: number;
  faults?: boolean;
  /** onePc: let the driver commit single-Region transactions in one phase (default true). */
  onePc?: boolean;
  /** placementCrashes: the placement crash fault (default true; the oracle is down with it). */
  placementCrashes?: boolean;
  /** watch: also run watchers beside the workload and check what they delivered against its history (watch/run.ts). */
  watch?: WatchSimOptions;
  log?: (line: string) => void;
}

export interface TxnSimResult {
  seed: number;
  ok: boolean;
  failures: string[];
  verdict: TxnVerdict | undefined;
  faults: Record<string, number>;
  faultLog: string[];
  virtualMs: number;
  realMs: number;
  regionsAtStart: number;
  /** watch: the watch checker's verdict (runs with `watch` set). */
  watch?: WatchVerdict;
}

/** runTxnSimulation runs one seed of a txn workload (see the file header). */
export async function runTxnSimulation(opts: TxnSimOptions): Promise<TxnSimResult> {
  const o = { stores: 3, clients: 4, keys: 8, safetyMs: 10_000, livenessBoundMs: 30_000, faults: true, onePc: true, placementCrashes: true, backend: 'driver' as const, log: () => {}, ...opts };
  const realStart = performance.now();
  // The driver's backoff jitter draws from Math.random: seed it for the run, so a seed replays.
  const realRandom = Math.random;
  Math.random = mulberry32(o.seed ^ 0x4a177e4);
  const dir = makeSimDir('flotilla-txnsim-');
  resetTimestampOracle();
  const fakeClock = installVirtualClock();
  const rec = new Recorder();
  const cluster = new SimCluster(dir, o.seed, false);
  const checkers = new SafetyCheckers(cluster, (f) => rec.fail(f));
  const clock = new SimClock(fakeClock, () => checkers.check());
  const keys = Array.from({ length: o.keys }, (_, i) => keyName(i));
  let verdict: TxnVerdict | undefined;
  let regionsAtStart = 0;
  let watch: WatchRun | undefined;
  let watchVerdict: WatchVerdict | undefined;
  try {
    await startCluster(cluster, o.stores, (ms) => clock.advance(ms));
    regionsAtStart = await preSplit(cluster, keys, clock);
    o.log(`seed ${o.seed}: ${o.stores} stores, ${regionsAtStart} Regions at ${virtualNow()} ms virtual`);
    const pd = new InProcessPlacement(() => cluster.placement, () => cluster.placementDown);
    let api = makeApi(o.backend, cluster, o.seed, o.onePc, pd);
    if (o.watch) {
      watch = new WatchRun(cluster, pd, api, o.seed, keys, o.safetyMs, o.faults, o.watch);
      api = watch.api;
    }
    let running = true;
    let events = 0;
    const env = { nextEvent: () => ++events, sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)), running: () => running, thinkMs: 30 };
    const setup = startTxnWorkload(api, env, { kind: o.workload, seed: o.seed, clients: o.clients, keys, setupDeadlineMs: Date.now() + 20_000 });
    const w = await clock.runUntilSettled(setup, Date.now() + 21_000);
    watch?.start();
    const faults = newFaultContext(cluster, mulberry32(o.seed ^ 0x7a11), rec, { removePeers: true, merges: true, placementCrashes: o.placementCrashes, replaceStores: false }, o.stores, o.keys);
    if (o.faults) startNetworkFaults(faults);
    for (const end = Date.now() + o.safetyMs; Date.now() < end; ) {
      if (o.faults) await injectFaults(faults);
      watch?.slice(rec);
      await clock.advance(SLICE_MS);
    }
    running = false;
    await healEverything(cluster, rec);
    rec.note('liveness-start');
    const livenessEnd = Date.now() + o.livenessBoundMs;
    await clock.runUntilSettled(w.finished, livenessEnd);
    // One more read of everything, after every client's last transaction returned: an acknowledged write lost is caught here.
    if (!(await clock.runUntilSettled(w.finalRead(livenessEnd), livenessEnd + 1_000))) rec.fail(`liveness: the final read of every key did not commit within ${o.livenessBoundMs} ms after healing`);
    if (watch) watchVerdict = await watch.finishAfter(pd, clock, livenessEnd, rec);
    verdict = w.check();
    if (!verdict.ok) rec.fail(`${o.workload} checker: ${verdict.explanation}`);
    if (Number(verdict.summary['ok'] ?? 0) < 10) rec.fail(`liveness: only ${verdict.summary['ok']} transactions committed`);
  } catch (e) {
    rec.fail(`txn simulation crashed: ${(e as Error).stack ?? String(e)}`);
  } finally {
    watch?.stop();
    const virtualMs = virtualNow();
    await cluster.close().catch((e: Error) => rec.fail(`close failed: ${e.message}`));
    fakeClock.uninstall();
    Math.random = realRandom;
    rmSync(dir, { recursive: true, force: true });
    Object.assign(rec.stats, { virtualMs });
  }
  return { seed: o.seed, ok: rec.failures.length === 0, failures: rec.failures, verdict, faults: rec.stats.faults, faultLog: rec.faultLog, virtualMs: rec.stats.virtualMs, realMs: Math.round(performance.now() - realStart), regionsAtStart, ...(watchVerdict ? { watch: watchVerdict } : {}) };
}

function makeApi(backend: TxnSimOptions['backend'], cluster: SimCluster, seed: number, onePc: boolean, pd: InProcessPlacement): TxnApi {
  if (backend !== undefined && backend !== 'driver') return new ModelTxnApi(backend.model, mulberry32(seed ^ 0xd0d0));
  // The clients' oracle is the one the stores' 1PC commits use (one per process, in InProcessPlacement); it fails while placement is down.
  const transport = new SimTxnTransport(cluster, mulberry32(seed ^ 0x7e57), { timeoutMs: 5_000, timestamp: () => pd.timestamp() });
  return transportTxnApi(transport, { onePc, timeoutMs: 8_000, maxRetries: 10 });
}

/**
 * preSplit splits the keyspace at every key but the first (one Region per
 * key), a split at a time through the Region's leader, and waits until
 * placement's routing table has them all (at most 30 s virtual). Returns
 * the number of Regions.
 */
async function preSplit(cluster: SimCluster, keys: readonly string[], clock: SimClock): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (const k of keys.slice(1)) {
    const key = bytes(k);
    while (Date.now() < deadline) {
      const found = cluster.placementDown ? null : cluster.placement.call('getRegion', { key }).region;
      const leader = found && cluster.leaderOf(found.region.id);
      if (found && Buffer.from(found.region.startKey).equals(Buffer.from(key))) break;
      if (leader) {
        const r = leader.peer.region;
        cluster.store(leader.storeId)!.handleClientRequest({ id: 0, header: { regionId: r.id, regionEpoch: r.epoch }, op: 'split', splitKeys: [key] }, () => {});
      }
      await clock.advance(SLICE_MS * 3);
    }
  }
  return cluster.regions().length;
}
