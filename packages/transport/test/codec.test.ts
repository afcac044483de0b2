import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DecodeError, type RaftMessage } from '@flotilla/proto';
import { EntryType, MessageType, newMessage } from '@flotilla/raft-core';
import { decodeRaftFrame, encodeRaftFrame, FrameWriter } from '../src/codec';
import { raftMsg } from './helpers';

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

function full(): RaftMessage {
  return {
    regionId: 2 ** 40 + 7,
    fromPeer: { id: 11, storeId: 1, role: 'learner' },
    toPeer: { id: 12, storeId: 2, role: 'voter' },
    regionEpoch: { confVer: 3, version: 2 ** 33 },
    message: newMessage(MessageType.MsgApp, {
      from: 11,
      to: 12,
      term: Number.MAX_SAFE_INTEGER,
      logTerm: 4,
      index: 1_000_000,
      commit: 999_999,
      commitTerm: 4,
      requestSnapshot: 5,
      reject: true,
      rejectHint: 17,
      priority: -3,
      context: bytes(5),
      entries: [
        { entryType: EntryType.EntryNormal, term: 4, index: 1_000_001, data: bytes(1024) },
        { entryType: EntryType.EntryConfChangeV2, term: 4, index: 1_000_002, data: bytes(0), context: bytes(3, 9) },
      ],
      snapshot: { data: bytes(10), metadata: { index: 50, term: 3, confState: { voters: [1, 2], learners: [3], votersOutgoing: [], learnersNext: [], autoLeave: false } } },
    }),
    startKey: bytes(4),
    endKey: new Uint8Array(0),
    isTombstone: true,
  };
}

/** plain turns decoded Buffers/views into arrays so toEqual compares content only. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

describe('raft frame codec', () => {
  it('round-trips every field of a RaftMessage', () => {
    const msgs = [full(), raftMsg(1, 1, 2, 0), raftMsg(7, 3, 1, 2 ** 31 + 5)];
    expect(plain(decodeRaftFrame(encodeRaftFrame(msgs)))).toEqual(plain(msgs));
  });

  it('round-trips random messages (property)', () => {
    const uint = fc.maxSafeNat();
    const arb = fc.record({
      regionId: fc.integer({ min: 0, max: 2 ** 40 }),
      a: uint,
      b: uint,
      term: uint,
      index: uint,
      priority: fc.maxSafeInteger(),
      reject: fc.boolean(),
      msgType: fc.integer({ min: 0, max: 18 }),
      data: fc.uint8Array({ maxLength: 40 }),
      key: fc.uint8Array({ maxLength: 8 }),
    });
    fc.assert(
      fc.property(fc.array(arb, { maxLength: 5 }), (recs) => {
        const msgs = recs.map((r) => {
          const m = raftMsg(r.regionId, 1, 2, r.index, { msgType: r.msgType as MessageType, term: r.term, priority: r.priority, reject: r.reject, from: r.a, to: r.b });
          m.message.entries = [{ entryType: EntryType.EntryNormal, term: r.term, index: r.index, data: r.data }];
          m.endKey = r.key;
          return m;
        });
        expect(plain(decodeRaftFrame(encodeRaftFrame(msgs)))).toEqual(plain(msgs));
      }),
      { numRuns: 300 },
    );
  });

  it('carries store-level message types (64..127, e.g. MsgHibernate) and refuses others', () => {
    const hibernate = raftMsg(3, 1, 2, 9, { msgType: 64 as MessageType });
    expect(decodeRaftFrame(encodeRaftFrame([hibernate]))[0]!.message.msgType).toBe(64);
    const w = new FrameWriter(16);
    w.begin();
    expect(() => w.write(raftMsg(1, 1, 2, 1, { msgType: 40 as MessageType }))).toThrow(TypeError);
    expect(() => w.write(raftMsg(1, 1, 2, 1, { msgType: 300 as MessageType }))).toThrow(TypeError);
    expect(w.messageCount).toBe(0);
    // A frame whose type byte says 40 does not decode. The heartbeat's envelope is
    // 7 one-byte varints (region 1, peers 11/12 on stores 1/2, epoch 1/1), then flags, then the type.
    const frame = encodeRaftFrame([raftMsg(1, 1, 2, 1)]);
    expect(frame[5 + 7 + 1]).toBe(MessageType.MsgHeartbeat);
    frame[5 + 7 + 1] = 40;
    expect(() => decodeRaftFrame(frame)).toThrow(DecodeError);
  });

  it('never reuses a large frame buffer before it is released', () => {
    const w = new FrameWriter(1024);
    const big = (seq: number) => raftMsg(1, 1, 2, seq, { msgType: MessageType.MsgApp, entries: [{ entryType: EntryType.EntryNormal, term: 1, index: seq, data: Buffer.alloc(300 * 1024, seq) }] });
    w.begin();
    w.write(big(1));
    const a = w.take();
    const aCopy = Buffer.from(a);
    w.begin();
    w.write(big(2));
    const b = w.take();
    expect(b.buffer).not.toBe(a.buffer);
    expect(a.equals(aCopy)).toBe(true); // untouched while not released
    w.release(a); // a's buffer becomes the scratch after the next take
    w.begin();
    w.write(big(3));
    const c = w.take();
    w.begin();
    w.write(big(4));
    const d = w.take();
    expect(d.buffer).toBe(a.buffer); // recycled after release
    expect([b, c, d].map((f) => decodeRaftFrame(f)[0]!.message.index)).toEqual([2, 3, 4]);
  });

  it('encodes a heartbeat in a few dozen bytes', () => {
    const frame = encodeRaftFrame([raftMsg(1000, 1, 2, 100)]);
    expect(frame.length).toBeLessThan(40);
  });

  it('rejects garbage, truncation and trailing bytes with DecodeError, never a partial batch', () => {
    const good = encodeRaftFrame([full(), raftMsg(1, 1, 2, 1)]);
    for (let cut = 0; cut < good.length; cut++) expect(() => decodeRaftFrame(good.subarray(0, cut))).toThrow(DecodeError);
    expect(() => decodeRaftFrame(Buffer.concat([good, Buffer.of(0)]))).toThrow(DecodeError);
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff);
    for (let i = 0; i < 2000; i++) {
      const junk = Uint8Array.from({ length: 1 + (i % 200) }, rnd);
      if (i % 2 === 0) junk[0] = 1;
      try {
        decodeRaftFrame(junk);
      } catch (err) {
        expect(err).toBeInstanceOf(DecodeError);
      }
    }
  });

  it('refuses to encode a negative or fractional index (broken invariant)', () => {
    const w = new FrameWriter(16);
    w.begin();
    expect(() => w.write(raftMsg(1, 1, 2, -1))).toThrow(TypeError);
    expect(() => w.write(raftMsg(1, 1, 2, 1.5))).toThrow(TypeError);
  });
});
