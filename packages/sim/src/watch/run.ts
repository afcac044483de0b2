// WatchRun: the watch checker's part of a txn simulation run (txn/simulation.ts
// with `watch` set). It wraps the workload's TxnApi to record every
// transaction's writes and fate, runs the watchers over simulated links,
// cuts a link now and then during the safety phase, and at the end waits
// for every watcher to pass a timestamp taken after the final read, closes
// them and checks what they delivered against the history.
import { createHash } from 'node:crypto';
import { mulberry32 } from '@flotilla/transport';
import type { SimCluster } from '../cluster';
import type { SimClock } from '../clock';
import type { InProcessPlacement } from '../placement-adapter';
import type { Recorder } from '../report';
import type { TxnApi } from '../txn/api';
import { SimWatchLinks, type PlantedWatchBug } from './adapter';
import { checkWatches, type WatchCheckResult } from './checker';
import { RecordingTxnApi } from './history';
import { simWatchEnv, WatchWorkload } from './workload';

export interface WatchSimOptions {
  /** watchers: how many (default 4); watcher 0 watches the whole keyspace. */
  watchers?: number;
  /** linkFaults: delays up to 20 ms on the watch links and cuts during the safety phase (default: when the run has faults). */
  linkFaults?: boolean;
  /** plant: a test-only bug in the links (adapter.ts) the checker must catch. */
  plant?: PlantedWatchBug;
}

/** WatchVerdict: the checker's answer, the flat summary for the JSON line, and a digest of what was delivered. */
export interface WatchVerdict {
  ok: boolean;
  result: WatchCheckResult;
  summary: Record<string, number>;
  /** digest hashes the commits and every watcher's deliveries: a replay of the seed gives the same. */
  digest: string;
}

/** CUT_PER_SLICE: the chance, per 100 ms slice of the safety phase, that one open watch link is cut. */
const CUT_PER_SLICE = 0.03;

export class WatchRun {
  readonly api: RecordingTxnApi;
  private readonly links: SimWatchLinks;
  private readonly workload: WatchWorkload;
  private readonly rng: () => number;
  private readonly linkFaults: boolean;

  constructor(cluster: SimCluster, pd: InProcessPlacement, inner: TxnApi, seed: number, keys: readonly string[], safetyMs: number, faults: boolean, o: WatchSimOptions) {
    this.rng = mulberry32(seed ^ 0x3a7c4);
    const linkFaults = o.linkFaults ?? faults;
    this.api = new RecordingTxnApi(inner);
    this.links = new SimWatchLinks(cluster, mulberry32(seed ^ 0x11e5), { maxDelayMs: linkFaults ? Math.floor(this.rng() * 21) : 0, ...(o.plant ? { plant: o.plant } : {}) });
    const env = simWatchEnv(cluster, this.links, pd, mulberry32(seed ^ 0x9d));
    this.workload = new WatchWorkload(env, this.api, mulberry32(seed ^ 0x5eed), { watchers: o.watchers ?? 4, openWithinMs: Math.max(100, Math.floor(safetyMs * 0.6)), keys });
    this.linkFaults = linkFaults;
  }

  start(): void {
    this.workload.start();
  }

  /** slice is one safety-phase slice of link faults: now and then one open link is cut. */
  slice(rec: Recorder): void {
    if (!this.linkFaults || this.rng() >= CUT_PER_SLICE) return;
    const store = this.links.cutRandom();
    if (store !== undefined) rec.fault('watch-cut', `a watch link to store ${store}`);
  }

  /**
   * finishAfter ends the watch part of a run after its final read: every
   * watcher must get past a timestamp taken then, within 10 s of the
   * liveness bound; failures go to rec.
   */
  async finishAfter(pd: InProcessPlacement, clock: SimClock, livenessEndMs: number, rec: Recorder): Promise<WatchVerdict> {
    const finalTs = await clock.runUntilSettled(pd.timestamp(), livenessEndMs + 1_000);
    const done = await this.finish(finalTs, clock, livenessEndMs + 10_000);
    done.failures.forEach((f) => rec.fail(f));
    return done.verdict;
  }

  /** finish: every watcher past finalTs (or a liveness failure), closed, and checked. */
  async finish(finalTs: bigint, clock: SimClock, deadlineMs: number): Promise<{ failures: string[]; verdict: WatchVerdict }> {
    const failures = await this.workload.finish(finalTs, clock, deadlineMs);
    const records = this.workload.records;
    const result = checkWatches(this.api.commits, records);
    for (const f of result.failures) failures.push(`watch checker: ${f.explanation}`);
    const digest = createHash('sha256')
      .update(JSON.stringify({ commits: this.api.commits, records }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)))
      .digest('hex')
      .slice(0, 16);
    const summary = {
      watchers: records.length,
      watchEvents: result.stats.events,
      watchProgress: result.stats.progress,
      watchExpected: result.stats.expected,
      undeterminedPlaced: result.stats.undeterminedPlaced,
      resumes: records.reduce((a, r) => a + r.resumes, 0),
      resubscribes: this.workload.resubscribes,
      links: this.links.opened,
      linkCuts: this.links.cuts,
      openFailures: this.workload.openFailures,
    };
    return { failures, verdict: { ok: failures.length === 0, result, summary, digest } };
  }

  stop(): void {
    this.workload.stop();
  }
}
