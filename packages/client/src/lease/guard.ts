// The guard key of a lease: a transactional key written when the lease is
// granted and deleted by the revocation's transaction. A put with the lease
// reads it in its own transaction; a missing guard means the revocation
// committed before the put's start ts (docs/watch-and-leases.md).
//
// Reserved prefix: transactional keys starting with 0xFF 0xFF "flotilla/"
// belong to Flotilla. They sort after every key a user writes with text
// keys, so a prefix scan or watch of user keys never sees them; only a scan
// to the end of the keyspace does.

/** INTERNAL_PREFIX: the reserved transactional key prefix (0xFF 0xFF 'flotilla/'). */
export const INTERNAL_PREFIX = new Uint8Array([0xff, 0xff, ...new TextEncoder().encode('flotilla/')]);
const GUARD_PREFIX = new Uint8Array([...INTERNAL_PREFIX, ...new TextEncoder().encode('lease/')]);
/** GUARD_VALUE: what a guard holds (its presence is all that counts). */
export const GUARD_VALUE = new TextEncoder().encode('live');

/** guardKey: INTERNAL_PREFIX 'lease/' then the lease ID as 8 big-endian bytes (IDs below 2^53). */
export function guardKey(leaseId: number): Uint8Array {
  const out = new Uint8Array(GUARD_PREFIX.length + 8);
  out.set(GUARD_PREFIX);
  new DataView(out.buffer).setBigUint64(GUARD_PREFIX.length, BigInt(leaseId));
  return out;
}

/** isInternalKey: the key is in the reserved prefix (user writes with a lease there are refused). */
export function isInternalKey(key: Uint8Array): boolean {
  if (key.length < INTERNAL_PREFIX.length) return false;
  for (let i = 0; i < INTERNAL_PREFIX.length; i++) if (key[i] !== INTERNAL_PREFIX[i]) return false;
  return true;
}
