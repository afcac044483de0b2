import { decode } from '@flotilla/proto';
import type { Region } from '@flotilla/proto';
import { assert } from './errors';
import type { PeerState, RegionLocalState } from './types';

const PEER_STATES: ReadonlySet<string> = new Set(['normal', 'applying', 'merging', 'tombstone']);

/** decodeRegionState turns a region_state row back into a RegionLocalState; a malformed row is corruption. */
export function decodeRegionState(file: string, regionId: number, row: [Buffer, string, Buffer | null]): RegionLocalState {
  const [regionBytes, state, merge] = row;
  let region: Region;
  try {
    region = decode(regionBytes) as Region;
  } catch (err) {
    throw new Error(`${file}: region_state of region ${regionId} does not decode: ${(err as Error).message}`);
  }
  assert(typeof region === 'object' && region !== null && region.id === regionId, `${file}: region_state of region ${regionId} holds region ${String((region as Region | null)?.id)}`);
  assert(PEER_STATES.has(state), `${file}: region ${regionId} has unknown peer state ${state}`);
  const out: RegionLocalState = { region, state: state as PeerState };
  if (merge !== null) out.mergeState = merge;
  return out;
}
