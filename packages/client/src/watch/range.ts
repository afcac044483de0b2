import { compareKeys } from '@flotilla/proto';
import { ClientError } from '../errors';
import { checkRange, toBytes, type Bytes } from '../bytes';

/** WatchRange names what a watch covers: a prefix, or [start, end) (an empty end is unbounded). */
export type WatchRange = Bytes | { start: Bytes; end: Bytes };

/** prefixEnd is the first key after every key with the prefix (empty = unbounded: the prefix is empty or all 0xff). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const out = prefix.slice(0, i + 1);
      out[i]!++;
      return out;
    }
  }
  return new Uint8Array(0);
}

/** resolveRange turns a prefix or a range into [start, end), refusing an empty range. */
export function resolveRange(r: WatchRange): { start: Uint8Array; end: Uint8Array } {
  if (typeof r === 'string' || r instanceof Uint8Array) {
    const p = toBytes(r);
    return checkRange(p, prefixEnd(p));
  }
  if (r === null || typeof r !== 'object') throw new ClientError('InvalidArgument', 'watch: expected a prefix (string or bytes) or { start, end }');
  return checkRange(r.start, r.end);
}

/** minEnd is the smaller of two range ends (empty = unbounded). */
export function minEnd(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  return compareKeys(a, b) <= 0 ? a : b;
}
