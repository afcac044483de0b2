import { assert } from '../errors';
import type { RegionInfo } from '../types';

// The key visualizer's recorder (TiDB Dashboard's key-vis): the placement
// leader turns the flow its Region leaders report into one column per
// interval, each the key space cut into rows by Region boundaries with the
// traffic of that interval. Memory is bounded by maxColumns × maxRows (plus
// two intervals' accumulation, one entry per Region that reported): old
// columns fall off, and when there are more Regions than maxRows adjacent
// ones are merged by key order. Kept in memory on the leader only: a new
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
}

/** HEATMAP_METRICS names the four values every row carries, in the order they are stored. */
export const HEATMAP_METRICS = ['write_bytes', 'read_bytes', 'write_keys', 'read_keys'] as const;
export type HeatmapMetric = (typeof HEATMAP_METRICS)[number];
const METRICS = HEATMAP_METRICS.length;

/**
 * HEATMAP_KEY_BYTES: row boundaries are kept cut to this many bytes, so a
 * column's memory does not depend on key length (keys may be KiBs). Cutting
 * keeps key order; Regions that become empty ranges by it are folded into
 * their neighbour.
 */
export const HEATMAP_KEY_BYTES = 64;

/** MAX_RETIRED bounds the accumulations kept for ranges a Region no longer has (it split or merged during the interval). */
const MAX_RETIRED = 4096;

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

