import { performance } from 'node:perf_hooks';
import { assert } from '../errors';

// The key visualizer's rows (see heatmap.ts): how one column's Regions are
// folded into at most maxRows rows, written as a generator that yields
// whenever its SliceBudget is used up, so that a column can be recorded in
// slices between event-loop turns (heatmap-slices.ts) or in one go
// (mergeRows, the budget never used up).

/** METRICS: the four values every row carries (HEATMAP_METRICS order). */
export const METRICS = 4;

/**
 * HEATMAP_KEY_BYTES: row boundaries are kept cut to this many bytes, so a
 * column's memory does not depend on key length (keys may be KiBs). Cutting
 * keeps key order; Regions that become empty ranges by it are folded into
 * their neighbour.
 */
export const HEATMAP_KEY_BYTES = 64;

/** heatmapKey is a key as the heatmap keeps it: cut to HEATMAP_KEY_BYTES, one char per byte. */
export function heatmapKey(k: Uint8Array): string {
  return Buffer.from(k.subarray(0, HEATMAP_KEY_BYTES)).toString('latin1');
}

/**
 * SliceBudget counts one slice's units of work (a unit is one Region or
 * row visited: a few map look-ups and additions) and says when the slice
 * is used up: after maxUnits units, or maxMs of wall time (the clock is
 * read every 64 units), whichever comes first. `units` is what the last
 * slice did (tests bound it; bench:heatmap reports the slices' wall time).
 */
export class SliceBudget {
  units = 0;
  private startedAt = 0;

  constructor(
    readonly maxUnits: number,
    readonly maxMs: number,
  ) {}

  /** start begins a slice. */
  start(): void {
    this.units = 0;
    if (Number.isFinite(this.maxMs)) this.startedAt = performance.now();
  }

  /** spent counts one unit of work and says whether the slice is used up (then the caller yields at once). */
  spent(): boolean {
    const u = ++this.units;
    if (u >= this.maxUnits) return true;
    return (u & 63) === 0 && Number.isFinite(this.maxMs) && performance.now() - this.startedAt >= this.maxMs;
  }

  /** left: units the slice may still do (how many Regions a slice asks the routing table for at most). */
  get left(): number {
    return Math.max(1, this.maxUnits - this.units);
  }
}

/** UNBOUNDED: a budget that is never used up (a column recorded in one go). */
export const UNBOUNDED = new SliceBudget(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);

/** runToEnd runs a sliced computation to its end in one go (its yields ignored). */
export function runToEnd<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
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
 * for the rows returned. In one go; mergeRowsSteps is the same in slices.
 */
export function mergeRows(n: number, startAt: (i: number) => Uint8Array, endAt: (i: number) => Uint8Array, values: Float64Array, maxRows: number): HeatmapRows {
  return runToEnd(mergeRowsSteps(n, startAt, endAt, values, maxRows, UNBOUNDED));
}

/** mergeRowsSteps is mergeRows yielding whenever the budget is used up; startAt, endAt and values must not change meanwhile. */
export function* mergeRowsSteps(
  n: number,
  startAt: (i: number) => Uint8Array,
  endAt: (i: number) => Uint8Array,
  values: Float64Array,
  maxRows: number,
  b: SliceBudget,
): Generator<void, HeatmapRows, void> {
  // units: the first Region of each row that the cut leaves non-empty.
  const units: number[] = [];
  let hasContent = false;
  for (let i = 0; i < n; i++) {
    const empty = emptyOnceCut(startAt(i), endAt(i));
    if (i === 0 || (!empty && hasContent)) {
      units.push(i);
      hasContent = !empty;
    } else if (!empty) hasContent = true;
    if (b.spent()) yield;
  }
  const u = units.length;
  const unitEnd = (k: number): number => (k + 1 < u ? units[k + 1]! : n);
  const unitValues = new Float64Array(u * METRICS);
  for (let k = 0; k < u; k++) {
    for (let i = units[k]!; i < unitEnd(k); i++) {
      for (let m = 0; m < METRICS; m++) unitValues[k * METRICS + m]! += values[i * METRICS + m]!;
      if (b.spent()) yield;
    }
  }
  let groups: number[] = units.map((_, k) => k); // the first unit of each row
  if (u > maxRows) {
    const totals = new Float64Array(METRICS);
    for (let k = 0; k < u; k++) {
      for (let m = 0; m < METRICS; m++) totals[m]! += unitValues[k * METRICS + m]!;
      if (b.spent()) yield;
    }
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
      if (b.spent()) yield;
    }
    // Rounding could leave a row or two over the bound: then rows are evened out by count.
    if (groups.length > maxRows) {
      groups = [];
      const per = Math.ceil(u / maxRows);
      for (let k = 0; k < u; k += per) groups.push(k);
    }
  }
  const out: HeatmapRows = { starts: [], ends: [], values: new Float64Array(groups.length * METRICS) };
  for (let g = 0; g < groups.length; g++) {
    const first = groups[g]!;
    const next = g + 1 < groups.length ? groups[g + 1]! : u;
    out.starts.push(heatmapKey(startAt(units[first]!)));
    out.ends.push(heatmapKey(endAt(unitEnd(next - 1) - 1)));
    for (let k = first; k < next; k++) {
      for (let m = 0; m < METRICS; m++) out.values[g * METRICS + m]! += unitValues[k * METRICS + m]!;
      if (b.spent()) yield;
    }
  }
  assert(out.starts.length <= maxRows, `heatmap column has ${out.starts.length} rows, more than ${maxRows}`);
  return out;
}
