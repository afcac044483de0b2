import type { Region, RegionEpoch } from '@flotilla/proto';
import { isEpochStale } from '@flotilla/proto';
import type { RegionInfo } from './types';
import { assert } from './errors';

/**
 * compareBytes orders keys bytewise (memcmp order, shorter prefix first).
 * A JS loop: for the short keys of a routing table it beats Buffer.compare,
 * whose native-call overhead dominates.
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  if (a === b) return 0;
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
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

/** Slot is one position of the tree; start caches info.region.startKey so a search touches fewer objects. */
interface Slot {
  start: Uint8Array;
  info: RegionInfo;
}

/** UpdateResult says what a RegionTree.update did. */
export type UpdateResult =
  /** stale: older than the known Region with the same ID, or than a Region it overlaps; nothing changed. */
  | { kind: 'stale'; reason: string }
  /**
   * stats: same range, epoch and peers as known; the tree did not change.
   * The caller copies the report's statistics into `current` in place, so
   * a heartbeat retains no new objects (old-generation churn was the
   * largest cost of the hot path).
   */
  | { kind: 'stats'; current: RegionInfo }
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
 * (then the report is stale and ignored). Unlike PD, the last epoch of a
 * Region replaced that way is remembered, so its delayed reports stay stale.
 */
export class RegionTree {
  /** sorted holds one Slot per Region in start-key order; a stats-only update swaps slot.info without searching. */
  private readonly sorted: Slot[] = [];
  private readonly byId = new Map<number, Slot>();
  /**
   * removedEpochs remembers the last epoch of Regions that left the tree
   * (replaced by an overlapping newer Region), so that a delayed report of
   * such a Region cannot bring an older epoch back into a gap. Bounded: the
   * oldest entries are forgotten first. Not persisted.
   */
  private readonly removedEpochs = new Map<number, RegionEpoch>();

  constructor(private readonly maxRemovedEpochs = 100_000) {}

  private rememberRemoved(region: Region): void {
    this.removedEpochs.delete(region.id);
    this.removedEpochs.set(region.id, region.epoch);
    if (this.removedEpochs.size > this.maxRemovedEpochs) {
      const oldest = this.removedEpochs.keys().next();
      if (!oldest.done) this.removedEpochs.delete(oldest.value);
    }
  }

  get size(): number {
    return this.sorted.length;
  }

  getById(id: number): RegionInfo | undefined {
    return this.byId.get(id)?.info;
  }

  /** at returns the i-th Region in key order (for patrol loops). */
  at(i: number): RegionInfo | undefined {
    return this.sorted[i]?.info;
  }

  /**
   * neighbours returns the Regions directly left and right of Region `id`
   * in key order, each only when it touches the Region (no gap between
   * them): the candidates a merge may pair it with.
   */
  neighbours(id: number): { prev?: RegionInfo; next?: RegionInfo } {
    const slot = this.byId.get(id);
    if (!slot) return {};
    const i = this.indexOf(slot);
    const region = slot.info.region;
    const out: { prev?: RegionInfo; next?: RegionInfo } = {};
    const prev = this.sorted[i - 1]?.info;
    if (prev && prev.region.endKey.length > 0 && compareBytes(prev.region.endKey, region.startKey) === 0) out.prev = prev;
    const next = this.sorted[i + 1]?.info;
    if (next && region.endKey.length > 0 && compareBytes(region.endKey, next.region.startKey) === 0) out.next = next;
    return out;
  }