/** HeatmapRegions is what the recorder reads of the routing table (RegionTree fits). */
export interface HeatmapRegions {
  readonly size: number;
  at(i: number): RegionInfo | undefined;
  getById(id: number): RegionInfo | undefined;
  overlaps(startKey: Uint8Array, endKey: Uint8Array): RegionInfo[];
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

interface Accumulation {
  id: number;
  startKey: Uint8Array;
  endKey: Uint8Array;
  values: Float64Array;
}

/** Interval is one interval's traffic: by Region ID with the range it was reported for, plus ranges Regions had before they split or merged. */
interface Interval {
  startMs: number;
  current: Map<number, Accumulation>;
  retired: Accumulation[];
}

const emptyInterval = (startMs: number): Interval => ({ startMs, current: new Map(), retired: [] });

/** heatmapSizes fills in the defaults and refuses sizes that are not positive integers (maxRows at least 2), so a bad option fails at start. */
export function heatmapSizes(opts: HeatmapOptions = {}): Required<HeatmapOptions> {
  const sizes = { intervalMs: opts.intervalMs ?? 10_000, maxColumns: opts.maxColumns ?? 360, maxRows: opts.maxRows ?? 256 };
  for (const [name, v, min] of [['intervalMs', sizes.intervalMs, 1], ['maxColumns', sizes.maxColumns, 1], ['maxRows', sizes.maxRows, 2]] as const) {
    if (!(Number.isSafeInteger(v) && v >= min)) throw new Error(`heatmap.${name}: ${v} is not an integer >= ${min}`);
  }
  return sizes;
}

/** heatmapKey is a key as the heatmap keeps it: cut to HEATMAP_KEY_BYTES, one char per byte. */
export function heatmapKey(k: Uint8Array): string {
  return Buffer.from(k.subarray(0, HEATMAP_KEY_BYTES)).toString('latin1');
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

/**
 * HeatmapRecorder keeps the key visualizer's columns. It runs no timer:
 * an interval is recorded by the first heartbeat or read after the
 * interval following it ends (see pending; intervals with no traffic and
 * no reader are filled in then, with the routing table as it is), so an
 * idle leader does no work and a test can drive it with a virtual clock.
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

  constructor(
    private readonly regions: HeatmapRegions,
    private readonly clock: () => number,
    opts: HeatmapOptions = {},
  ) {
    ({ intervalMs: this.intervalMs, maxColumns: this.maxColumns, maxRows: this.maxRows } = heatmapSizes(opts));
    this.sinceMs = this.clock();
    this.open = emptyInterval(this.sinceMs);
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
    accumulate(this.open, info.region.id, info.region.startKey, info.region.endKey, rates, inOpenMs / 1000);
    accumulate(earlier, info.region.id, info.region.startKey, info.region.endKey, rates, (coveredMs - inOpenMs) / 1000);
  }

  /** advance records every interval that has ended one interval before nowMs; intervals in which nothing was reported are empty. */
  advance(nowMs: number): void {
    while (nowMs >= this.open.startMs + this.intervalMs) {
      if (this.pending !== undefined) this.push(this.buildColumn(this.pending));
      this.pending = this.open;
      this.open = emptyInterval(this.open.startMs + this.intervalMs);
      const silent = Math.floor((nowMs - this.open.startMs) / this.intervalMs);
      if (silent >= 2 && this.pending.current.size === 0 && this.pending.retired.length === 0) this.skipSilence(silent);
    }
  }

  /**
   * skipSilence records a long silence in one step: the pending interval
   * and the silent ones after it but the last (which becomes the pending
   * one) are empty, drawn on the routing table as it is; only the last
   * maxColumns of them are kept anyway.
   */
  private skipSilence(silent: number): void {
    const first = this.buildColumn(this.pending!);
    const zero = new Float64Array(first.values.length);
    const startMs = this.pending!.startMs;
    for (let k = Math.max(0, silent - this.maxColumns); k < silent; k++) {
      const s = startMs + k * this.intervalMs;
      this.push({ startMs: s, endMs: s + this.intervalMs, starts: first.starts, ends: first.ends, values: zero });
    }
    this.pending = emptyInterval(startMs + silent * this.intervalMs);
    this.open = emptyInterval(this.pending.startMs + this.intervalMs);
  }

  /** columns returns the recorded columns, oldest first (after recording what is due). */
  columns(): readonly HeatmapColumn[] {
    this.advance(this.clock());
    return this.recorded;
  }

  summary(): HeatmapSummary {
    const cols = this.columns();
    return { intervalMs: this.intervalMs, maxColumns: this.maxColumns, maxRows: this.maxRows, sinceMs: this.sinceMs, columns: cols.length, lastColumnEndMs: cols.at(-1)?.endMs ?? null };
  }

  /** pendingRegions: accumulations held for the two intervals not yet recorded (tests check they stay bounded). */
  get pendingRegions(): number {
    const size = (i: Interval | undefined): number => (i === undefined ? 0 : i.current.size + i.retired.length);
    return size(this.open) + size(this.pending);
  }

  private push(c: HeatmapColumn): void {
    this.recorded.push(c);
    if (this.recorded.length > this.maxColumns) this.recorded.shift();
    assert(this.recorded.length <= this.maxColumns && c.starts.length <= this.maxRows, `heatmap over its bounds: ${this.recorded.length} columns, ${c.starts.length} rows`);
  }

  /** buildColumn lays one interval's traffic onto the Regions as they are now, then merges them down to maxRows rows. */
  private buildColumn(interval: Interval): HeatmapColumn {
    const n = this.regions.size;
    const position = new Map<number, number>();
    for (let i = 0; i < n; i++) position.set(this.regions.at(i)!.region.id, i);
    const values = new Float64Array(n * METRICS);
    const add = (i: number, v: Float64Array, share: number): void => {
      for (let m = 0; m < METRICS; m++) values[i * METRICS + m]! += v[m]! * share;
    };
    for (const acc of [...interval.current.values(), ...interval.retired]) {
      const now = this.regions.getById(acc.id);
      const at = position.get(acc.id);
      if (now !== undefined && at !== undefined && sameBytes(now.region.startKey, acc.startKey) && sameBytes(now.region.endKey, acc.endKey)) {
        add(at, acc.values, 1);
        continue;
      }
      // A range that split or merged since: spread evenly over the Regions that hold it now.
      const over = this.regions.overlaps(acc.startKey, acc.endKey);
      for (const o of over) add(position.get(o.region.id)!, acc.values, 1 / over.length);
    }
    const starts: string[] = [];
    const ends: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = this.regions.at(i)!.region;
      starts.push(heatmapKey(r.startKey));
      ends.push(heatmapKey(r.endKey));
    }
    return { startMs: interval.startMs, endMs: interval.startMs + this.intervalMs, ...mergeRows(starts, ends, values, this.maxRows) };
  }
}

/** accumulate adds rates × seconds to a Region's entry in one interval; what it carried for a range it no longer has is kept apart. */
function accumulate(into: Interval, id: number, startKey: Uint8Array, endKey: Uint8Array, rates: number[], seconds: number): void {
  if (seconds <= 0) return;
  let acc = into.current.get(id);
  if (acc !== undefined && !(sameBytes(acc.startKey, startKey) && sameBytes(acc.endKey, endKey))) {
    // The Region's range changed in this interval: what it carried before belongs to its old range.
    if (into.retired.length < MAX_RETIRED) {
      into.retired.push(acc);
      acc = undefined;
    } else {
      acc.startKey = startKey;
      acc.endKey = endKey;
    }
  }
  if (acc === undefined) into.current.set(id, (acc = { id, startKey, endKey, values: new Float64Array(METRICS) }));
  for (let m = 0; m < METRICS; m++) acc.values[m]! += rates[m]! * seconds;
}

