// core: the one place where the test harnesses (interaction, sim) and the
// benchmark reach into raft-core's source. Everything they use is named here
// so that a rename in src/ is a one-line fix, and so that the harnesses can
// own the parts whose output must stay stable (formatting, randomness).
export { RawNode } from '../../src/raw-node';
export type { Ready, LightReady } from '../../src/raw-node';
export { MemoryStorage } from '../../src/memory-storage';
export type { Config, Logger } from '../../src/config';
export { decodeConfChange, decodeConfChangeV2 } from '../../src/confchange-codec';
export { RaftError } from '../../src/errors';
export * from '../../src/types';
export * from '../../src/storage';

/**
 * mulberry32 is the harnesses' own seeded PRNG (not raft-core's
 * newSeededRandom) so that a change of the library's generator cannot
 * silently change every expected output and every simulation seed.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

import { ConfChangeTransition as CCT, EntryType as ET } from '../../src/types';
import type { ConfChange as CC1, ConfChangeV2 as CC2, Entry as E } from '../../src/types';
import { decodeConfChange as dec1, decodeConfChangeV2 as dec2 } from '../../src/confchange-codec';

/**
 * entryConfChange decodes the conf change an entry carries, or undefined for
 * a normal entry. An EntryConfChangeV2 with empty data is the empty
 * ConfChangeV2 that leaves a joint configuration (etcd writes it that way,
 * since an empty protobuf message marshals to zero bytes).
 */
export function entryConfChange(e: E): CC1 | CC2 | undefined {
  if (e.entryType === ET.EntryConfChange) return e.data.length === 0 ? undefined : dec1(e.data);
  if (e.entryType === ET.EntryConfChangeV2) {
    return e.data.length === 0 ? { transition: CCT.Auto, changes: [] } : dec2(e.data);
  }
  return undefined;
}
