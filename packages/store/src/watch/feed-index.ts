import { compareKeys } from '@flotilla/proto';
import type { Feed } from './feed';

/**
 * FeedIndex finds the feeds of one Region whose range holds a key, for
 * publishing each applied write record (hub.ts). A linear walk costs every
 * record every feed of its Region: 10,000 single-key watchers on one
 * Region changing each key once a second made that 10^8 key comparisons a
 * second. The index keeps the feeds sorted by start key with a running
 * maximum of their end keys, so a lookup is a binary search for the last
 * feed starting at or below the key, then a walk back that stops as soon
 * as no earlier feed reaches the key: O(log n + matches) for disjoint
 * ranges (the common case: a key or a prefix per watcher), never worse
 * than the linear walk when ranges nest. It is rebuilt lazily after feeds
 * come or go.
 */
export class FeedIndex {
  private readonly feeds = new Set<Feed>();
  private sorted: Feed[] | undefined;
  /** reach[i]: the largest end among sorted[0..i] (undefined = unbounded). Invariant: sorted by start, reach is monotone. */
  private reach: (Uint8Array | undefined)[] = [];

  get size(): number {
    return this.feeds.size;
  }

  add(f: Feed): void {
    this.feeds.add(f);
    this.sorted = undefined;
  }

  delete(f: Feed): boolean {
    const had = this.feeds.delete(f);
    if (had) this.sorted = undefined;
    return had;
  }

  values(): IterableIterator<Feed> {
    return this.feeds.values();
  }

  [Symbol.iterator](): IterableIterator<Feed> {
    return this.feeds.values();
  }

  /** covering calls fn for every feed whose range holds key. */
  covering(key: Uint8Array, fn: (f: Feed) => void): void {
    const sorted = this.build();
    // hi: the first feed that starts after key.
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(sorted[mid]!.start, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    for (let i = hi - 1; i >= 0; i--) {
      const r = this.reach[i];
      if (r !== undefined && compareKeys(r, key) <= 0) break; // no feed at or before i reaches key
      const f = sorted[i]!;
      if (f.end.length === 0 || compareKeys(key, f.end) < 0) fn(f);
    }
  }

  private build(): Feed[] {
    if (this.sorted !== undefined) return this.sorted;
    const sorted = [...this.feeds].sort((a, b) => compareKeys(a.start, b.start));
    const reach: (Uint8Array | undefined)[] = new Array(sorted.length);
    let max: Uint8Array | undefined = new Uint8Array(0);
    let unbounded = false;
    for (let i = 0; i < sorted.length; i++) {
      const e = sorted[i]!.end;
      if (e.length === 0) unbounded = true;
      else if (!unbounded && (max!.length === 0 || compareKeys(e, max!) > 0)) max = e;
      reach[i] = unbounded ? undefined : max;
    }
    this.sorted = sorted;
    this.reach = reach;
    return sorted;
  }
}
