import { assert } from './errors';

/**
 * IdAllocator hands out cluster-unique IDs (stores, Regions, peers,
 * operators). It keeps a durable high-water mark: before handing out an ID
 * at or above the mark, it raises the mark by at least `step` and persists
 * it (synchronously), so most calls cost no disk write and a crash at any
 * point can only skip IDs, never repeat one. After a restart allocation
 * resumes at the persisted mark.
 */
export class IdAllocator {
  private next: number;
  private highWater: number;

  constructor(
    persistedHighWater: number,
    private readonly persist: (highWater: number) => void,
    private readonly step = 1000,
  ) {
    assert(Number.isSafeInteger(persistedHighWater) && persistedHighWater >= 1, `id high-water ${persistedHighWater}`);
    assert(step >= 1, `id step ${step}`);
    this.next = persistedHighWater;
    this.highWater = persistedHighWater;
  }

  /** alloc returns `count` fresh consecutive IDs. */
  alloc(count: number): number[] {
    assert(Number.isInteger(count) && count >= 1, `alloc count ${count}`);
    const end = this.next + count;
    if (end > this.highWater) {
      const newHighWater = end + this.step;
      assert(newHighWater <= Number.MAX_SAFE_INTEGER, 'ID space exhausted');
      this.persist(newHighWater); // durable BEFORE any of these IDs leaves the process
      this.highWater = newHighWater;
    }
    const ids = new Array<number>(count);
    for (let i = 0; i < count; i++) ids[i] = this.next + i;
    this.next = end;
    return ids;
  }

  /** peekNext is the next ID alloc would return (for status pages). */
  peekNext(): number {
    return this.next;
  }

  /** reserveBelow makes sure IDs up to `id` are never handed out (used when bootstrap brings IDs the allocator did not issue). */
  reserveBelow(id: number): void {
    if (id < this.next) return;
    this.alloc(id - this.next + 1);
  }
}
