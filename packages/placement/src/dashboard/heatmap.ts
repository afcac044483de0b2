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
  /** values: the four amounts (HEATMAP_METRICS order); a plain array, smaller than a typed one for one entry per reporting Region. */
  values: number[];
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

  /**
   * buildColumn lays one interval's traffic onto the Regions as they are
   * now, then merges them down to maxRows rows. It runs inside the
   * heartbeat that finds the interval due, so it is one pass over the
   * routing table with no per-Region allocation (an ID index is built only
   * when some Region's range changed meanwhile), and keys are copied only
   * for the rows it keeps (bench:heatmap).
   */
  private buildColumn(interval: Interval): HeatmapColumn {
    const n = this.regions.size;
    const values = new Float64Array(n * METRICS);
    const add = (i: number, v: readonly number[], share: number): void => {
      for (let m = 0; m < METRICS; m++) values[i * METRICS + m]! += v[m]! * share;
    };
    const moved: Accumulation[] = [...interval.retired];
    let matched = 0;
    for (let i = 0; i < n && matched < interval.current.size; i++) {
      const r = this.regions.at(i)!.region;
      const acc = interval.current.get(r.id);
      if (acc === undefined) continue;
      matched++;
      if (sameRange(acc, r.startKey, r.endKey)) add(i, acc.values, 1);
      else moved.push(acc);
    }
    if (matched < interval.current.size) for (const acc of interval.current.values()) if (this.regions.getById(acc.id) === undefined) moved.push(acc);
    if (moved.length > 0) {
      // Ranges that split or merged since: spread evenly over the Regions that hold them now.
      const position = new Map<number, number>();
      for (let i = 0; i < n; i++) position.set(this.regions.at(i)!.region.id, i);
      for (const acc of moved) {
        const over = this.regions.overlaps(acc.startKey, acc.endKey);
        for (const o of over) add(position.get(o.region.id)!, acc.values, 1 / over.length);
      }
    }
    const rows = mergeRows(n, (i) => this.regions.at(i)!.region.startKey, (i) => this.regions.at(i)!.region.endKey, values, this.maxRows);
    return { startMs: interval.startMs, endMs: interval.startMs + this.intervalMs, ...rows };
  }
}

/** sameRange: the accumulation was reported for exactly [startKey, endKey) (usually the very same arrays). */
function sameRange(acc: Accumulation, startKey: Uint8Array, endKey: Uint8Array): boolean {
  return (acc.startKey === startKey || sameBytes(acc.startKey, startKey)) && (acc.endKey === endKey || sameBytes(acc.endKey, endKey));
}

/** accumulate adds rates × seconds to a Region's entry in one interval; what it carried for a range it no longer has is kept apart. */
function accumulate(into: Interval, id: number, startKey: Uint8Array, endKey: Uint8Array, rates: number[], seconds: number): void {
  if (seconds <= 0) return;
  let acc = into.current.get(id);
  if (acc !== undefined && !sameRange(acc, startKey, endKey)) {
    // The Region's range changed in this interval: what it carried before belongs to its old range.
    if (into.retired.length < MAX_RETIRED) {
      into.retired.push(acc);
      acc = undefined;
    } else {
      acc.startKey = startKey;
      acc.endKey = endKey;
    }
  }
  if (acc === undefined) into.current.set(id, (acc = { id, startKey, endKey, values: [0, 0, 0, 0] }));
  for (let m = 0; m < METRICS; m++) acc.values[m]! += rates[m]! * seconds;
}

/** HeatmapRows are a column's rows: [starts[i], ends[i]) with values[i * 4 + m]. */
export interface HeatmapRows {
  starts: string[];
  ends: string[];
  values: Float64Array;
}

/** emptyOnceCut: [startKey, endKey) becomes an empty range when both keys are cut to HEATMAP_KEY_BYTES (they share those bytes). */
function emptyOnceCut(startKey: Uint8Array, endKey: Uint8Array): boolean {
  const k = HEATMAP_KEY_BYTES;
  return endKey.length >= k && startKey.length >= k && Buffer.compare(startKey.subarray(0, k), endKey.subarray(0, k)) === 0;
}

