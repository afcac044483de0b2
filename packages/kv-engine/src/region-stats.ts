import { compareKeys } from '@flotilla/proto';
import type { RegionStats } from './types';

interface Tracked {
  regionId: number;
  start: Uint8Array;
  end: Uint8Array;
}

/**
 * RegionStatsTracker keeps each Region's size and key count in memory,
 * maintained on every write by finding the Region that holds each key
 * (binary search over the live Regions' ranges). The engine tells it the
 * size of the value each put replaced or each delete removed, so an
 * overwrite changes the size by its bytes delta and adds no key (counting
 * it as growth once made a Region of 100k overwritten keys look 200 MB big
 * while it held 40 MB). The counts stay approximate only where the engine
 * gives up on them: they become unknown when a Region's range changes
 * (split, merge) or a range delete hits it, and the engine then recounts
 * that Region once; persisted stats may lag a crash.
 */
export class RegionStatsTracker {
  private ranges: Tracked[] = [];
  private readonly byId = new Map<number, Tracked>();
  private readonly stats = new Map<number, RegionStats>();
  readonly dirty = new Set<number>();
  private lastHit: Tracked | undefined;

  /** setRegion records a live Region's range; a changed range makes its stats unknown. */
  setRegion(regionId: number, start: Uint8Array, end: Uint8Array): void {
    const old = this.byId.get(regionId);
    if (old !== undefined && compareKeys(old.start, start) === 0 && compareKeys(old.end, end) === 0) return;
    this.byId.set(regionId, { regionId, start, end });
    if (old !== undefined) this.forget(regionId);
    this.rebuild();
  }

  /** dropRegion stops tracking a Region (tombstone). */
  dropRegion(regionId: number): void {
    if (!this.byId.delete(regionId)) return;
    this.forget(regionId);
    this.rebuild();
  }

  /** load seeds a Region's stats (persisted or freshly counted). */
  load(regionId: number, stats: RegionStats): void {
    this.stats.set(regionId, { bytes: Math.max(0, stats.bytes), keys: Math.max(0, stats.keys) });
  }

  /** get returns the stats, or undefined when unknown (recount needed). */
  get(regionId: number): RegionStats | undefined {
    const s = this.stats.get(regionId);
    return s === undefined ? undefined : { ...s };
  }

  range(regionId: number): { start: Uint8Array; end: Uint8Array } | undefined {
    return this.byId.get(regionId);
  }

  has(regionId: number): boolean {
    return this.byId.has(regionId);
  }

  /** onPut accounts a put of key with a valueBytes value; oldValueBytes is the size of the value it replaced, or -1 when the key was new. */
  onPut(key: Uint8Array, valueBytes: number, oldValueBytes: number): void {
    const s = this.statsFor(key);
    if (s === undefined) return;
    if (oldValueBytes < 0) {
      s.bytes += key.length + valueBytes;
      s.keys += 1;
    } else {
      s.bytes = Math.max(0, s.bytes + valueBytes - oldValueBytes);
    }
  }

  /** onGrow accounts bytes added under key (a transactional version), one more key when newKey. */
  onGrow(key: Uint8Array, bytes: number, newKey: boolean): void {
    const s = this.statsFor(key);
    if (s === undefined) return;
    s.bytes += bytes;
    if (newKey) s.keys += 1;
  }

  /** onDelete accounts a delete that removed a value of oldValueBytes, or nothing when it is -1 (the key was absent). */
  onDelete(key: Uint8Array, oldValueBytes: number): void {
    if (oldValueBytes < 0) return;
    const s = this.statsFor(key);
    if (s === undefined) return;
    s.keys = Math.max(0, s.keys - 1);
    s.bytes = Math.max(0, s.bytes - key.length - oldValueBytes);
  }

  /** onDeleteRange forgets the stats of every Region the range touches (zero for ones it covers whole). */
  onDeleteRange(start: Uint8Array, end: Uint8Array): void {
    for (const t of this.ranges) {
      const overlaps = (end.length === 0 || compareKeys(t.start, end) < 0) && (t.end.length === 0 || compareKeys(start, t.end) < 0);
      if (!overlaps) continue;
      const covers = compareKeys(start, t.start) <= 0 && (end.length === 0 || (t.end.length !== 0 && compareKeys(t.end, end) <= 0));
      if (covers) {
        this.stats.set(t.regionId, { bytes: 0, keys: 0 });
        this.dirty.add(t.regionId);
      } else this.forget(t.regionId);
    }
  }

  /** regionWithRange returns the live Region whose range is exactly [start, end), if any. */
  regionWithRange(start: Uint8Array, end: Uint8Array): number | undefined {
    for (const t of this.byId.values()) {
      if (compareKeys(t.start, start) === 0 && compareKeys(t.end, end) === 0) return t.regionId;
    }
    return undefined;
  }

  /** regionFor returns the live Region holding key, if any. */
  regionFor(key: Uint8Array): number | undefined {
    return this.find(key)?.regionId;
  }

  private statsFor(key: Uint8Array): RegionStats | undefined {
    const t = this.find(key);
    if (t === undefined) return undefined;
    const s = this.stats.get(t.regionId);
    if (s !== undefined) this.dirty.add(t.regionId);
    return s;
  }

  private forget(regionId: number): void {
    this.stats.delete(regionId);
    this.dirty.add(regionId);
  }

  private find(key: Uint8Array): Tracked | undefined {
    const h = this.lastHit;
    if (h !== undefined && compareKeys(h.start, key) <= 0 && (h.end.length === 0 || compareKeys(key, h.end) < 0)) return h;
    let lo = 0;
    let hi = this.ranges.length - 1;
    let found: Tracked | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const t = this.ranges[mid]!;
      if (compareKeys(t.start, key) <= 0) {
        found = t;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found === undefined) return undefined;
    if (found.end.length !== 0 && compareKeys(key, found.end) >= 0) return undefined;
    this.lastHit = found;
    return found;
  }

  private rebuild(): void {
    this.ranges = [...this.byId.values()].sort((a, b) => compareKeys(a.start, b.start));
    this.lastHit = undefined;
  }
}
