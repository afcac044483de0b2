import { describe, expect, it } from 'vitest';
import { parseClientResponse } from '../src/response';

// A store's TxnResult as it comes off the wire: msgpack integers below 2^53
// decode as number and above as bigint; the client sees bigint either way.

describe('txn results from the wire', () => {
  it('turns number and bigint timestamps into bigint', () => {
    const big = (1n << 60n) + 3n;
    const r = parseClientResponse({ id: 1, ok: true, txn: { type: 'read', errors: [], pairs: [{ key: new Uint8Array([1]), value: new Uint8Array([2]), version: 12345 }] } });
    expect(r.ok && r.txn?.type === 'read' && r.txn.pairs[0]!.version).toBe(12345n);
    const c = parseClientResponse({ id: 2, ok: true, txn: { type: 'commit', errors: [], commitTs: big } });
    expect(c.ok && c.txn?.type === 'commit' && c.txn.commitTs).toBe(big);
    const lock = { key: new Uint8Array([1]), primary: new Uint8Array([1]), startTs: 7, ttlMs: 3000, kind: 'put', minCommitTs: 0, txnSize: 1 };
    const l = parseClientResponse({ id: 3, ok: true, txn: { type: 'prewrite', errors: [{ type: 'KeyIsLocked', lock }] } });
    expect(l.ok && l.txn?.type === 'prewrite' && l.txn.errors[0]).toEqual({ type: 'KeyIsLocked', lock: { ...lock, startTs: 7n, minCommitTs: 0n } });
  });

  it('rejects a malformed result (a ValidationError: the client never acts on it)', () => {
    expect(() => parseClientResponse({ id: 1, ok: true, txn: { type: 'commit', errors: [], commitTs: -1 } })).toThrow(/store response/);
    expect(() => parseClientResponse({ id: 1, ok: true, txn: { type: 'checkTxnStatus', status: 'maybe' } })).toThrow(/store response/);
    expect(() => parseClientResponse({ id: 1, ok: true, txn: { type: 'prewrite', errors: [{ type: 'Nope' }] } })).toThrow(/store response/);
  });
});
