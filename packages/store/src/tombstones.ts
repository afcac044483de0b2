/**
 * Tombstones maps a Region this store left to the ID of the peer it
 * destroyed. Peer IDs only grow, so a message to a larger ID is a re-add
 * (allowed to create a peer); one to that ID or smaller is stale.
 *
 * Bounded: past `limit` entries the oldest is forgotten (a Map keeps
 * insertion order, and a re-set moves an entry to the end). A forgotten
 * Region only loses the fast path: a message to its old peer may create an
 * uninitialized peer, which the stale-peer check then removes.
 */
export class Tombstones {
  private readonly byRegion = new Map<number, number>();
  constructor(private readonly limit: number) {}

  get size(): number {
    return this.byRegion.size;
  }

  has(regionId: number): boolean {
    return this.byRegion.has(regionId);
  }

  get(regionId: number): number | undefined {
    return this.byRegion.get(regionId);
  }

  /** set records that the peer `peerId` of the Region is gone (keeping the largest ID seen). */
  set(regionId: number, peerId: number): void {
    const prev = this.byRegion.get(regionId);
    this.byRegion.delete(regionId);
    this.byRegion.set(regionId, Math.max(peerId, prev ?? 0));
    if (this.byRegion.size > this.limit) {
      const oldest = this.byRegion.keys().next().value as number;
      this.byRegion.delete(oldest);
    }
  }
}
