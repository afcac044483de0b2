import { METRICS } from './heatmap-rows';

// One interval's traffic for the key visualizer (heatmap.ts), before it is
// recorded as a column: one slot per Region that reported (and per range a
// Region had before it split or merged during the interval), in typed
// arrays indexed by a dense slot number rather than one object per Region.

/** MAX_RETIRED bounds the slots kept for ranges a Region no longer has (it split or merged during the interval). */
const MAX_RETIRED = 4096;
/** FIRST_SLOTS: slots an interval starts with (grown by doubling). */
const FIRST_SLOTS = 64;

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

/**
 * Interval is one interval's traffic: slot s holds the amounts
 * values[s * 4 + m] (HEATMAP_METRICS order) that Region ids[s] reported
 * for [startKeys[s], endKeys[s]). slotOf maps a Region ID to its current
 * slot; a slot it no longer points to is retired (the Region's range
 * changed in the interval, so what it carried before belongs to the old
 * range). About 90 bytes per slot (the map entry, two key references, the
 * ID and four doubles), where an object with a plain array per Region took
 * about 210 (bench:heatmap heap_mb). Once an interval is handed to
 * recording nothing is added to it.
 */
export class Interval {
  /** size: slots used. */
  size = 0;
  ids = new Float64Array(FIRST_SLOTS);
  values = new Float64Array(FIRST_SLOTS * METRICS);
  readonly startKeys: Uint8Array[] = [];
  readonly endKeys: Uint8Array[] = [];
  readonly slotOf = new Map<number, number>();
  /** retired: the slots slotOf no longer points to. */
  readonly retired: number[] = [];

  constructor(readonly startMs: number) {}

  /** sameRange: slot s was reported for exactly [startKey, endKey) (usually the very same arrays). */
  sameRange(s: number, startKey: Uint8Array, endKey: Uint8Array): boolean {
    const a = this.startKeys[s]!;
    const b = this.endKeys[s]!;
    return (a === startKey || sameBytes(a, startKey)) && (b === endKey || sameBytes(b, endKey));
  }

  /** add puts rates × seconds into Region id's slot for [startKey, endKey); what it carried for a range it no longer has is kept apart. */
  add(id: number, startKey: Uint8Array, endKey: Uint8Array, rates: readonly number[], seconds: number): void {
    if (seconds <= 0) return;
    let s = this.slotOf.get(id);
    if (s !== undefined && !this.sameRange(s, startKey, endKey)) {
      if (this.retired.length < MAX_RETIRED) {
        this.retired.push(s);
        s = undefined;
      } else {
        this.startKeys[s] = startKey;
        this.endKeys[s] = endKey;
      }
    }
    if (s === undefined) {
      s = this.size++;
      if (s === this.ids.length) this.grow();
      this.ids[s] = id;
      this.startKeys.push(startKey);
      this.endKeys.push(endKey);
      this.slotOf.set(id, s);
    }
    for (let m = 0; m < METRICS; m++) this.values[s * METRICS + m]! += rates[m]! * seconds;
  }

  private grow(): void {
    const ids = new Float64Array(this.ids.length * 2);
    ids.set(this.ids);
    this.ids = ids;
    const values = new Float64Array(this.values.length * 2);
    values.set(this.values);
    this.values = values;
  }
}
