import { ValidationError, parseWith } from '@flotilla/proto';
import { PlacementErrorCode } from './errors';
import { checkRegionHeartbeat } from './heartbeat-check';
import { type MetaBytesCache, type PackedResult, unpackHeartbeat } from './packed-heartbeat';
import { regionHeartbeatSchema } from './schema';
import type { Region } from '@flotilla/proto';
import type { RegionHeartbeat, RegionHeartbeatResponse, RegionHeartbeatResult } from './types';

/**
 * applyRegionHeartbeats answers a store's batch of Region heartbeats
 * (`regionHeartbeats`): each one is checked on its own with the schema a
 * lone `regionHeartbeat` gets, and applied in order by `apply` (the
 * cluster's regionHeartbeat: routing table and statistics in memory; what
 * must persist is queued for the next flush, as for one heartbeat). A
 * malformed heartbeat gets its own InvalidArgument result naming its index
 * and field, and the rest of the batch is applied: one bad Region must not
 * silence every other Region of its store. Errors that concern the whole
 * request (NotBootstrapped, a refused proposal, a bug) are thrown, as for
 * one heartbeat; heartbeats are idempotent, so the store may send the
 * batch again.
 */
export function applyRegionHeartbeats(items: readonly unknown[], apply: (hb: RegionHeartbeat) => RegionHeartbeatResponse): RegionHeartbeatResult[] {
  const results: RegionHeartbeatResult[] = new Array<RegionHeartbeatResult>(items.length);
  for (let i = 0; i < items.length; i++) {
    const hb = checkOne(items[i], `regionHeartbeats params: heartbeats.${i}`);
    results[i] = 'error' in hb ? hb : apply(hb);
  }
  return results;
}

/** checkOne: the hand-written check first (heartbeat-check.ts); zod decides and words anything it is unsure of. */
function checkOne(item: unknown, label: string): RegionHeartbeat | { error: { code: string; message: string } } {
  const hb = checkRegionHeartbeat(item);
  if (hb !== undefined) return hb;
  try {
    return parseWith(regionHeartbeatSchema, item, label) as RegionHeartbeat;
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return { error: { code: PlacementErrorCode.InvalidArgument, message: err.message } };
  }
}

/**
 * applyPackedHeartbeats answers `regionHeartbeatsPacked` as
 * applyRegionHeartbeats answers `regionHeartbeats`: the same per-heartbeat
 * results and errors, in order. Items are packed heartbeats
 * (packed-heartbeat.ts) or ordinary heartbeat objects. A packed one whose
 * meta bytes match the Region placement holds (`known`) is applied without
 * decoding or re-checking the Region; any other goes through the ordinary
 * check, so bad input is refused as a regionHeartbeats item is. A result
 * that is only `{stale}` (no operator, no error) is answered as 0 (not
 * stale) or 1 (stale): most of a batch's answer (packed-heartbeat.ts
 * expandResults restores it on the client).
 */
export function applyPackedHeartbeats(
  items: readonly unknown[],
  known: (regionId: number) => Region | undefined,
  cache: MetaBytesCache,
  apply: (hb: RegionHeartbeat) => RegionHeartbeatResponse,
): PackedResult[] {
  const results: PackedResult[] = new Array<PackedResult>(items.length);
  for (let i = 0; i < items.length; i++) {
    const label = `regionHeartbeatsPacked params: heartbeats.${i}`;
    const u = unpackHeartbeat(items[i], known, cache);
    if (typeof u === 'string') {
      results[i] = { error: { code: PlacementErrorCode.InvalidArgument, message: `${label}: ${u}` } };
      continue;
    }
    const hb = u.checked ? (u.hb as RegionHeartbeat) : checkOne(u.hb, label);
    if ('error' in hb) {
      results[i] = hb;
      continue;
    }
    const r = apply(hb);
    results[i] = r.operator === undefined ? (r.stale ? 1 : 0) : r;
  }
  return results;
}

/** handsOutOperator: some answer of a heartbeat batch carries an operator step (the answer then waits for it to be committed). */
export function handsOutOperator(results: readonly (RegionHeartbeatResult | PackedResult)[]): boolean {
  // A packed answer's 0 / 1 is a plain {stale} (regionHeartbeatsPacked).
  for (const r of results) if (typeof r === 'object' && 'operator' in r && r.operator !== undefined) return true;
  return false;
}
