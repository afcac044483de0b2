import { assert } from '../errors';

/**
 * Inflights is the sliding window of MsgApps sent to a follower in
 * Replicate state but not yet acknowledged: a ring buffer of the last entry
 * index of each message and its payload bytes. It is full when either the
 * count or the byte limit is reached, which pauses replication to that
 * follower (flow control).
 */
export class Inflights {
  private start = 0;
  private _count = 0;
  private _bytes = 0;
  private indexes: number[] = [];
  private sizes: number[] = [];

  /** size is the maximum number of messages; maxBytes is the byte limit (0 = unlimited). */
  constructor(
    readonly size: number,
    readonly maxBytes: number = 0,
  ) {
    assert(size > 0, 'inflights size must be > 0');
  }

  clone(): Inflights {
    const c = new Inflights(this.size, this.maxBytes);
    c.start = this.start;
    c._count = this._count;
    c._bytes = this._bytes;
    c.indexes = this.indexes.slice();
    c.sizes = this.sizes.slice();
    return c;
  }

  /** add records a message whose last entry is `index`; the caller checked full() first. */
  add(index: number, bytes: number): void {
    assert(!this.full(), 'cannot add into a full inflights');
    let next = this.start + this._count;
    if (next >= this.size) next -= this.size;
    // Grow the backing arrays lazily, so idle followers cost little memory.
    if (next >= this.indexes.length) {
      this.indexes.push(index);
      this.sizes.push(bytes);
    } else {
      this.indexes[next] = index;
      this.sizes[next] = bytes;
    }
    this._count++;
    this._bytes += bytes;
  }

  /** freeLE frees every message whose last index is <= to. */
  freeLE(to: number): void {
    if (this._count === 0 || to < this.indexes[this.start]!) return;
    let idx = this.start;
    let i = 0;
    let bytes = 0;
    for (; i < this._count; i++) {
      if (to < this.indexes[idx]!) break;
      bytes += this.sizes[idx]!;
      idx++;
      if (idx >= this.size) idx -= this.size;
    }
    this._count -= i;
    this._bytes -= bytes;
    this.start = idx;
    if (this._count === 0) this.start = 0;
  }

  /** freeFirstOne frees the oldest message; used when a heartbeat response proves the follower alive. */
  freeFirstOne(): void {
    if (this._count === 0) return;
    this.freeLE(this.indexes[this.start]!);
  }

  /** full is true when no more messages may be sent. */
  full(): boolean {
    return this._count === this.size || (this.maxBytes > 0 && this._bytes >= this.maxBytes);
  }

  count(): number {
    return this._count;
  }

  bytes(): number {
    return this._bytes;
  }

  reset(): void {
    this._count = 0;
    this._bytes = 0;
    this.start = 0;
  }
}
