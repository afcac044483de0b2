import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareEndKeys, compareKeys, isEpochStale, keyInRange, keyToString, utf8 } from '@flotilla/proto';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('keys', () => {
  it('compareKeys matches Buffer.compare (memcmp order) on random keys', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), fc.uint8Array({ maxLength: 12 }), (a, b) => {
        expect(compareKeys(a, b)).toBe(Buffer.compare(Buffer.from(a), Buffer.from(b)));
      }),
      { numRuns: 2000 },
    );
  });
  it('a prefix sorts first; empty sorts first of all', () => {
    expect(compareKeys(utf8('ab'), utf8('abc'))).toBe(-1);
    expect(compareKeys(new Uint8Array(), utf8('a'))).toBe(-1);
  });
  it('range membership treats empty end as unbounded', () => {
    expect(keyInRange(utf8('zzz'), utf8('m'), new Uint8Array())).toBe(true);
    expect(keyInRange(utf8('a'), utf8('m'), new Uint8Array())).toBe(false);
    expect(keyInRange(utf8('m'), utf8('m'), utf8('n'))).toBe(true);
    expect(keyInRange(utf8('n'), utf8('m'), utf8('n'))).toBe(false);
  });
  it('empty end key is the greatest end', () => {
    expect(compareEndKeys(new Uint8Array(), utf8('z'))).toBe(1);
    expect(compareEndKeys(utf8('z'), new Uint8Array())).toBe(-1);
    expect(compareEndKeys(new Uint8Array(), new Uint8Array())).toBe(0);
  });
  it('epoch staleness in either dimension', () => {
    expect(isEpochStale({ confVer: 1, version: 2 }, { confVer: 1, version: 3 })).toBe(true);
    expect(isEpochStale({ confVer: 1, version: 3 }, { confVer: 2, version: 3 })).toBe(true);
    expect(isEpochStale({ confVer: 2, version: 3 }, { confVer: 2, version: 3 })).toBe(false);
  });
  it('renders keys readably', () => {
    expect(keyToString(utf8('user/1'))).toBe('user/1');
    expect(keyToString(new Uint8Array([0, 1]))).toBe('0x' + hex(new Uint8Array([0, 1])));
  });
});
