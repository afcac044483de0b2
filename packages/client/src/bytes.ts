import { LIMITS, compareKeys } from '@flotilla/proto';
import { ClientError } from './errors';

/** Bytes is what the client API accepts for keys and values: raw bytes, or a string taken as UTF-8. */
export type Bytes = Uint8Array | string;

const encoder = new TextEncoder();

/** toBytes turns a string into its UTF-8 bytes and passes bytes through. */
export function toBytes(x: Bytes): Uint8Array {
  if (typeof x === 'string') return encoder.encode(x);
  if (x instanceof Uint8Array) return x;
  throw new ClientError('InvalidArgument', `expected a string or Uint8Array, got ${x === null ? 'null' : typeof x}`);
}

function bytesOf(x: Bytes, what: string): Uint8Array {
  if (typeof x !== 'string' && !(x instanceof Uint8Array)) {
    throw new ClientError('InvalidArgument', `${what}: expected a string or Uint8Array, got ${x === null ? 'null' : typeof x}`);
  }
  return toBytes(x);
}

/** checkKey validates a key before anything is sent: non-empty and at most LIMITS.maxKeyBytes. */
export function checkKey(x: Bytes, what: string): Uint8Array {
  const b = bytesOf(x, what);
  if (b.length === 0) throw new ClientError('InvalidArgument', `${what}: key must not be empty`);
  if (b.length > LIMITS.maxKeyBytes) throw new ClientError('InvalidArgument', `${what}: key of ${b.length} bytes exceeds the limit of ${LIMITS.maxKeyBytes}`);
  return b;
}

/** checkValue validates a value: at most LIMITS.maxValueBytes (empty is allowed). */
export function checkValue(x: Bytes, what: string): Uint8Array {
  const b = bytesOf(x, what);
  if (b.length > LIMITS.maxValueBytes) throw new ClientError('InvalidArgument', `${what}: value of ${b.length} bytes exceeds the limit of ${LIMITS.maxValueBytes}`);
  return b;
}

/** checkRange validates [start, end): empty start = from the beginning, empty end = to the end; start < end otherwise. */
export function checkRange(start: Bytes, end: Bytes): { start: Uint8Array; end: Uint8Array } {
  const s = bytesOf(start, 'start');
  const e = bytesOf(end, 'end');
  if (s.length > LIMITS.maxKeyBytes) throw new ClientError('InvalidArgument', `start: key of ${s.length} bytes exceeds the limit of ${LIMITS.maxKeyBytes}`);
  if (e.length > LIMITS.maxKeyBytes) throw new ClientError('InvalidArgument', `end: key of ${e.length} bytes exceeds the limit of ${LIMITS.maxKeyBytes}`);
  if (e.length > 0 && compareKeys(s, e) >= 0) throw new ClientError('InvalidArgument', 'end: must be greater than start (or empty for the end of the key space)');
  return { start: s, end: e };
}
