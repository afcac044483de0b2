import { describe, expect, it } from 'vitest';
import { clientRequestSchema, decode, encode, parseWith, tsSchema } from '../src';

describe('transactional wire contract', () => {
  it('carries a 59-bit hybrid timestamp exactly, and a small one too', () => {
    const big = (BigInt(Date.now()) << 18n) | 5n;
    const back = decode(encode({ a: big, b: 7n })) as { a: unknown; b: unknown };
    expect(parseWith(tsSchema, back.a, 'ts')).toBe(big);
    expect(parseWith(tsSchema, back.b, 'ts')).toBe(7n);
  });

  it('parses a prewrite and refuses one with no start ts or a ttl past the limit', () => {
    const header = { regionId: 1, regionEpoch: { confVer: 1, version: 1 } };
    const key = Buffer.from('k');
    const ok = { id: 1, header, op: 'txn', txn: { type: 'prewrite', mutations: [{ op: 'put', key, value: key }], primary: key, startTs: 1n << 60n, lockTtlMs: 3000, txnSize: 1 } };
    const parsed = parseWith(clientRequestSchema, decode(encode(ok)), 'req');
    expect(parsed.op === 'txn' && parsed.txn.type === 'prewrite' && parsed.txn.startTs).toBe(1n << 60n);
    expect(() => parseWith(clientRequestSchema, { ...ok, txn: { ...ok.txn, startTs: 0 } }, 'req')).toThrow(/timestamp must be positive/);
    expect(() => parseWith(clientRequestSchema, { ...ok, txn: { ...ok.txn, lockTtlMs: 10_000_000 } }, 'req')).toThrow(/lockTtlMs/);
  });
});
