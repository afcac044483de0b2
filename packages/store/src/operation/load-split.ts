import { compareKeys, keyInRegion, type Region } from '@flotilla/proto';

/**
 * Load-based split, the pure part (TiKV's split_controller.rs): a window
 * that says whether a Region led here has been hot for long enough, and a
 * key chooser that finds the key splitting the Region's *load* (not its
 * size) in two. No clock, no I/O: the driver (load-split-driver.ts) feeds
 * requests and closes windows on the store's tick.
 *
 * The chooser keeps a bounded reservoir of sampled request start keys (the
 * candidate split keys). Every request after a candidate was sampled is
 * counted against it: entirely left of it, right of it (at or past it), or
 * crossing it (a scan or batch that a split there would cut in two). The
 * best candidate balances left against right and crosses few requests.
 * A single hot key never balances (every request is at or right of it),
 * so it is not split: a split cannot spread one key's load.
 */

/** LoadSplitOptions: TiKV's split.qps-threshold, split.byte-threshold, detect-times, sample-num and split-balance-score. */
export interface LoadSplitOptions {
  /** qpsThreshold: requests per second over which a window counts as hot (0: never by requests). */
  qpsThreshold: number;
  /** bytesPerSecThreshold: bytes per second over which a window counts as hot (0: never by bytes). */
  bytesPerSecThreshold: number;
  /** hotWindows: how many hot windows in a row before a split key is chosen. */
  hotWindows: number;
  /** maxSamples bounds the reservoir of candidate keys (memory: this many keys and three counters each). */
  maxSamples?: number;
  /** maxBalanceScore: a candidate whose |left - right| / (left + right) exceeds this is not a split key. */
  maxBalanceScore?: number;
  /** minSampledRequests: a candidate must have been counted against at least this many requests. */
  minSampledRequests?: number;
}

export const LOAD_SPLIT_MAX_SAMPLES = 20;
export const LOAD_SPLIT_MAX_BALANCE_SCORE = 0.25;
export const LOAD_SPLIT_MIN_SAMPLED_REQUESTS = 16;

interface Sample {
  key: Uint8Array;
  left: number;
  right: number;
  crossing: number;
}

/**
 * LoadSampler is the reservoir of candidate split keys. record() is
 * O(maxSamples) compares per request; memory is bounded by maxSamples.
 */
export class LoadSampler {
  private readonly samples: Sample[] = [];
  private seen = 0;

  constructor(
    private readonly random: () => number,
    private readonly maxSamples = LOAD_SPLIT_MAX_SAMPLES,
  ) {}

  get sampleCount(): number {
    return this.samples.length;
  }

  /**
   * record counts one request over keys [start, end] (end inclusive;
   * undefined for a single key, null for no end) against every candidate, then offers its
   * start key to the reservoir (Algorithm R: the n-th request replaces a
   * random candidate with probability maxSamples / n).
   */
  record(start: Uint8Array, end?: Uint8Array | null): void {
    for (const s of this.samples) {
      if (compareKeys(start, s.key) >= 0) s.right++;
      else if (end === undefined || (end !== null && compareKeys(end, s.key) < 0)) s.left++;
      else s.crossing++;
    }
    this.seen++;
    // The key is copied only when it is kept (the request's buffer may be reused).
    const fresh = (): Sample => ({ key: Uint8Array.from(start), left: 0, right: 0, crossing: 0 });
    if (this.samples.length < this.maxSamples) this.samples.push(fresh());
    else {
      const i = Math.floor(this.random() * this.seen);
      if (i < this.maxSamples) this.samples[i] = fresh();
    }
  }

  /**
   * chooseKey returns the candidate that best splits the load of `region`,
   * or undefined when none is good enough: each side must have seen load
   * (never an empty Region by load), the key must be strictly inside the
   * Region (not its start key), the balance score at most maxBalanceScore,
   * and among those the one with the lowest balance + crossing score.
   */
  chooseKey(region: Region, maxBalanceScore = LOAD_SPLIT_MAX_BALANCE_SCORE, minSampledRequests = LOAD_SPLIT_MIN_SAMPLED_REQUESTS): Uint8Array | undefined {
    let best: Sample | undefined;
    let bestScore = Infinity;
    for (const s of this.samples) {
      const total = s.left + s.right + s.crossing;
      if (total < minSampledRequests || s.left === 0 || s.right === 0) continue;
      if (!keyInRegion(s.key, region) || compareKeys(s.key, region.startKey) === 0) continue;
      const balance = Math.abs(s.left - s.right) / (s.left + s.right);
      if (balance > maxBalanceScore) continue;
      const score = balance + s.crossing / total;
      if (score < bestScore) {
        best = s;
        bestScore = score;
      }
    }
    return best?.key;
  }

  clear(): void {
    this.samples.length = 0;
    this.seen = 0;
  }
}

/** LoadWindowVerdict: what closing a window decided. */
export type LoadWindowVerdict = { kind: 'cold' } | { kind: 'warming'; hotWindows: number } | { kind: 'split'; key: Uint8Array } | { kind: 'no-key'; hotWindows: number };

/**
 * LoadSplitRecorder is one led Region's load over fixed windows. It
 * samples keys only while the Region is hot (a cold Region costs two
 * additions per request), and after `hotWindows` hot windows in a row asks
 * the sampler for a key. A cold window drops the samples: load must be
 * sustained, not a burst.
 */
export class LoadSplitRecorder {
  private requests = 0;
  private hotRun = 0;
  readonly sampler: LoadSampler;

  constructor(
    private readonly opts: LoadSplitOptions,
    random: () => number,
  ) {
    this.sampler = new LoadSampler(random, opts.maxSamples ?? LOAD_SPLIT_MAX_SAMPLES);
  }

  /** sampling: the previous window was hot, so this one samples request keys. */
  get sampling(): boolean {
    return this.hotRun > 0;
  }

  /** record counts one request (see LoadSampler.record for start/end); its keys are sampled only while the Region is hot. */
  record(start: Uint8Array, end?: Uint8Array | null): void {
    this.requests++;
    if (this.hotRun > 0) this.sampler.record(start, end);
  }

  /**
   * closeWindow ends a window of `windowMs` in which the Region moved
   * `bytes` (read values and written keys+values, from the peer's flow
   * counter) and says whether it should split, and where.
   */
  closeWindow(windowMs: number, bytes: number, region: Region): LoadWindowVerdict {
    const seconds = Math.max(0.001, windowMs / 1000);
    const qps = this.requests / seconds;
    const bps = bytes / seconds;
    this.requests = 0;
    const o = this.opts;
    const hot = (o.qpsThreshold > 0 && qps >= o.qpsThreshold) || (o.bytesPerSecThreshold > 0 && bps >= o.bytesPerSecThreshold);
    if (!hot) {
      this.hotRun = 0;
      this.sampler.clear();
      return { kind: 'cold' };
    }
    this.hotRun++;
    // The first hot window only turns sampling on; the key comes from the windows after it.
    if (this.hotRun <= o.hotWindows) return { kind: 'warming', hotWindows: this.hotRun };
    const key = this.sampler.chooseKey(region, o.maxBalanceScore, o.minSampledRequests);
    this.hotRun = 1;
    this.sampler.clear();
    return key ? { kind: 'split', key } : { kind: 'no-key', hotWindows: o.hotWindows };
  }
}
