import { compareBytes } from '../region-tree';
import type { RegionInfo } from '../types';
import type { Interval } from './heatmap-interval';
import { METRICS, mergeRowsSteps, type HeatmapRows, type SliceBudget } from './heatmap-rows';

/** HeatmapRegions is what the recorder reads of the routing table (RegionTree fits). */
export interface HeatmapRegions {
  readonly size: number;
  at(i: number): RegionInfo | undefined;
  getById(id: number): RegionInfo | undefined;
  overlaps(startKey: Uint8Array, endKey: Uint8Array): RegionInfo[];
  scan(startKey: Uint8Array, endKey: Uint8Array, limit: number): RegionInfo[];
}

const EMPTY = new Uint8Array();
/** SCAN_BATCH: Regions asked of the routing table at a time (fewer when the slice has less left). */
const SCAN_BATCH = 256;

/**
 * columnSteps lays one interval's traffic onto the routing table and folds
 * it into rows (mergeRowsSteps), yielding whenever the budget is used up,
 * so a column at 100,000 Regions is many short slices between event-loop
 * turns instead of one 50-75 ms block on the placement leader (which also
 * serves TSO and heartbeats). Between two slices heartbeats may split,
 * merge or move Regions, so the column is built on its own copy of the
 * boundaries, taken as it walks:
 *
 * - The walk goes by key, not by index: a cursor holds the end key of the
 *   last Region taken, and each slice asks the tree for the Regions that
 *   overlap [cursor, end). A Region that now starts before the cursor (a
 *   merge across it since) is taken from the cursor on, so its row is
 *   clipped to [cursor, end). Each row thus starts where the one before it
 *   ended (or at a gap the routing table itself had at that moment), and
 *   the rows cut the key space in order without overlap: every part of it
 *   is drawn as the table held it when the walk got there. The interval is
 *   frozen (the recorder adds to newer ones), so its slots do not move.
 * - A slot is placed on its row when the Region's row is exactly the range
 *   it was reported for; every other slot (the range split, merged, was
 *   clipped, or the Region is gone) is spread evenly over the rows that now
 *   overlap its range, found by binary search in the copy, not in the live
 *   table.
 * - Merging and cutting keys read only the copy.
 *
 * The copy is key references (shared with the Regions, not copied bytes)
 * plus four doubles per Region, alive only while the column is recorded.
 */
export function* columnSteps(regions: HeatmapRegions, interval: Interval, maxRows: number, b: SliceBudget): Generator<void, HeatmapRows, void> {
  const starts: Uint8Array[] = [];
  const ends: Uint8Array[] = [];
  let values = new Float64Array((regions.size + 64) * METRICS);
  const placed = new Uint8Array(interval.size);
  let cursor: Uint8Array | undefined;
  let n = 0;
  walk: for (;;) {
    const limit = Math.min(SCAN_BATCH, b.left);
    const batch = regions.scan(cursor ?? EMPTY, EMPTY, limit);
    for (let j = 0; j < batch.length; j++) {
      const r = batch[j]!.region;
      // Only a batch's first Region can start before the cursor: the rest follow it in one consistent answer of the tree.
      const clipped = j === 0 && cursor !== undefined && compareBytes(r.startKey, cursor) < 0;
      if (n * METRICS === values.length) {
        const grown = new Float64Array(values.length * 2);
        grown.set(values);
        values = grown;
      }
      starts.push(clipped ? cursor! : r.startKey);
      ends.push(r.endKey);
      const s = interval.slotOf.get(r.id);
      if (s !== undefined && !clipped && interval.sameRange(s, r.startKey, r.endKey)) {
        for (let m = 0; m < METRICS; m++) values[n * METRICS + m]! += interval.values[s * METRICS + m]!;
        placed[s] = 1;
      }
      n++;
      cursor = r.endKey;
      if (r.endKey.length === 0) break walk;
      if (b.spent()) {
        yield;
        continue walk;
      }
    }
    if (batch.length < limit) break;
  }
  // Slots not placed: spread over the rows of the copy that overlap their range.
  for (let s = 0; s < interval.size; s++) {
    if (placed[s] === 1) continue;
    const [lo, hi] = overlapRows(starts, ends, n, interval.startKeys[s]!, interval.endKeys[s]!);
    for (let i = lo; i < hi; i++) {
      for (let m = 0; m < METRICS; m++) values[i * METRICS + m]! += interval.values[s * METRICS + m]! / (hi - lo);
      if (b.spent()) yield;
    }
    if (b.spent()) yield;
  }
  return yield* mergeRowsSteps(n, (i) => starts[i]!, (i) => ends[i]!, values, maxRows, b);
}

/** overlapRows: [lo, hi), the rows of a column's copy (in key order, no overlap) that overlap [startKey, endKey) (empty end = to the end); two binary searches. */
function overlapRows(starts: Uint8Array[], ends: Uint8Array[], n: number, startKey: Uint8Array, endKey: Uint8Array): [number, number] {
  // firstAfter(key): the first row starting after key (or at it, with orEqual false).
  const firstAfter = (key: Uint8Array, orEqual: boolean): number => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareBytes(starts[mid]!, key);
      if (c < 0 || (orEqual && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  // The last row starting at or before startKey, or the next one if that row ends at or before startKey.
  let first = firstAfter(startKey, true) - 1;
  if (first < 0 || (ends[first]!.length > 0 && compareBytes(ends[first]!, startKey) <= 0)) first++;
  const last = endKey.length === 0 ? n : Math.max(first, firstAfter(endKey, false));
  return [first, last];
}
