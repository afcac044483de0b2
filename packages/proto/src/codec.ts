import { Packr, Unpackr } from 'msgpackr';
import { DecodeError } from './errors';

/**
 * The wire codec: msgpack via msgpackr. Uint8Array values encode as msgpack
 * bin and decode as Buffer (a Uint8Array), so keys and values stay bytes.
 * Records are off: every peer must decode a frame without shared state, and
 * plain maps keep the format self-describing for tools and fuzzing.
 */
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });
// int64AsType 'auto': an integer beyond 2^53 (only hybrid timestamps, txn.ts)
// decodes as bigint, exactly; every smaller one as number, as before.
// msgpackr implements 'auto' but its typings list only the other three.
const unpackr = new Unpackr({ useRecords: false, int64AsType: 'auto' as 'bigint', mapsAsObjects: true });

/** maxDecodeBytes bounds what decode will even look at (64 MiB). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * decode parses one msgpack value. Random bytes, truncated frames and
 * trailing garbage give a DecodeError, never a crash. Callers validate the
 * shape with a zod schema (schema.ts) before trusting it.
 */
export function decode(bytes: Uint8Array, maxBytes = MAX_FRAME_BYTES): unknown {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('frame is not binary');
  if (bytes.length === 0) throw new DecodeError('empty frame');
  if (bytes.length > maxBytes) throw new DecodeError(`frame of ${bytes.length} bytes exceeds the limit of ${maxBytes}`);
  let values: unknown[];
  try {
    values = unpackr.unpackMultiple(bytes) as unknown[];
  } catch (err) {
    throw new DecodeError(`malformed msgpack frame: ${(err as Error).message}`, err);
  }
  if (values.length !== 1) throw new DecodeError(`frame holds ${values.length} values, expected exactly one`);
  return values[0];
}
