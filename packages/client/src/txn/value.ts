import { LIMITS } from '@flotilla/proto';
import { ClientError } from '../errors';

// value.ts: how a transactional value is stored, so that it can record the
// lease it was written with (etcd's KeyValue.lease). The lease revocation
// deletes an attached key only while its current value still carries that
// lease: a put without the lease (or with another) detaches the key, and a
// delete ends it (docs/watch-and-leases.md "Why a put never outlives its
// lease").
//
// Layout: a plain value is stored as it is, unless it happens to start with
// VALUE_MAGIC; then, and for every leased value, the stored bytes are
//   VALUE_MAGIC  tag
//   tag 0x00: the user's value follows (an escaped plain value)
//   tag 0x01: lease ID as 8 big-endian bytes, then the user's value
// Every value written before leases were recorded stays readable as it
// was, unless it started with VALUE_MAGIC (a NUL byte first, which text and
// protobuf never do); such a value is returned unchanged, as stored.

/** VALUE_MAGIC: the first bytes of an encoded value (NUL, then two bytes no UTF-8 text has after a NUL). */
export const VALUE_MAGIC = new Uint8Array([0x00, 0xf7, 0x1e]);
const TAG_PLAIN = 0x00;
const TAG_LEASE = 0x01;
/** VALUE_HEADER_BYTES: the largest header (magic, tag, lease ID); a leased value may be at most LIMITS.maxValueBytes minus this. */
export const VALUE_HEADER_BYTES = VALUE_MAGIC.length + 1 + 8;

/** StoredValue is a decoded value: the user's bytes and the lease it was written with (null: none). */
export interface StoredValue {
  value: Uint8Array;
  lease: number | null;
}

function hasMagic(b: Uint8Array): boolean {
  if (b.length < VALUE_MAGIC.length) return false;
  for (let i = 0; i < VALUE_MAGIC.length; i++) if (b[i] !== VALUE_MAGIC[i]) return false;
  return true;
}

/**
 * encodeValue gives the bytes to store for value written with lease (null:
 * without one). A plain value is returned as it is unless it starts with
 * VALUE_MAGIC. InvalidArgument when the header makes it too long.
 */
export function encodeValue(value: Uint8Array, lease: number | null): Uint8Array {
  if (lease === null && !hasMagic(value)) return value;
  const header = VALUE_MAGIC.length + 1 + (lease === null ? 0 : 8);
  if (value.length + header > LIMITS.maxValueBytes) {
    throw new ClientError('InvalidArgument', `value: ${value.length} bytes plus the ${header}-byte ${lease === null ? 'escape' : 'lease'} header exceeds the ${LIMITS.maxValueBytes}-byte value limit`);
  }
  const out = new Uint8Array(header + value.length);
  out.set(VALUE_MAGIC);
  out[VALUE_MAGIC.length] = lease === null ? TAG_PLAIN : TAG_LEASE;
  if (lease !== null) new DataView(out.buffer).setBigUint64(VALUE_MAGIC.length + 1, BigInt(lease));
  out.set(value, header);
  return out;
}

/** decodeValue reads stored bytes back into the user's value and its lease; bytes that are not an encoding are a plain value, unchanged. */
export function decodeValue(stored: Uint8Array): StoredValue {
  if (!hasMagic(stored) || stored.length < VALUE_MAGIC.length + 1) return { value: stored, lease: null };
  const tag = stored[VALUE_MAGIC.length];
  if (tag === TAG_PLAIN) return { value: stored.subarray(VALUE_MAGIC.length + 1), lease: null };
  if (tag === TAG_LEASE && stored.length >= VALUE_HEADER_BYTES) {
    const id = new DataView(stored.buffer, stored.byteOffset, stored.byteLength).getBigUint64(VALUE_MAGIC.length + 1);
    if (id > 0n && id <= BigInt(Number.MAX_SAFE_INTEGER)) return { value: stored.subarray(VALUE_HEADER_BYTES), lease: Number(id) };
  }
  return { value: stored, lease: null };
}
