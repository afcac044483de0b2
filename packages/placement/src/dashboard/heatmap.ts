import { performance } from 'node:perf_hooks';
import { assert } from '../errors';
import type { RegionInfo } from '../types';
import { Interval } from './heatmap-interval';
import { METRICS, SliceBudget, mergeRows, runToEnd } from './heatmap-rows';
import { columnSteps, type HeatmapRegions } from './heatmap-slices';

export { HEATMAP_KEY_BYTES, heatmapKey, mergeRows, type HeatmapRows } from './heatmap-rows';
export type { HeatmapRegions } from './heatmap-slices';

// The key visualizer's recorder (TiDB Dashboard's key-vis): the placement
// leader turns the flow its Region leaders report into one column per
// interval, each the key space cut into rows by Region boundaries with the
// traffic of that interval. Memory is bounded by maxColumns × maxRows (plus
// the accumulation of the intervals not yet recorded, one slot per Region
// that reported: heatmap-interval.ts): old columns fall off, and when there
// are more Regions than maxRows adjacent ones are merged by key order
// (heatmap-rows.ts). A column is recorded in slices between event-loop
// turns (heatmap-slices.ts). Kept in memory on the leader only: a new
// leader starts an empty map (not persisted; the rates it is made of are
// not persisted either).

/** HeatmapOptions sizes the key visualizer (ClusterOptions.heatmap). */
export interface HeatmapOptions {
  /** intervalMs: the time one column covers (default 10 s). */
  intervalMs?: number;
  /** maxColumns: columns kept; the oldest is dropped beyond it (default 360: one hour at 10 s). */
  maxColumns?: number;
  /** maxRows: rows in one column at most; adjacent Regions are merged beyond it (default 256, as TiDB's key-vis). */
  maxRows?: number;
  /**
   * recordInSlices: record a column in slices between event-loop turns
   * (default true). false records it in one pass inside the heartbeat that
   * finds it due (what it did before; 54-74 ms at 100,000 Regions), kept so
   * that bench:heatmap can compare the two side by side.
   */
  recordInSlices?: boolean;
  /** sliceRegions: units of work (Regions or rows visited) one slice does at most (default 2,048). */
  sliceRegions?: number;
  /** sliceMs: wall time one slice takes at most (default 2; the clock is read every 64 units). */
  sliceMs?: number;
  /** onSlice: called after each slice with the units it did and its wall time (tests, bench:heatmap; may change the routing table, as a heartbeat between two slices would). */
  onSlice?: (units: number, ms: number) => void;
}

/** HEATMAP_METRICS names the four values every row carries, in the order they are stored. */
export const HEATMAP_METRICS = ['write_bytes', 'read_bytes', 'write_keys', 'read_keys'] as const;
export type HeatmapMetric = (typeof HEATMAP_METRICS)[number];

/**
 * MAX_QUEUED: intervals waiting to be recorded at most. Recording one takes
 * a fraction of an interval, so more are queued only when the event loop
 * gave slices no turn for several intervals (or a test drives a virtual
 * clock); then the oldest is finished in one go, so memory stays bounded
 * and no traffic is lost.
 */
const MAX_QUEUED = 4;

/**
 * HeatmapColumn is one interval: rows in key order, row i is
 * [starts[i], ends[i]) with values[i * 4 + m] the amount of metric m
 * (HEATMAP_METRICS order: bytes or keys, not rates) in the interval. Keys
 * are byte strings (one char per byte, so string order is byte order); the
 * empty start is the start of the key space and the empty end its end.
 * Columns are never changed once recorded (skipped intervals share arrays).
 */
export interface HeatmapColumn {
  startMs: number;
  endMs: number;
  starts: readonly string[];
  ends: readonly string[];
  values: Float64Array;
}

/** HeatmapSummary is what each dashboard snapshot says of the map, so the page fetches it again only when a column was added. */
export interface HeatmapSummary {
  intervalMs: number;
  maxColumns: number;
  maxRows: number;
  sinceMs: number;
  columns: number;
  lastColumnEndMs: number | null;
}

