// WatchWorkload: watchers beside a txn workload in the simulation. Each
// watcher is @flotilla/client's own Watch (merge by resolved ts,
// re-subscribe across leader changes, splits, merges and failures) over
// SimWatchLinks to the stores' real WatchHubs, with routing and the oracle
// from the simulated placement. A watcher opens at a seeded time during the
// safety phase on a seeded range of the workload's keys, from now, from an
// earlier acknowledged commit (a catch-up), or from revision 0 (the whole
// history); some close and resume from the last progress they took, as an
// application would. Everything each one delivers is recorded for
// checkWatches (checker.ts).
import { ClientError, Watch, type WatchEnv, type WatchItem } from '@flotilla/client';
import { decode, encode } from '@flotilla/proto';
import type { RegionWithLeader } from '@flotilla/placement/client';
import type { SimCluster } from '../cluster';
import { SLICE_MS, type SimClock } from '../clock';
import { bytes, text, type Rng } from '../keys';
import type { InProcessPlacement } from '../placement-adapter';
import { SimWatchLinks } from './adapter';
import type { RecordingTxnApi, WatcherRecord } from './history';

/** FINAL_OPEN_ERRORS: Watch.open refusals a retry cannot change. */
const FINAL_OPEN_ERRORS: ReadonlySet<string> = new Set(['Compacted', 'FutureRevision', 'InvalidArgument']);

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** simWatchEnv is the WatchEnv FlotillaClient.watch would build, over the simulated placement and links. */
export function simWatchEnv(cluster: SimCluster, links: SimWatchLinks, pd: InProcessPlacement, rng: Rng): WatchEnv {
  const placementHop = () => new Promise<void>((r) => setTimeout(r, 1 + Math.floor(rng() * 5)));
  const up = async (): Promise<void> => {
    await placementHop();
    if (cluster.placementDown) throw new Error('placement unreachable (simulated crash)');
  };
  return {
    scanRegions: async (startKey, endKey, limit) => {
      await up();
      return decode(encode(cluster.placement.call('scanRegions', { startKey, endKey, limit }).regions)) as RegionWithLeader[];
    },
    storeAddress: async (storeId) => {
      await up();
      return cluster.storeIds().includes(storeId) ? SimWatchLinks.address(storeId) : null;
    },
    timestamp: () => pd.timestamp(),
    // No updateServiceSafePoint: the simulation's one placement runs no GC (that lives in the replicated placement's leader).
    dial: { connectTimeoutMs: 1_000, logger: quiet },
    logger: quiet,
    openSocket: (address) => links.connect(address),
  };
}

export interface WatchWorkloadOptions {
  watchers: number;
  /** openWithinMs: each watcher opens at a seeded time in [0, openWithinMs) (virtual). */
  openWithinMs: number;
  keys: readonly string[];
}

/** SimWatcher is one watcher: its record, its current Watch and what its consumer took last. */
interface SimWatcher {
  record: WatcherRecord;
  watch: Watch | undefined;
  consuming: Promise<void> | undefined;
  lastProgress: bigint;
  resubscribes: number;
  error: string | undefined;
}

export class WatchWorkload {
  readonly watchers: SimWatcher[] = [];
  openFailures = 0;
  private stopped = false;

  constructor(
    private readonly env: WatchEnv,
    private readonly history: RecordingTxnApi,
    private readonly rng: Rng,
    private readonly o: WatchWorkloadOptions,
  ) {}

  /** start launches every watcher's life (open at its time, maybe resume once later); returns at once. */
  start(): void {
    for (let i = 0; i < this.o.watchers; i++) void this.life(i);
  }