  /** upperBound: index of the first Region whose startKey > key. */
  private upperBound(key: Uint8Array): number {
    const sorted = this.sorted;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes(sorted[mid]!.start, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** indexOf finds the array index of a slot (by binary search on its start key). */
  private indexOf(slot: Slot): number {
    const i = this.upperBound(slot.start) - 1;
    assert(this.sorted[i] === slot, `region ${slot.info.region.id} not at its slot`);
    return i;
  }

  /** search returns the Region containing key, if any. */
  search(key: Uint8Array): RegionInfo | undefined {
    const i = this.upperBound(key) - 1;
    if (i < 0) return undefined;
    const info = this.sorted[i]!.info;
    return endAfter(info.region.endKey, key) ? info : undefined;
  }

  /** firstOverlapIndex: index of the first Region whose range ends after startKey. */
  private firstOverlapIndex(startKey: Uint8Array): number {
    const i = this.upperBound(startKey) - 1;
    if (i >= 0 && endAfter(this.sorted[i]!.info.region.endKey, startKey)) return i;
    return i + 1;
  }

  /** overlapRange returns [lo, hi): the indexes of Regions overlapping [startKey, endKey). */
  private overlapRange(startKey: Uint8Array, endKey: Uint8Array): [number, number] {
    const lo = this.firstOverlapIndex(startKey);
    let hi = lo;
    while (hi < this.sorted.length && (endKey.length === 0 || compareBytes(this.sorted[hi]!.start, endKey) < 0)) hi++;
    return [lo, hi];
  }

  /** overlaps lists the Regions overlapping [startKey, endKey) in key order. */
  overlaps(startKey: Uint8Array, endKey: Uint8Array): RegionInfo[] {
    const [lo, hi] = this.overlapRange(startKey, endKey);
    return this.sorted.slice(lo, hi).map((s) => s.info);
  }

  /** scan returns up to limit Regions overlapping [startKey, endKey) (empty endKey = to the end), in key order. */
  scan(startKey: Uint8Array, endKey: Uint8Array, limit: number): RegionInfo[] {
    const out: RegionInfo[] = [];
    for (let i = this.firstOverlapIndex(startKey); i < this.sorted.length && out.length < limit; i++) {
      const slot = this.sorted[i]!;
      if (endKey.length > 0 && compareBytes(slot.start, endKey) >= 0) break;
      out.push(slot.info);
    }
    return out;
  }

  /** checkStale returns why `region` is stale against the tree, or null if it may be applied. */
  checkStale(region: Region): string | null {
    const origin = this.byId.get(region.id)?.info;
    const known = origin?.region.epoch ?? this.removedEpochs.get(region.id);
    if (known && isEpochStale(region.epoch, known)) {
      return `region ${region.id} epoch (version ${region.epoch.version}, confVer ${region.epoch.confVer}) is older than known (version ${known.version}, confVer ${known.confVer})${origin ? '' : ' when it was replaced'}`;
    }
    if (origin && sameMeta(origin.region, region)) return null;
    const [lo, hi] = this.overlapRange(region.startKey, region.endKey);
    for (let i = lo; i < hi; i++) {
      const o = this.sorted[i]!.info.region;
      if (o.id !== region.id && region.epoch.version < o.epoch.version) {
        return `region ${region.id} (version ${region.epoch.version}) overlaps newer region ${o.id} (version ${o.epoch.version})`;
      }
    }
    return null;
  }

  /** update applies one Region report following the rule above. */
  update(info: RegionInfo): UpdateResult {
    const region = info.region;
    const slot = this.byId.get(region.id);
    const origin = slot?.info;
    if (slot && sameMeta(slot.info.region, region)) {
      // Fast path: statistics only. No search: the slot is found by ID.
      return { kind: 'stats', current: slot.info };
    }
    const staleReason = this.checkStale(region);
    if (staleReason !== null) return { kind: 'stale', reason: staleReason };
    if (slot) {
      // Same slot (a conf change, or a range change that overlaps only itself): replace in place, no array shifting.
      const [lo, hi] = this.overlapRange(region.startKey, region.endKey);
      if (hi - lo === 1 && this.sorted[lo] === slot) {
        slot.info = info;
        slot.start = region.startKey;
        return { kind: 'meta', removed: [origin!] };
      }
    }
    const removed: RegionInfo[] = [];
    if (slot) {
      this.sorted.splice(this.indexOf(slot), 1);
      this.byId.delete(region.id);
      removed.push(slot.info);
    }
    const [lo, hi] = this.overlapRange(region.startKey, region.endKey);
    for (let i = lo; i < hi; i++) {
      const o = this.sorted[i]!;
      this.byId.delete(o.info.region.id);
      this.rememberRemoved(o.info.region);
      removed.push(o.info);
    }
    this.removedEpochs.delete(region.id);
    const fresh: Slot = { start: region.startKey, info };
    this.sorted.splice(lo, hi - lo, fresh);
    this.byId.set(region.id, fresh);
    return { kind: 'meta', removed };
  }

  /**
   * load fills an empty tree from persisted Regions in O(n log n). Regions
   * that overlap (only possible if the persisted batch was cut by a crash
   * between related writes) are resolved by the normal update rule; the
   * Regions that lose are returned so the caller can delete them.
   */
  load(infos: RegionInfo[]): RegionInfo[] {
    const dropped: RegionInfo[] = [];
    assert(this.sorted.length === 0, 'load into a non-empty tree');
    const ordered = infos.slice().sort((a, b) => compareBytes(a.region.startKey, b.region.startKey));
    for (const info of ordered) this.loadNext(info, dropped);
    return dropped;
  }

  /**
   * loadNext adds one persisted Region during a load in start-key order
   * (load, or a new leader's load in slices: cluster-load.ts): appended when
   * it fits after the last one, otherwise placed by the update rule; what
   * that drops is pushed onto `dropped`.
   */
  loadNext(info: RegionInfo, dropped: RegionInfo[]): void {
    const last = this.sorted[this.sorted.length - 1]?.info;
    const fits = last === undefined || (last.region.endKey.length > 0 && compareBytes(last.region.endKey, info.region.startKey) <= 0);
    if (fits && !this.byId.has(info.region.id)) {
      const slot: Slot = { start: info.region.startKey, info };
      this.sorted.push(slot);
      this.byId.set(info.region.id, slot);
    } else {
      const r = this.update(info);
      if (r.kind === 'stale') dropped.push(info);
      else if (r.kind === 'meta') dropped.push(...r.removed.filter((x) => x.region.id !== info.region.id));
    }
  }

  /** remove drops a Region by ID (returns it, if it was there). */
  remove(id: number): RegionInfo | undefined {
    const slot = this.byId.get(id);
    if (!slot) return undefined;
    this.sorted.splice(this.indexOf(slot), 1);
    this.byId.delete(id);
    this.rememberRemoved(slot.info.region);
    return slot.info;
  }

  /** all returns every Region in key order (a copy). */
  all(): RegionInfo[] {
    return this.sorted.map((s) => s.info);
  }

  /** checkInvariants asserts sortedness, no overlaps and index consistency (tests, startup); [from, to) checks part of the array (a load in slices). */
  checkInvariants(from = 0, to = this.sorted.length): void {
    assert(this.byId.size === this.sorted.length, `index has ${this.byId.size} regions, array ${this.sorted.length}`);
    for (let i = from; i < Math.min(to, this.sorted.length); i++) {
      const slot = this.sorted[i]!;
      const r = slot.info.region;
      assert(this.byId.get(r.id) === slot, `region ${r.id} index mismatch`);
      assert(compareBytes(slot.start, r.startKey) === 0, `region ${r.id} slot key differs from its start key`);
      if (i > 0) {
        const p = this.sorted[i - 1]!.info.region;
        assert(p.endKey.length > 0 && compareBytes(p.endKey, r.startKey) <= 0, `regions ${p.id} and ${r.id} overlap`);
      }
    }
  }
}