/** HeatmapSizes: the key visualizer's sizes with their defaults filled in. */
export interface HeatmapSizes {
  intervalMs: number;
  maxColumns: number;
  maxRows: number;
  sliceRegions: number;
  sliceMs: number;
}

/** heatmapSizes fills in the defaults and refuses sizes that are not positive integers (maxRows at least 2), so a bad option fails at start. */
export function heatmapSizes(opts: HeatmapOptions = {}): HeatmapSizes {
  const sizes = { intervalMs: opts.intervalMs ?? 10_000, maxColumns: opts.maxColumns ?? 360, maxRows: opts.maxRows ?? 256, sliceRegions: opts.sliceRegions ?? 2_048, sliceMs: opts.sliceMs ?? 2 };
  const checks = [['intervalMs', sizes.intervalMs, 1], ['maxColumns', sizes.maxColumns, 1], ['maxRows', sizes.maxRows, 2], ['sliceRegions', sizes.sliceRegions, 1], ['sliceMs', sizes.sliceMs, 1]] as const;
  for (const [name, v, min] of checks) {
    if (!(Number.isSafeInteger(v) && v >= min)) throw new Error(`heatmap.${name}: ${v} is not an integer >= ${min}`);
  }
  return sizes;
}

/** Job: an interval waiting to be recorded as `count` columns from startMs on (more than one: a silence recorded in one step, all empty). */
interface Job {
  interval: Interval;
  startMs: number;
  count: number;
  steps?: Generator<void, { starts: string[]; ends: string[]; values: Float64Array }, void>;
}

/**
 * HeatmapRecorder keeps the key visualizer's columns. It runs no timer:
 * an interval is due by the first heartbeat or read after the interval
 * following it ends (see pending; intervals with no traffic and no reader
 * are filled in then, with the routing table as it is), so an idle leader
 * does no work and a test can drive it with a virtual clock. A due
 * interval is queued and recorded in slices through setImmediate
 * (heatmap-slices.ts), each at most sliceRegions units of work or sliceMs,
 * so that TSO requests and heartbeats are served in between; meanwhile
 * columns() (GET /dashboard/heatmap) answers at once with the columns
 * finished so far.
 */
export class HeatmapRecorder {
  readonly intervalMs: number;
  readonly maxColumns: number;
  readonly maxRows: number;
  readonly sinceMs: number;
  private readonly recorded: HeatmapColumn[] = [];
  /** open: the interval now running. */
  private open: Interval;
  /**
   * pending: the interval before it, recorded once `open` ends too: a
   * heartbeat's traffic happened over the time since the Region's previous
   * one, so the share of it that fell in the previous interval goes there.
   * Recording an interval as soon as it ended would put each report in the
   * interval it arrived in, and with heartbeats as frequent as intervals a
   * steady load would show one column with two reports and the next with
   * none.
   */
  private pending: Interval | undefined;
  /** queue: intervals due, oldest first, at most MAX_QUEUED; only the first is being recorded. */
  private readonly queue: Job[] = [];
  private scheduled = false;
  private readonly sliced: boolean;
  private readonly budget: SliceBudget;
  private readonly onSlice: ((units: number, ms: number) => void) | undefined;
  private idleWaiters: (() => void)[] = [];
  /** slices: slices run so far; maxSliceUnits: the most units of work one of them did (tests, bench:heatmap). */
  slices = 0;
  maxSliceUnits = 0;

  constructor(
    private readonly regions: HeatmapRegions,
    private readonly clock: () => number,
    opts: HeatmapOptions = {},
  ) {
    const sizes = heatmapSizes(opts);
    ({ intervalMs: this.intervalMs, maxColumns: this.maxColumns, maxRows: this.maxRows } = sizes);
    this.sliced = opts.recordInSlices ?? true;
    this.budget = new SliceBudget(sizes.sliceRegions, sizes.sliceMs);
    this.onSlice = opts.onSlice;
    this.sinceMs = this.clock();
    this.open = new Interval(this.sinceMs);
  }

