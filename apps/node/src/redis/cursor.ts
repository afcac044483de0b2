import { randomInt } from 'node:crypto';

// cursor.ts: SCAN cursors. Flotilla's keys are ordered, so a scan resumes
// at "the next key"; but redis-cli --scan, redis-py and go-redis parse the
// cursor as an unsigned 64-bit integer, so the front hands out a number
// and remembers which key it stands for.

/**
 * CursorTable maps the numeric cursors SCAN returns to the key the next
 * call starts at. It is bounded (maxCursors entries, maxKeyBytes of keys in
 * all, each kept at most ttlMs) and evicts the oldest first; a cursor it no
 * longer holds is refused with an error telling the caller to start again
 * from 0, never silently restarted. Cursors are random (below 2^53, so
 * JavaScript clients that turn them into numbers keep them exact), so a
 * cursor from before a restart of the front, or from another front, is
 * unknown rather than mistaken for a live one.
 */
export class CursorTable {
  private readonly entries = new Map<string, { key: Uint8Array; issuedAt: number }>();
  private bytes = 0;

  constructor(
    private readonly limits: { maxCursors: number; maxKeyBytes: number; ttlMs: number } = { maxCursors: 65_536, maxKeyBytes: 64 * 1024 * 1024, ttlMs: 3_600_000 },
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** issue returns a new cursor standing for nextKey. */
  issue(nextKey: Uint8Array): string {
    let id: string;
    do id = String(randomInt(1, 2 ** 48) * 32 + randomInt(0, 32));
    while (this.entries.has(id));
    this.entries.set(id, { key: nextKey, issuedAt: this.now() });
    this.bytes += nextKey.length;
    this.evict();
    return id;
  }

  /** lookup returns the key a cursor stands for, or undefined when this front never issued it or has evicted it. */
  lookup(cursor: string): Uint8Array | undefined {
    this.evict();
    return this.entries.get(cursor)?.key;
  }

  private evict(): void {
    const oldest = this.now() - this.limits.ttlMs;
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.limits.maxCursors && this.bytes <= this.limits.maxKeyBytes && e.issuedAt >= oldest) break;
      this.entries.delete(id);
      this.bytes -= e.key.length;
    }
  }
}