/** HeatmapRows are a column's rows: [starts[i], ends[i]) with values[i * 4 + m]. */
export interface HeatmapRows {
  starts: string[];
  ends: string[];
  values: Float64Array;
}

/**
 * mergeRows folds Regions into at most maxRows rows, adjacent ones by key
 * order. First, a Region whose range is empty once its keys are cut to
 * HEATMAP_KEY_BYTES joins its neighbour. Then, when there are still too
 * many, rows are cut by weight: each Region weighs half for being one of n
 * and half for its share of the traffic (the mean, over the metrics with
 * any, of its fraction of that metric), and a row takes Regions while its
 * weight stays within 2 / (maxRows - 1). Two adjacent rows then always
 * weigh more than that bound together, so there are at most maxRows rows,
 * and a Region carrying much of the traffic keeps a row of its own, so a
 * hot spot stays sharp in a large cluster while cold key space is merged
 * (TiDB's key-vis has the same aim). Values of merged Regions add up.
 */
export function mergeRows(starts: string[], ends: string[], values: Float64Array, maxRows: number): HeatmapRows {
  const cut = foldEmpty(starts, ends, values);
  const n = cut.starts.length;
  if (n <= maxRows) return cut;
  const totals = new Float64Array(METRICS);
  for (let i = 0; i < n; i++) for (let m = 0; m < METRICS; m++) totals[m]! += cut.values[i * METRICS + m]!;
  const active = [...totals.keys()].filter((m) => totals[m]! > 0);
  const weight = (i: number): number => {
    if (active.length === 0) return 1 / n;
    let share = 0;
    for (const m of active) share += cut.values[i * METRICS + m]! / totals[m]!;
    return 0.5 / n + (0.5 * share) / active.length;
  };
  const cap = 2 / (maxRows - 1);
  const groups: number[] = []; // the first Region of each row
  let rowWeight = Number.POSITIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    const w = weight(i);
    if (rowWeight + w > cap) {
      groups.push(i);
      rowWeight = 0;
    }
    rowWeight += w;
  }
  // Rounding could leave a row or two over the bound: then rows are evened out by count.
  if (groups.length > maxRows) {
    groups.length = 0;
    const per = Math.ceil(n / maxRows);
    for (let i = 0; i < n; i += per) groups.push(i);
  }
  const out: HeatmapRows = { starts: [], ends: [], values: new Float64Array(groups.length * METRICS) };
  groups.forEach((first, g) => {
    const end = g + 1 < groups.length ? groups[g + 1]! : n;
    out.starts.push(cut.starts[first]!);
    out.ends.push(cut.ends[end - 1]!);
    for (let i = first; i < end; i++) for (let m = 0; m < METRICS; m++) out.values[g * METRICS + m]! += cut.values[i * METRICS + m]!;
  });
  assert(out.starts.length <= maxRows, `heatmap column has ${out.starts.length} rows, more than ${maxRows}`);
  return out;
}

/** foldEmpty merges every row whose range is empty (its cut keys are equal) into the row before it, or the one after for the first. */
function foldEmpty(starts: string[], ends: string[], values: Float64Array): HeatmapRows {
  const out: HeatmapRows = { starts: [], ends: [], values: new Float64Array(values.length) };
  let carry: Float64Array | undefined;
  for (let i = 0; i < starts.length; i++) {
    const row = values.subarray(i * METRICS, (i + 1) * METRICS);
    const empty = ends[i] !== '' && starts[i]! >= ends[i]!;
    const last = out.starts.length - 1;
    if (empty && last >= 0) {
      for (let m = 0; m < METRICS; m++) out.values[last * METRICS + m]! += row[m]!;
      continue;
    }
    if (empty && i + 1 < starts.length) {
      carry ??= new Float64Array(METRICS);
      for (let m = 0; m < METRICS; m++) carry[m]! += row[m]!;
      continue;
    }
    const at = out.starts.length;
    out.starts.push(starts[i]!);
    out.ends.push(ends[i]!);
    for (let m = 0; m < METRICS; m++) out.values[at * METRICS + m] = row[m]! + (carry?.[m] ?? 0);
    carry = undefined;
  }
  // A copy, not a view: the column must not hold the whole Region-sized buffer.
  return { starts: out.starts, ends: out.ends, values: out.values.slice(0, out.starts.length * METRICS) };
}
