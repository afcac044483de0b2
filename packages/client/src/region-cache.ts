import { compareKeys, keyInRegion, type Peer, type Region } from '@flotilla/proto';

/** CachedRegion is one routing entry: a Region and the peer believed to lead it. */
export interface CachedRegion {
  region: Region;
  leader?: Peer;
}

/**
 * RegionCache maps keys to Regions (TiKV client-go's region cache, minus the
 * B-tree): entries are kept sorted by startKey and never overlap, so a
 * lookup is a binary search. Inserting a Region evicts every entry that
 * overlaps its range, unless one of them has a newer epoch version, in which
 * case the inserted Region is the stale one (placement can lag behind a
 * split the stores already told us about) and is not cached.
 *
 * Invariant: for i < j, entries[i].endKey <= entries[j].startKey (empty endKey only last).
 */
export class RegionCache {
  private entries: CachedRegion[] = [];
  private readonly byId = new Map<number, CachedRegion>();

  constructor(private readonly maxEntries = 100_000) {}

  get size(): number {
    return this.entries.length;
  }

  /** all returns the cached entries in key order (for tests and diagnostics). */
  all(): readonly CachedRegion[] {
    return this.entries;
  }

  /** indexAtOrBefore: index of the last entry whose startKey <= key, or -1. */
  private indexAtOrBefore(key: Uint8Array): number {
    let lo = 0;
    let hi = this.entries.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(this.entries[mid]!.region.startKey, key) <= 0) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** locate returns the cached Region holding key, if any. */
  locate(key: Uint8Array): CachedRegion | undefined {
    const i = this.indexAtOrBefore(key);
    if (i < 0) return undefined;
    const e = this.entries[i]!;
    return keyInRegion(key, e.region) ? e : undefined;
  }

  getById(regionId: number): CachedRegion | undefined {
    return this.byId.get(regionId);
  }

  /**
   * insert caches region (with an optional leader) and evicts every entry it
   * overlaps. Returns false, caching nothing, when an overlapping entry is
   * newer (higher epoch version, or the same Region with a higher confVer).
   */
  insert(region: Region, leader?: Peer): boolean {
    let start = this.indexAtOrBefore(region.startKey);
    if (start < 0 || !this.overlaps(this.entries[start]!.region, region)) start++;
    let end = start;
    while (end < this.entries.length && this.overlaps(this.entries[end]!.region, region)) {
      const old = this.entries[end]!.region;
      if (old.epoch.version > region.epoch.version) return false;
      if (old.id === region.id && old.epoch.version === region.epoch.version && old.epoch.confVer > region.epoch.confVer) return false;
      end++;
    }
    const previous = this.byId.get(region.id);
    // Keep a known leader across an epoch bump when the new Region still has that peer.
    const keptLeader = leader ?? (previous?.leader && region.peers.some((p) => p.id === previous.leader!.id) ? previous.leader : undefined);
    const entry: CachedRegion = keptLeader ? { region, leader: keptLeader } : { region };
    for (let i = start; i < end; i++) this.byId.delete(this.entries[i]!.region.id);
    this.entries.splice(start, end - start, entry);
    // The same Region cached under another range (it shrank or moved by a merge): drop the old entry.
    if (previous && previous !== entry) {
      const i = this.entries.indexOf(previous);
      if (i >= 0) this.entries.splice(i, 1);
    }
    this.byId.set(region.id, entry);
    this.assertOrderedAround(this.entries.indexOf(entry));
    if (this.entries.length > this.maxEntries) this.evictOne(region.id);
    return true;
  }

  private overlaps(a: Region, b: Region): boolean {
    // [a.start, a.end) and [b.start, b.end) intersect.
    const aEndsAfterBStarts = a.endKey.length === 0 || compareKeys(a.endKey, b.startKey) > 0;
    const bEndsAfterAStarts = b.endKey.length === 0 || compareKeys(b.endKey, a.startKey) > 0;
    return aEndsAfterBStarts && bEndsAfterAStarts;
  }

  private removeEntry(entry: CachedRegion): void {
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
    if (this.byId.get(entry.region.id) === entry) this.byId.delete(entry.region.id);
  }

  /** evictOne drops an arbitrary entry other than keepId to respect maxEntries. */
  private evictOne(keepId: number): void {
    const victim = this.entries.find((e) => e.region.id !== keepId);
    if (victim) this.removeEntry(victim);
  }

  /** setLeader records the peer that leads regionId (from a NotLeader hint). Returns false if the Region is not cached or the peer is not one of its peers. */
  setLeader(regionId: number, leader: Peer): boolean {
    const e = this.byId.get(regionId);
    if (!e || !e.region.peers.some((p) => p.id === leader.id)) return false;
    e.leader = leader;
    return true;
  }

  clearLeader(regionId: number): void {
    const e = this.byId.get(regionId);
    if (e) delete e.leader;
  }

  /** invalidate drops a Region so the next lookup asks placement. */
  invalidate(regionId: number): void {
    const e = this.byId.get(regionId);
    if (e) this.removeEntry(e);
  }

  /** invalidateStore forgets every leader on storeId (the store is unreachable). */
  invalidateStore(storeId: number): void {
    for (const e of this.entries) if (e.leader?.storeId === storeId) delete e.leader;
  }

  clear(): void {
    this.entries = [];
    this.byId.clear();
  }

  /** assertOrderedAround checks the no-overlap invariant next to index i (the only place an insert can break it). */
  private assertOrderedAround(i: number): void {
    for (const j of [i, i + 1]) {
      const a = this.entries[j - 1]?.region;
      const b = this.entries[j]?.region;
      if (!a || !b) continue;
      if (a.endKey.length === 0 || compareKeys(a.endKey, b.startKey) > 0) {
        throw new Error(`RegionCache invariant broken: region ${a.id} overlaps region ${b.id}`);
      }
    }
  }
}
