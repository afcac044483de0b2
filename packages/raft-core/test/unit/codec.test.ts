import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeConfChange,
  decodeConfChangeEntry,
  decodeConfChangeV2,
  encodeConfChange,
  encodeConfChangeEntry,
  encodeConfChangeV2,
} from '../../src/confchange-codec';
import { ConfChangeDecodeError } from '../../src/errors';
import { ConfChangeTransition, ConfChangeType, EntryType } from '../../src/types';
import type { ConfChange, ConfChangeV2 } from '../../src/types';
import { describeEntry } from '../../src/util';

const typeArb = fc.constantFrom(ConfChangeType.AddNode, ConfChangeType.RemoveNode, ConfChangeType.AddLearnerNode);
const idArb = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER));
const ctxArb = fc.option(fc.uint8Array({ minLength: 1, maxLength: 20 }), { nil: undefined });

describe('confchange codec', () => {
  it('round-trips v1 conf changes', () => {
    fc.assert(
      fc.property(typeArb, idArb, ctxArb, (changeType, nodeId, context) => {
        const cc: ConfChange = context ? { changeType, nodeId, context } : { changeType, nodeId };
        expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
      }),
    );
  });

  it('round-trips v2 conf changes', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(ConfChangeTransition.Auto, ConfChangeTransition.Implicit, ConfChangeTransition.Explicit),
        fc.array(fc.record({ changeType: typeArb, nodeId: idArb }), { maxLength: 8 }),
        ctxArb,
        (transition, changes, context) => {
          const cc: ConfChangeV2 = context ? { transition, changes, context } : { transition, changes };
          expect(decodeConfChangeV2(encodeConfChangeV2(cc))).toEqual(cc);
        },
      ),
    );
  });

  it('encodes the empty v2 change as zero bytes and decodes zero bytes as leave-joint', () => {
    expect(encodeConfChangeV2({ transition: ConfChangeTransition.Auto, changes: [] }).length).toBe(0);
    expect(decodeConfChangeV2(new Uint8Array(0))).toEqual({ transition: ConfChangeTransition.Auto, changes: [] });
    const { entryType, data } = encodeConfChangeEntry({ changeType: ConfChangeType.AddNode, nodeId: 4 });
    expect(entryType).toBe(EntryType.EntryConfChange);
    expect(decodeConfChangeEntry(entryType, data)).toEqual({ transition: ConfChangeTransition.Auto, changes: [{ changeType: 0, nodeId: 4 }] });
  });

  it('throws ConfChangeDecodeError on bad bytes', () => {
    const good1 = encodeConfChange({ changeType: ConfChangeType.AddNode, nodeId: 300, context: new Uint8Array([1, 2]) });
    const good2 = encodeConfChangeV2({ transition: ConfChangeTransition.Explicit, changes: [{ changeType: 1, nodeId: 2 }] });
    const bad: Uint8Array[] = [
      new Uint8Array(0), // v1 needs a tag
      new Uint8Array([0x02]), // wrong tag for v1
      new Uint8Array([0x01, 9, 1, 0]), // unknown change type
      good1.slice(0, good1.length - 1), // truncated context
      new Uint8Array([...good1, 0]), // trailing byte
      new Uint8Array([0x01, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0]), // varint too long
    ];
    for (const b of bad) expect(() => decodeConfChange(b), String(b)).toThrow(ConfChangeDecodeError);
    const bad2: Uint8Array[] = [
      new Uint8Array([0x01]),
      new Uint8Array([0x02, 7, 0, 0]), // unknown transition
      good2.slice(0, 4),
      new Uint8Array([...good2, 1]),
      new Uint8Array([0x02, 0, 0xff, 0xff, 0x7f]), // absurd change count
    ];
    for (const b of bad2) expect(() => decodeConfChangeV2(b), String(b)).toThrow(ConfChangeDecodeError);
    expect(() => decodeConfChangeEntry(EntryType.EntryNormal, good1)).toThrow(ConfChangeDecodeError);
    // Random garbage never throws anything but ConfChangeDecodeError.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 30 }), (b) => {
        for (const f of [decodeConfChange, decodeConfChangeV2]) {
          try {
            f(b);
          } catch (e) {
            expect(e).toBeInstanceOf(ConfChangeDecodeError);
          }
        }
      }),
    );
  });

  it('describes conf change entries in etcd style', () => {
    const { data } = encodeConfChangeEntry({
      transition: ConfChangeTransition.Explicit,
      changes: [
        { changeType: ConfChangeType.AddNode, nodeId: 2 },
        { changeType: ConfChangeType.AddLearnerNode, nodeId: 3 },
        { changeType: ConfChangeType.RemoveNode, nodeId: 4 },
      ],
    });
    expect(describeEntry({ entryType: EntryType.EntryConfChangeV2, term: 1, index: 5, data })).toBe('1/5 EntryConfChangeV2 v2 l3 r4 (explicit)');
    expect(describeEntry({ entryType: EntryType.EntryConfChangeV2, term: 1, index: 6, data: new Uint8Array(0) })).toBe('1/6 EntryConfChangeV2 (leave joint)');
    expect(describeEntry({ entryType: EntryType.EntryNormal, term: 2, index: 7, data: new TextEncoder().encode('foo') })).toBe('2/7 EntryNormal "foo"');
  });
});
