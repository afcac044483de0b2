import type { Peer, Region } from './region';

/**
 * RegionError is an expected error a store returns for a command. Each
 * carries what the caller needs to retry: the leader hint, the current
 * Regions, and so on. They are plain data so they cross the wire as is.
 */
export type RegionError =
  | { type: 'NotLeader'; regionId: number; leader?: Peer }
  | { type: 'EpochNotMatch'; currentRegions: Region[] }
  | { type: 'KeyNotInRegion'; key: Uint8Array; regionId: number; startKey: Uint8Array; endKey: Uint8Array }
  | { type: 'RegionNotFound'; regionId: number }
  | { type: 'ServerIsBusy'; reason: string; backoffMs: number }
  | { type: 'StaleCommand' }
  | { type: 'StoreNotMatch'; requestStoreId: number; actualStoreId: number }
  | { type: 'InvalidRequest'; message: string }
  | { type: 'Unavailable'; message: string }
  /**
   * Undetermined: the command was proposed (it is in the Raft log) but the
   * proposer lost track of it (leadership moved, the peer was destroyed or
   * the store is stopping): it may still commit and apply. Retrying a write
   * after this could apply it twice.
   */
  | { type: 'Undetermined'; regionId: number; message: string };

export type RegionErrorType = RegionError['type'];

/** describeRegionError renders a RegionError as one operator-readable sentence. */
export function describeRegionError(e: RegionError): string {
  switch (e.type) {
    case 'NotLeader':
      return `region ${e.regionId}: not leader${e.leader ? ` (leader is peer ${e.leader.id} on store ${e.leader.storeId})` : ' (leader unknown)'}`;
    case 'EpochNotMatch':
      return `epoch not match (current regions: ${e.currentRegions.map((r) => r.id).join(', ') || 'none'})`;
    case 'KeyNotInRegion':
      return `key not in region ${e.regionId}`;
    case 'RegionNotFound':
      return `region ${e.regionId} not found on this store`;
    case 'ServerIsBusy':
      return `server is busy: ${e.reason} (retry in ${e.backoffMs} ms)`;
    case 'StaleCommand':
      return 'stale command: it was superseded before it could apply';
    case 'StoreNotMatch':
      return `store not match: request for store ${e.requestStoreId}, this is store ${e.actualStoreId}`;
    case 'InvalidRequest':
      return `invalid request: ${e.message}`;
    case 'Unavailable':
      return `unavailable: ${e.message}`;
    case 'Undetermined':
      return `region ${e.regionId}: outcome unknown: ${e.message}`;
  }
}

/** FlotillaError wraps a RegionError as a throwable with a clear message. */
export class FlotillaError extends Error {
  constructor(readonly detail: RegionError) {
    super(describeRegionError(detail));
    this.name = `${detail.type}Error`;
  }
}

/** DecodeError: bytes that are not a valid frame or message. Never a crash. */
export class DecodeError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'DecodeError';
  }
}
