import { describe, expect, it } from 'vitest';
import { LIMITS } from '@flotilla/proto';
import { VALUE_HEADER_BYTES, VALUE_MAGIC, decodeValue, encodeValue } from '../src/txn/value';

// The transactional value encoding that records a value's lease
// (txn/value.ts): plain values are stored unchanged, leased ones and plain
// ones that look like an encoding carry a header, and decoding gives back
// exactly what was written.

const b = (...xs: number[]): Uint8Array => new Uint8Array(xs);

describe('txn value encoding', () => {
  it('stores a plain value as it is and reads it back without a lease', () => {
    const v = new TextEncoder().encode('hello');
    expect(encodeValue(v, null)).toBe(v);
    expect(decodeValue(v)).toEqual({ value: v, lease: null });
    expect(decodeValue(b())).toEqual({ value: b(), lease: null });
  });

  it('round-trips a leased value and a plain value that starts with the magic', () => {
    for (const v of [b(), b(1, 2, 3), b(...VALUE_MAGIC), b(...VALUE_MAGIC, 1, 0, 0)]) {
      for (const lease of [null, 1, 94, Number.MAX_SAFE_INTEGER]) {
        const stored = encodeValue(v, lease);
        expect(decodeValue(stored)).toEqual({ value: v, lease });
        if (lease !== null) expect(stored.length).toBe(v.length + VALUE_HEADER_BYTES);
      }
    }
  });

  it('reads bytes that only look like an encoding (older data) unchanged', () => {
    for (const stored of [b(...VALUE_MAGIC), b(...VALUE_MAGIC, 7, 1), b(...VALUE_MAGIC, 1, 0, 0), b(...VALUE_MAGIC, 1, 0, 0, 0, 0, 0, 0, 0, 0)]) {
      expect(decodeValue(stored)).toEqual({ value: stored, lease: null });
    }
  });

  it('refuses a value that the header would push past the value limit, with a clear error', () => {
    const big = new Uint8Array(LIMITS.maxValueBytes);
    expect(encodeValue(big, null)).toBe(big);
    expect(() => encodeValue(big, 5)).toThrow(/lease header exceeds the \d+-byte value limit/);
    expect(encodeValue(new Uint8Array(LIMITS.maxValueBytes - VALUE_HEADER_BYTES), 5).length).toBe(LIMITS.maxValueBytes);
  });
});
