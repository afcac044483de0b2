import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DecodeError,
  clientRequestSchema,
  decode,
  encode,
  parseWith,
  raftMessageSchema,
  regionSchema,
  ValidationError,
} from '@flotilla/proto';
import { clientRequestArb, raftMessageArb, regionArb } from './arbitraries';

/** normalize turns Buffers into plain Uint8Arrays so deep equality compares bytes only. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = normalize(x);
    return out;
  }
  return v;
}

describe('codec round trip', () => {
  it('round-trips random Regions', () => {
    fc.assert(
      fc.property(regionArb, (r) => {
        const back = decode(encode(r));
        expect(normalize(back)).toEqual(normalize(r));
        expect(parseWith(regionSchema, back, 'region')).toBeTruthy();
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips random RaftMessage envelopes, and they validate', () => {
    fc.assert(
      fc.property(raftMessageArb, (m) => {
        const back = decode(encode(m));
        expect(normalize(back)).toEqual(normalize(m));
        parseWith(raftMessageSchema, back, 'raft message');
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips random client commands, and they validate', () => {
    fc.assert(
      fc.property(clientRequestArb, (c) => {
        const back = decode(encode(c));
        expect(normalize(back)).toEqual(normalize(c));
        parseWith(clientRequestSchema, back, 'client request');
      }),
      { numRuns: 300 },
    );
  });

  it('keeps keys and values as bytes', () => {
    const back = decode(encode({ k: new Uint8Array([0, 255, 1]) })) as { k: unknown };
    expect(back.k).toBeInstanceOf(Uint8Array);
    expect([...(back.k as Uint8Array)]).toEqual([0, 255, 1]);
  });
});

describe('codec on bad bytes', () => {
  it('random bytes either decode to a value or throw DecodeError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (b) => {
        try {
          decode(b);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('every truncation of a valid frame throws DecodeError', () => {
    fc.assert(
      fc.property(raftMessageArb, (m) => {
        const full = encode(m);
        for (const cut of [0, 1, full.length >> 1, full.length - 1]) {
          expect(() => decode(full.subarray(0, cut))).toThrow(DecodeError);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('random bytes that decode never pass the schema as a RaftMessage by accident', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        let v: unknown;
        try {
          v = decode(b);
        } catch {
          return;
        }
        expect(() => parseWith(raftMessageSchema, v, 'raft message')).toThrow(ValidationError);
      }),
      { numRuns: 3000 },
    );
  });

  it('rejects oversized frames before parsing', () => {
    expect(() => decode(new Uint8Array(100), 50)).toThrow(/exceeds the limit/);
  });
});

describe('validation names the offending field', () => {
  const header = { regionId: 1, regionEpoch: { confVer: 1, version: 1 } };
  it('empty key in a put', () => {
    expect(() =>
      parseWith(clientRequestSchema, { id: 1, header, op: 'write', writes: [{ type: 'put', key: new Uint8Array(0), value: new Uint8Array(1) }] }, 'client request'),
    ).toThrow(/client request: writes\[0\]\.key: key must not be empty/);
  });
  it('missing region id', () => {
    try {
      parseWith(clientRequestSchema, { id: 1, header: { regionEpoch: { confVer: 1, version: 1 } }, op: 'read', read: { type: 'get', key: new Uint8Array([1]) } }, 'client request');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError);
      expect((e as ValidationError).fields).toContain('header.regionId');
    }
  });
  it('oversized key', () => {
    expect(() =>
      parseWith(clientRequestSchema, { id: 1, header, op: 'read', read: { type: 'get', key: new Uint8Array(9000) } }, 'client request'),
    ).toThrow(/read\.key: key longer than 8192 bytes/);
  });
  it('string where bytes are expected', () => {
    expect(() => parseWith(regionSchema, { id: 1, startKey: 'a', endKey: new Uint8Array(), epoch: { confVer: 0, version: 0 }, peers: [] }, 'region')).toThrow(
      /region: startKey: expected bytes/,
    );
  });
  it('unknown op', () => {
    expect(() => parseWith(clientRequestSchema, { id: 1, header, op: 'drop-table' }, 'client request')).toThrow(/op/);
  });
});
