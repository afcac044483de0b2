import { decode, encode } from '@flotilla/proto';
import { assert } from '../errors';
import type { GcCommand } from '../gc/leader';
import type { LeaseCommand } from '../lease/leader';
import type { PersistedStore } from '../storage';
import type { Operator, RegionInfo } from '../types';

/**
 * PlacementCommand is one entry of the placement Raft log: a change to the
 * durable placement state, applied by every member to its own SQLite
 * database (storage.ts). Each command is a plain overwrite of what the
 * leader's memory already holds, so applying it twice or after a newer
 * command of the same kind is harmless where it matters: the ID and TSO
 * bounds only ever grow (apply takes the maximum).
 *
 *   init         the cluster ID, chosen once by the first leader
 *   idHighWater  the ID allocator's bound: every ID handed out is below it
 *   tsoUpper     the timestamp oracle's bound (physical ms)
 *   maxReplicas  the replica count the replica checker keeps
 *   bootstrap    the first store and Region, and the bootstrapped flag
 *   store        one store record (registration, address, tombstone)
 *   batch        Region rows (meta and statistics) and operators, as one flush;
 *                statistics-only rows travel as statRows, four numbers each
 *                (Region ID, leader peer ID or 0, size, keys), not as whole
 *                RegionInfos: the meta is already in the row, and encoding it
 *                again was most of a stats-only heartbeat's cost (issue #16).
 *                Entries written before statRows carry them in stats.
 *   memberAddress  a member announces the address it serves on now
 *   gcSafePoint, serviceSafePoint  the GC safe points (gc/leader.ts)
 *   leaseGrant, leaseAttach, leaseAttachMany, leaseRevoke, leaseDrop  the leases (lease/leader.ts)
 */
export type PlacementCommand =
  | { t: 'init'; clusterId: number; maxReplicas: number }
  | { t: 'idHighWater'; highWater: number }
  | { t: 'tsoUpper'; upperMs: number }
  | { t: 'maxReplicas'; maxReplicas: number }
  | { t: 'bootstrap'; store: PersistedStore; region: RegionInfo }
  | { t: 'store'; store: PersistedStore }
  | { t: 'batch'; regions: [number, RegionInfo | null][]; stats: RegionInfo[]; statRows?: number[]; operators: [number, Operator | null][] }
  | { t: 'memberAddress'; memberId: number; address: string }
  | GcCommand
  | LeaseCommand;

const KINDS: ReadonlySet<string> = new Set(['init', 'idHighWater', 'tsoUpper', 'maxReplicas', 'bootstrap', 'store', 'batch', 'memberAddress', 'gcSafePoint', 'serviceSafePoint', 'leaseGrant', 'leaseAttach', 'leaseAttachMany', 'leaseRevoke', 'leaseDrop']);

export function encodeCommand(cmd: PlacementCommand): Uint8Array {
  return encode(cmd);
}

/**
 * decodeCommand reads a committed entry. Entries are written by placement
 * itself, so a command that does not decode is a bug or a damaged log:
 * an assertion, never a skipped entry.
 */
export function decodeCommand(data: Uint8Array): PlacementCommand {
  const v = decode(data, 512 * 1024 * 1024) as { t?: unknown };
  assert(typeof v === 'object' && v !== null && typeof v.t === 'string' && KINDS.has(v.t), `undecodable placement command ${JSON.stringify(v)?.slice(0, 100)}`);
  return v as PlacementCommand;
}

/** stripInfo drops what a Region row does not persist (down and pending peers are re-reported by heartbeats). */
export function stripInfo(info: RegionInfo): RegionInfo {
  return { region: info.region, ...(info.leader ? { leader: info.leader } : {}), approximateSizeBytes: info.approximateSizeBytes, approximateKeys: info.approximateKeys, downPeers: [], pendingPeers: [] };
}