  /**
   * recordFlow takes in one Region heartbeat: its rates times the time
   * they cover (since the Region's previous heartbeat here; for the first
   * one since this leader started, at most one interval) are added to the
   * open interval, and the share of that time before it to the pending one.
   * The Region is as now held in the routing table.
   */
  recordFlow(info: RegionInfo, previousHeartbeatMs: number | undefined, nowMs: number): void {
    this.advance(nowMs);
    const flow = info.flow;
    if (flow === undefined || flow.writeBytesPerSec + flow.readBytesPerSec + flow.writeKeysPerSec + flow.readKeysPerSec === 0) return;
    const coveredMs = Math.max(0, previousHeartbeatMs !== undefined ? nowMs - previousHeartbeatMs : Math.min(this.intervalMs, nowMs - this.sinceMs));
    const inOpenMs = Math.min(coveredMs, nowMs - this.open.startMs);
    const rates = [flow.writeBytesPerSec, flow.readBytesPerSec, flow.writeKeysPerSec, flow.readKeysPerSec];
    // What came before the pending interval (a Region that reports seldom) goes to it too, rather than nowhere.
    const earlier = this.pending ?? this.open;
    const r = info.region;
    this.open.add(r.id, r.startKey, r.endKey, rates, inOpenMs / 1000);
    earlier.add(r.id, r.startKey, r.endKey, rates, (coveredMs - inOpenMs) / 1000);
  }

  /** advance hands every interval that has ended one interval before nowMs to recording; intervals in which nothing was reported are empty. */
  advance(nowMs: number): void {
    while (nowMs >= this.open.startMs + this.intervalMs) {
      if (this.pending !== undefined) this.due(this.pending, this.pending.startMs, 1);
      this.pending = this.open;
      this.open = new Interval(this.open.startMs + this.intervalMs);
      const silent = Math.floor((nowMs - this.open.startMs) / this.intervalMs);
      if (silent >= 2 && this.pending.size === 0) this.skipSilence(silent);
    }
  }

  /**
   * skipSilence records a long silence in one step: the pending interval
   * and the silent ones after it but the last (which becomes the pending
   * one) are empty columns, drawn on the routing table as it is; only the
   * last maxColumns of them are kept anyway.
   */
  private skipSilence(silent: number): void {
    const startMs = this.pending!.startMs;
    const skipped = Math.max(0, silent - this.maxColumns);
    this.due(this.pending!, startMs + skipped * this.intervalMs, silent - skipped);
    this.pending = new Interval(startMs + silent * this.intervalMs);
    this.open = new Interval(this.pending.startMs + this.intervalMs);
  }

  /** columns returns the recorded columns, oldest first (after handing what is due to recording; a column being recorded is not in it yet). */
  columns(): readonly HeatmapColumn[] {
    this.advance(this.clock());
    return this.recorded;
  }

  summary(): HeatmapSummary {
    const cols = this.columns();
    return { intervalMs: this.intervalMs, maxColumns: this.maxColumns, maxRows: this.maxRows, sinceMs: this.sinceMs, columns: cols.length, lastColumnEndMs: cols.at(-1)?.endMs ?? null };
  }

  /** pendingRegions: slots held for the intervals not yet recorded, queued ones included (tests check they stay bounded). */
  get pendingRegions(): number {
    let n = this.open.size + (this.pending?.size ?? 0);
    for (const j of this.queue) n += j.interval.size;
    return n;
  }

  /** recording: intervals due and not recorded yet. */
  get recording(): number {
    return this.queue.length;
  }

