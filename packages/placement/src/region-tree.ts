import type { Region } from '@flotilla/proto';
import { isEpochStale } from '@flotilla/proto';
import type { RegionInfo } from './types';
import { assert } from './errors';

/** compareBytes orders keys bytewise; Buffer.compare is a native memcmp, faster than a JS loop on the lookup path. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** endAfter: is the (possibly unbounded, empty = +inf) end key strictly after key? */
function endAfter(endKey: Uint8Array, key: Uint8Array): boolean {
  return endKey.length === 0 || compareBytes(endKey, key) > 0;
}

/** sameMeta: same range, epoch and peers (so only statistics can differ). */
export function sameMeta(a: Region, b: Region): boolean {
  if (a.epoch.version !== b.epoch.version || a.epoch.confVer !== b.epoch.confVer) return false;
  if (compareBytes(a.startKey, b.startKey) !== 0 || compareBytes(a.endKey, b.endKey) !== 0) return false;
  if (a.peers.length !== b.peers.length) return false;
  for (let i = 0; i < a.peers.length; i++) {
    const p = a.peers[i]!;
    const q = b.peers[i]!;
    if (p.id !== q.id || p.storeId !== q.storeId || p.role !== q.role) return false;
  }
  return true;
}

/** UpdateResult says what a RegionTree.update did. */
export type UpdateResult =
  /** stale: older than the known Region with the same ID, or than a Region it overlaps; nothing changed. */
  | { kind: 'stale'; reason: string }
  /** stats: same meta as known; the RegionInfo object was replaced in place. */
  | { kind: 'stats'; previous: RegionInfo }
  /** meta: the Region was inserted; `removed` lists every Region it replaced (its own previous version included). */
  | { kind: 'meta'; removed: RegionInfo[] };

/**
 * RegionTree is the routing table: every known Region ordered by start key
 * (a sorted array searched by binary search, plus an ID index).
 *
 * Invariant: the array is sorted by startKey and no two Regions overlap.
 * Gaps are possible only transiently (a split's new Region reported before
 * the shrunken original), never created by a stale report.
 *
 * Update rule (PD's): a Region whose epoch is older (lower version or lower
 * confVer) than the known Region with the same ID is ignored; otherwise it
 * replaces every Region it overlaps, unless one of them has a higher version
 * (then the report is stale and ignored).
 */
export class RegionTree {
  private readonly sorted: RegionInfo[] = [];
  private readonly byId = new Map<number, RegionInfo>();

  get size(): number {
    return this.sorted.length;
  }

  getById(id: number): RegionInfo | undefined {
    return this.byId.get(id);
  }

  /** at returns the i-th Region in key order (for patrol loops). */
  at(i: number): RegionInfo | undefined {
    return this.sorted[i];
  }

