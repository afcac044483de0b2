import type { RegionWithLeader } from '@flotilla/placement/client';

/** StoreAddress is what the client needs to know about a store: where to connect. */
export interface StoreAddress {
  id: number;
  address: string;
  /** state: a 'tombstone' store is never dialled. */
  state?: string;
}

/**
 * RouteProvider is the slice of placement the client routes with (TiKV
 * client-go's pd.Client, reduced to what routing needs). PlacementClient
 * from @flotilla/placement satisfies it as is; tests pass a fake.
 *
 * Errors: a thrown error whose `retryable` property is false ends the
 * client call with ClientError('Unavailable'); any other error is retried
 * with backoff (placement restarting, not bootstrapped yet, timeouts).
 */
export interface RouteProvider {
  /** getRegion returns the Region holding key and its leader as placement last heard, or null when none (not bootstrapped). */
  getRegion(key: Uint8Array): Promise<RegionWithLeader | null>;
  /** scanRegions lists Regions overlapping [startKey, endKey) in key order (empty endKey = to the end), at most limit. */
  scanRegions(startKey: Uint8Array, endKey: Uint8Array, limit: number): Promise<RegionWithLeader[]>;
  /** getStore returns a store's address, or null when placement does not know it. */
  getStore(storeId: number): Promise<StoreAddress | null>;
  /** timestamp returns one fresh hybrid timestamp from placement's oracle (optional: FlotillaClient.timestamp needs it). */
  timestamp?(): Promise<bigint>;
  close(): void;
}