  /** idle resolves once no interval is waiting to be recorded (tests, bench:heatmap). */
  idle(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** finishRecording records every queued interval now, in one go (tests that drive a virtual clock). */
  finishRecording(): void {
    while (this.queue.length > 0) this.finishFirst();
  }

  /** due hands an interval to recording: in one pass now, or queued for slices. */
  private due(interval: Interval, startMs: number, count: number): void {
    if (!this.sliced) {
      const rows = this.buildColumn(interval);
      this.pushColumns(startMs, count, rows);
      return;
    }
    this.queue.push({ interval, startMs, count });
    if (this.queue.length > MAX_QUEUED) this.finishFirst();
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.slice();
    });
  }

  /** slice runs one slice of the oldest queued interval. */
  private slice(): void {
    const job = this.queue[0];
    if (job === undefined) return;
    job.steps ??= columnSteps(this.regions, job.interval, this.maxRows, this.budget);
    const t = performance.now();
    this.budget.start();
    const r = job.steps.next();
    this.slices++;
    this.maxSliceUnits = Math.max(this.maxSliceUnits, this.budget.units);
    this.onSlice?.(this.budget.units, performance.now() - t);
    if (r.done) this.finished(r.value);
    if (this.queue.length > 0) this.schedule();
    else for (const w of this.idleWaiters.splice(0)) w();
  }

  /** finishFirst records the oldest queued interval to its end in one go (the rest of its slices, if it had begun). */
  private finishFirst(): void {
    const job = this.queue[0]!;
    job.steps ??= columnSteps(this.regions, job.interval, this.maxRows, this.budget);
    this.finished(runToEnd(job.steps));
    if (this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private finished(rows: { starts: string[]; ends: string[]; values: Float64Array }): void {
    const job = this.queue.shift()!;
    this.pushColumns(job.startMs, job.count, rows);
  }

  /** pushColumns adds count columns from startMs on with these rows (more than one only for a silence: all empty, sharing arrays). */
  private pushColumns(startMs: number, count: number, rows: { starts: string[]; ends: string[]; values: Float64Array }): void {
    for (let k = 0; k < count; k++) {
      const s = startMs + k * this.intervalMs;
      this.recorded.push({ startMs: s, endMs: s + this.intervalMs, ...rows });
      if (this.recorded.length > this.maxColumns) this.recorded.shift();
      assert(this.recorded.length <= this.maxColumns && rows.starts.length <= this.maxRows, `heatmap over its bounds: ${this.recorded.length} columns, ${rows.starts.length} rows`);
    }
  }

  /**
   * buildColumn (recordInSlices: false) lays one interval's traffic onto
   * the Regions as they are now, then merges them down to maxRows rows, in
   * one pass inside the heartbeat that finds the interval due: no
   * per-Region allocation (an ID index is built only when some Region's
   * range changed meanwhile), and keys are copied only for the rows it
   * keeps (bench:heatmap).
   */
  private buildColumn(interval: Interval): { starts: string[]; ends: string[]; values: Float64Array } {
    const n = this.regions.size;
    const values = new Float64Array(n * METRICS);
    const add = (i: number, s: number, share: number): void => {
      for (let m = 0; m < METRICS; m++) values[i * METRICS + m]! += interval.values[s * METRICS + m]! * share;
    };
    const moved: number[] = [...interval.retired];
    const current = interval.slotOf.size;
    let matched = 0;
    for (let i = 0; i < n && matched < current; i++) {
      const r = this.regions.at(i)!.region;
      const s = interval.slotOf.get(r.id);
      if (s === undefined) continue;
      matched++;
      if (interval.sameRange(s, r.startKey, r.endKey)) add(i, s, 1);
      else moved.push(s);
    }
    if (matched < current) for (const [id, s] of interval.slotOf) if (this.regions.getById(id) === undefined) moved.push(s);
    if (moved.length > 0) {
      // Ranges that split or merged since: spread evenly over the Regions that hold them now.
      const position = new Map<number, number>();
      for (let i = 0; i < n; i++) position.set(this.regions.at(i)!.region.id, i);
      for (const s of moved) {
        const over = this.regions.overlaps(interval.startKeys[s]!, interval.endKeys[s]!);
        for (const o of over) add(position.get(o.region.id)!, s, 1 / over.length);
      }
    }
    return mergeRows(n, (i) => this.regions.at(i)!.region.startKey, (i) => this.regions.at(i)!.region.endKey, values, this.maxRows);
  }
}