  private async life(i: number): Promise<void> {
    const rng = this.rng;
    const n = this.o.keys.length;
    const openAt = Math.floor(rng() * this.o.openWithinMs);
    // Watcher 0 watches everything; the others a seeded run of consecutive keys (to the end of the keyspace when it reaches the last).
    const a = i === 0 ? 0 : Math.floor(rng() * n);
    const b = i === 0 ? n : a + 1 + Math.floor(rng() * (n - a));
    const start = i === 0 ? '' : this.o.keys[a]!;
    const end = b >= n ? '' : this.o.keys[b]!;
    const mode = rng();
    const resumeAfter = rng() < 0.4 ? 500 + Math.floor(rng() * 2_000) : undefined;
    await sleep(openAt);
    const past = this.history.committedTs();
    const from = mode < 0.34 ? undefined : mode < 0.67 && past.length > 0 ? past[Math.floor(rng() * past.length)]! : 0n;
    const w: SimWatcher = { record: { id: i, start, end, from: 0n, items: [], resumes: 0 }, watch: undefined, consuming: undefined, lastProgress: 0n, resubscribes: 0, error: undefined };
    this.watchers.push(w);
    const watch = await this.open(w, from);
    if (watch === undefined) return;
    w.record.from = watch.startRevision;
    w.lastProgress = watch.startRevision;
    this.consume(w, watch);
    if (resumeAfter === undefined) return;
    await sleep(resumeAfter);
    if (this.stopped || w.error !== undefined) return;
    // Resume as an application does: close, take what is queued, open again from the last progress taken.
    await this.closeOne(w);
    const again = await this.open(w, w.lastProgress);
    if (again === undefined) return;
    w.record.resumes++;
    this.consume(w, again);
  }

  /** open opens a Watch, again every 100 ms while the oracle or routing is unreachable (until the workload stops). */
  private async open(w: SimWatcher, from: bigint | undefined): Promise<Watch | undefined> {
    const s = w.record.start === '' ? new Uint8Array(0) : bytes(w.record.start);
    const e = w.record.end === '' ? new Uint8Array(0) : bytes(w.record.end);
    while (!this.stopped) {
      try {
        return await Watch.open(this.env, s, e, { ...(from !== undefined ? { fromRevision: from } : {}), progressNotify: true });
      } catch (err) {
        this.openFailures++;
        // A refusal of the start (compacted, in the future, a bad range) is final; anything else (placement down) is retried.
        if (err instanceof ClientError && FINAL_OPEN_ERRORS.has(err.code)) {
          w.error = `open failed: ${err.message}`;
          return undefined;
        }
        await sleep(100);
      }
    }
    return undefined;
  }

  private consume(w: SimWatcher, watch: Watch): void {
    w.watch = watch;
    w.consuming = (async () => {
      try {
        for await (const item of watch) this.take(w, item);
      } catch (err) {
        w.error = `watch failed: ${(err as Error).message}`;
      } finally {
        w.resubscribes += watch.stats.resubscribes;
      }
    })();
  }

  private take(w: SimWatcher, item: WatchItem): void {
    if (item.type === 'progress') {
      w.lastProgress = item.revision;
      w.record.items.push({ type: 'progress', revision: item.revision });
      return;
    }
    w.record.items.push({ type: item.type, key: text(item.key), ...(item.value !== undefined ? { value: text(item.value) } : {}), revision: item.revision });
  }

  private async closeOne(w: SimWatcher): Promise<void> {
    w.watch?.close();
    await w.consuming;
    w.watch = undefined;
  }

  /**
   * finish waits (virtual time, until deadlineMs) for every open watcher to
   * report progress at or past finalTs, then closes them all and returns
   * the liveness failures (a watcher that failed, or never got there).
   */
  async finish(finalTs: bigint, clock: SimClock, deadlineMs: number): Promise<string[]> {
    // A watcher between two Watches (resuming) or still opening counts as behind.
    const behind = () => this.watchers.filter((w) => w.error === undefined && (w.watch === undefined || w.lastProgress < finalTs));
    while (behind().length > 0 && Date.now() < deadlineMs) await clock.advance(SLICE_MS);
    const late = behind();
    this.stopped = true;
    const closing = Promise.all(this.watchers.map((w) => this.closeOne(w)));
    await clock.runUntilSettled(closing, Date.now() + 1_000);
    const out: string[] = [];
    for (const w of this.watchers) if (w.error !== undefined) out.push(`watch W${w.record.id}: ${w.error}`);
    for (const w of late) out.push(`watch liveness: W${w.record.id} [${w.record.start}, ${w.record.end || '∞'}) ${w.watch === undefined ? 'has no open Watch' : `is complete only to ${w.lastProgress}`}, below ${finalTs} (a timestamp taken after the final read) at the liveness bound`);
    return out;
  }

  /** stop ends the watchers' lives without waiting (a run that crashed). */
  stop(): void {
    this.stopped = true;
    for (const w of this.watchers) w.watch?.close();
  }

  get records(): WatcherRecord[] {
    return this.watchers.map((w) => w.record);
  }

  get resubscribes(): number {
    return this.watchers.reduce((a, w) => a + w.resubscribes + (w.watch?.stats.resubscribes ?? 0), 0);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