/**
 * mergeRows folds n Regions (in key order: Region i is
 * [startAt(i), endAt(i)) with values[i * 4 + m]) into at most maxRows rows
 * of adjacent ones. First, a Region whose range is empty once its keys are
 * cut to HEATMAP_KEY_BYTES joins the row before it (or the next, at the
 * start). Then, when there are still too many, rows are cut by weight:
 * each weighs half for being one of the n and half for its share of the
 * traffic (the mean, over the metrics with any, of its fraction of that
 * metric), and a row takes them while its weight stays within
 * 2 / (maxRows - 1). Two adjacent rows then always weigh more than that
 * bound together, so there are at most maxRows rows, and a Region carrying
 * much of the traffic keeps a row of its own, so a hot spot stays sharp in
 * a large cluster while cold key space is merged (TiDB's key-vis has the
 * same aim). Values of merged Regions add up; keys are cut and copied only
 * for the rows returned.
 */
export function mergeRows(n: number, startAt: (i: number) => Uint8Array, endAt: (i: number) => Uint8Array, values: Float64Array, maxRows: number): HeatmapRows {
  // units: the first Region of each row that the cut leaves non-empty.
  const units: number[] = [];
  let hasContent = false;
  for (let i = 0; i < n; i++) {
    const empty = emptyOnceCut(startAt(i), endAt(i));
    if (i === 0 || (!empty && hasContent)) {
      units.push(i);
      hasContent = !empty;
    } else if (!empty) hasContent = true;
  }
  const u = units.length;
  const unitEnd = (k: number): number => (k + 1 < u ? units[k + 1]! : n);
  const unitValues = new Float64Array(u * METRICS);
  for (let k = 0; k < u; k++) for (let i = units[k]!; i < unitEnd(k); i++) for (let m = 0; m < METRICS; m++) unitValues[k * METRICS + m]! += values[i * METRICS + m]!;
  let groups: number[] = units.map((_, k) => k); // the first unit of each row
  if (u > maxRows) {
    const totals = new Float64Array(METRICS);
    for (let k = 0; k < u; k++) for (let m = 0; m < METRICS; m++) totals[m]! += unitValues[k * METRICS + m]!;
    const active = [...totals.keys()].filter((m) => totals[m]! > 0);
    const weight = (k: number): number => {
      if (active.length === 0) return 1 / u;
      let share = 0;
      for (const m of active) share += unitValues[k * METRICS + m]! / totals[m]!;
      return 0.5 / u + (0.5 * share) / active.length;
    };
    const cap = 2 / (maxRows - 1);
    groups = [];
    let rowWeight = Number.POSITIVE_INFINITY;
    for (let k = 0; k < u; k++) {
      const w = weight(k);
      if (rowWeight + w > cap) {
        groups.push(k);
        rowWeight = 0;
      }
      rowWeight += w;
    }
    // Rounding could leave a row or two over the bound: then rows are evened out by count.
    if (groups.length > maxRows) {
      groups = [];
      const per = Math.ceil(u / maxRows);
      for (let k = 0; k < u; k += per) groups.push(k);
    }
  }
  const out: HeatmapRows = { starts: [], ends: [], values: new Float64Array(groups.length * METRICS) };
  groups.forEach((first, g) => {
    const next = g + 1 < groups.length ? groups[g + 1]! : u;
    out.starts.push(heatmapKey(startAt(units[first]!)));
    out.ends.push(heatmapKey(endAt(unitEnd(next - 1) - 1)));
    for (let k = first; k < next; k++) for (let m = 0; m < METRICS; m++) out.values[g * METRICS + m]! += unitValues[k * METRICS + m]!;
  });
  assert(out.starts.length <= maxRows, `heatmap column has ${out.starts.length} rows, more than ${maxRows}`);
  return out;
}
