import { ValidationError, parseWith } from '@flotilla/proto';
import { PlacementErrorCode } from './errors';
import { checkRegionHeartbeat } from './heartbeat-check';
import { regionHeartbeatSchema } from './schema';
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
    // The hand-written check first (heartbeat-check.ts); zod decides and words anything it is unsure of.
    let hb: RegionHeartbeat | undefined = checkRegionHeartbeat(items[i]);
    if (hb === undefined) {
      try {
        hb = parseWith(regionHeartbeatSchema, items[i], `regionHeartbeats params: heartbeats.${i}`) as RegionHeartbeat;
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        results[i] = { error: { code: PlacementErrorCode.InvalidArgument, message: err.message } };
        continue;
      }
    }
    results[i] = apply(hb);
  }
  return results;
}

/** handsOutOperator: some answer of a heartbeat batch carries an operator step (the answer then waits for it to be committed). */
export function handsOutOperator(results: readonly RegionHeartbeatResult[]): boolean {
  for (const r of results) if ('operator' in r && r.operator !== undefined) return true;
  return false;
}