  /** upperBound: index of the first Region whose startKey > key. */
  private upperBound(key: Uint8Array): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes(this.sorted[mid]!.region.startKey, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** search returns the Region containing key, if any. */
  search(key: Uint8Array): RegionInfo | undefined {
    const i = this.upperBound(key) - 1;
    if (i < 0) return undefined;
    const info = this.sorted[i]!;
    return endAfter(info.region.endKey, key) ? info : undefined;
  }

  /** firstOverlapIndex: index of the first Region whose range ends after startKey. */
  private firstOverlapIndex(startKey: Uint8Array): number {
    const i = this.upperBound(startKey) - 1;
    if (i >= 0 && endAfter(this.sorted[i]!.region.endKey, startKey)) return i;
    return i + 1;
  }

  /** overlapRange returns [lo, hi): the indexes of Regions overlapping [startKey, endKey). */
  private overlapRange(startKey: Uint8Array, endKey: Uint8Array): [number, number] {
    const lo = this.firstOverlapIndex(startKey);
    let hi = lo;
    while (hi < this.sorted.length && (endKey.length === 0 || compareBytes(this.sorted[hi]!.region.startKey, endKey) < 0)) hi++;
    return [lo, hi];
  }

  /** overlaps lists the Regions overlapping [startKey, endKey) in key order. */
  overlaps(startKey: Uint8Array, endKey: Uint8Array): RegionInfo[] {
    const [lo, hi] = this.overlapRange(startKey, endKey);
    return this.sorted.slice(lo, hi);
  }

  /** scan returns up to limit Regions overlapping [startKey, endKey) (empty endKey = to the end), in key order. */
  scan(startKey: Uint8Array, endKey: Uint8Array, limit: number): RegionInfo[] {
    const out: RegionInfo[] = [];
    for (let i = this.firstOverlapIndex(startKey); i < this.sorted.length && out.length < limit; i++) {
      const info = this.sorted[i]!;
      if (endKey.length > 0 && compareBytes(info.region.startKey, endKey) >= 0) break;
      out.push(info);
    }
    return out;
  }

  /** checkStale returns why `region` is stale against the tree, or null if it may be applied. */
  checkStale(region: Region): string | null {
    const origin = this.byId.get(region.id);
    if (origin && isEpochStale(region.epoch, origin.region.epoch)) {
      return `region ${region.id} epoch (version ${region.epoch.version}, confVer ${region.epoch.confVer}) is older than known (version ${origin.region.epoch.version}, confVer ${origin.region.epoch.confVer})`;
    }
    if (origin && sameMeta(origin.region, region)) return null;
    const [lo, hi] = this.overlapRange(region.startKey, region.endKey);
    for (let i = lo; i < hi; i++) {
      const o = this.sorted[i]!.region;
      if (o.id !== region.id && region.epoch.version < o.epoch.version) {
        return `region ${region.id} (version ${region.epoch.version}) overlaps newer region ${o.id} (version ${o.epoch.version})`;
      }
    }
    return null;
  }

  /** update applies one Region report following the rule above. */
  update(info: RegionInfo): UpdateResult {
    const region = info.region;
    const origin = this.byId.get(region.id);
    if (origin && sameMeta(origin.region, region)) {
      // Fast path: statistics only. Same start key, so the same array slot.
      const i = this.upperBound(region.startKey) - 1;
      assert(this.sorted[i] === origin, `region ${region.id} not at its slot`);
      this.sorted[i] = info;
      this.byId.set(region.id, info);
      return { kind: 'stats', previous: origin };
    }
    const staleReason = this.checkStale(region);
    if (staleReason !== null) return { kind: 'stale', reason: staleReason };
    const removed: RegionInfo[] = [];
    if (origin) {
      const i = this.upperBound(origin.region.startKey) - 1;
      assert(this.sorted[i] === origin, `region ${region.id} not at its slot`);
      this.sorted.splice(i, 1);
      this.byId.delete(region.id);
      removed.push(origin);
    }
    const [lo, hi] = this.overlapRange(region.startKey, region.endKey);
    for (let i = lo; i < hi; i++) {
      const o = this.sorted[i]!;
      this.byId.delete(o.region.id);
      removed.push(o);
    }
    this.sorted.splice(lo, hi - lo, info);
    this.byId.set(region.id, info);
    return { kind: 'meta', removed };
  }

  /**
   * load fills an empty tree from persisted Regions in O(n log n). Regions
   * that overlap (only possible if the persisted batch was cut by a crash
   * between related writes) are resolved by the normal update rule.
   */
  load(infos: RegionInfo[]): void {
    assert(this.sorted.length === 0, 'load into a non-empty tree');
    const ordered = infos.slice().sort((a, b) => compareBytes(a.region.startKey, b.region.startKey));
    for (const info of ordered) {
      const last = this.sorted[this.sorted.length - 1];
      const fits = last === undefined || (last.region.endKey.length > 0 && compareBytes(last.region.endKey, info.region.startKey) <= 0);
      if (fits && !this.byId.has(info.region.id)) {
        this.sorted.push(info);
        this.byId.set(info.region.id, info);
      } else {
        this.update(info);
      }
    }
  }

  /** remove drops a Region by ID (returns it, if it was there). */
  remove(id: number): RegionInfo | undefined {
    const info = this.byId.get(id);
    if (!info) return undefined;
    const i = this.upperBound(info.region.startKey) - 1;
    assert(this.sorted[i] === info, `region ${id} not at its slot`);
    this.sorted.splice(i, 1);
    this.byId.delete(id);
    return info;
  }

  /** all returns every Region in key order (a copy). */
  all(): RegionInfo[] {
    return this.sorted.slice();
  }

  /** checkInvariants asserts sortedness, no overlaps and index consistency (tests, startup). */
  checkInvariants(): void {
    assert(this.byId.size === this.sorted.length, `index has ${this.byId.size} regions, array ${this.sorted.length}`);
    for (let i = 0; i < this.sorted.length; i++) {
      const r = this.sorted[i]!.region;
      assert(this.byId.get(r.id) === this.sorted[i], `region ${r.id} index mismatch`);
      if (i > 0) {
        const p = this.sorted[i - 1]!.region;
        assert(p.endKey.length > 0 && compareBytes(p.endKey, r.startKey) <= 0, `regions ${p.id} and ${r.id} overlap`);
      }
    }
  }
}
