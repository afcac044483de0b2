// confchange-codec: the compact binary encoding of ConfChange (v1) and
// ConfChangeV2 carried in Entry.data of conf-change entries.
//
// Format (all integers are unsigned LEB128 varints, exact up to 2^53):
//   v1: 0x01 changeType nodeId ctxLen ctx...
//   v2: 0x02 transition count (changeType nodeId)*count ctxLen ctx...
// A zero-length v2 payload decodes as the empty ConfChangeV2 (leave joint);
// the leader proposes exactly that when auto-leaving a joint configuration.
import { ConfChangeDecodeError } from './errors';
import { ConfChangeTransition, ConfChangeType, EntryType } from './types';
import type { ConfChange, ConfChangeSingle, ConfChangeV2 } from './types';

const TAG_V1 = 0x01;
const TAG_V2 = 0x02;
const EMPTY = new Uint8Array(0);
/** MAX_CHANGES bounds the number of changes decoded from one entry. */
const MAX_CHANGES = 1 << 16;

class Writer {
  buf: number[] = [];
  u8(v: number): void {
    this.buf.push(v & 0xff);
  }
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new ConfChangeDecodeError(`cannot encode ${v}: not a non-negative safe integer`);
    while (v >= 0x80) {
      this.buf.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.buf.push(v);
  }
  bytes(b: Uint8Array | undefined): void {
    const n = b ? b.length : 0;
    this.varint(n);
    if (b) for (let i = 0; i < n; i++) this.buf.push(b[i]!);
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.buf);
  }
}

class Reader {
  pos = 0;
  constructor(readonly data: Uint8Array) {}
  u8(what: string): number {
    if (this.pos >= this.data.length) throw new ConfChangeDecodeError(`truncated conf change: missing ${what} at byte ${this.pos}`);
    return this.data[this.pos++]!;
  }
  varint(what: string): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8(what);
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(result)) throw new ConfChangeDecodeError(`${what} exceeds 2^53`);
        return result;
      }
      mul *= 0x80;
    }
    throw new ConfChangeDecodeError(`varint too long for ${what}`);
  }
  bytes(what: string): Uint8Array | undefined {
    const n = this.varint(`${what} length`);
    if (n === 0) return undefined;
    if (this.pos + n > this.data.length) throw new ConfChangeDecodeError(`truncated conf change: ${what} needs ${n} bytes`);
    const out = this.data.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  end(): void {
    if (this.pos !== this.data.length) throw new ConfChangeDecodeError(`${this.data.length - this.pos} trailing bytes after conf change`);
  }
}

function readChangeType(r: Reader): ConfChangeType {
  const t = r.u8('change type');
  if (t !== ConfChangeType.AddNode && t !== ConfChangeType.RemoveNode && t !== ConfChangeType.AddLearnerNode) {
    throw new ConfChangeDecodeError(`unknown conf change type ${t}`);
  }
  return t;
}

/** encodeConfChange encodes a v1 ConfChange for an EntryConfChange entry. */
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const w = new Writer();
  w.u8(TAG_V1);
  w.u8(cc.changeType);
  w.varint(cc.nodeId);
  w.bytes(cc.context);
  return w.finish();
}

/** decodeConfChange decodes a v1 ConfChange; throws ConfChangeDecodeError on bad bytes. */
export function decodeConfChange(data: Uint8Array): ConfChange {
  const r = new Reader(data);
  const tag = r.u8('tag');
  if (tag !== TAG_V1) throw new ConfChangeDecodeError(`expected conf change v1 tag ${TAG_V1}, got ${tag}`);
  const changeType = readChangeType(r);
  const nodeId = r.varint('node id');
  const context = r.bytes('context');
  r.end();
  const cc: ConfChange = { changeType, nodeId };
  if (context) cc.context = context;
  return cc;
}

/** encodeConfChangeV2 encodes a ConfChangeV2 for an EntryConfChangeV2 entry. */
export function encodeConfChangeV2(cc: ConfChangeV2): Uint8Array {
  if (cc.transition === ConfChangeTransition.Auto && cc.changes.length === 0 && (!cc.context || cc.context.length === 0)) {
    return EMPTY;
  }
  const w = new Writer();
  w.u8(TAG_V2);
  w.u8(cc.transition);
  w.varint(cc.changes.length);
  for (const c of cc.changes) {
    w.u8(c.changeType);
    w.varint(c.nodeId);
  }
  w.bytes(cc.context);
  return w.finish();
}

/** decodeConfChangeV2 decodes a ConfChangeV2; empty data is the empty (leave-joint) change. */
export function decodeConfChangeV2(data: Uint8Array): ConfChangeV2 {
  if (data.length === 0) return { transition: ConfChangeTransition.Auto, changes: [] };
  const r = new Reader(data);
  const tag = r.u8('tag');
  if (tag !== TAG_V2) throw new ConfChangeDecodeError(`expected conf change v2 tag ${TAG_V2}, got ${tag}`);
  const transition = r.u8('transition');
  if (transition !== ConfChangeTransition.Auto && transition !== ConfChangeTransition.Implicit && transition !== ConfChangeTransition.Explicit) {
    throw new ConfChangeDecodeError(`unknown conf change transition ${transition}`);
  }
  const n = r.varint('change count');
  if (n > MAX_CHANGES) throw new ConfChangeDecodeError(`too many changes: ${n}`);
  const changes: ConfChangeSingle[] = [];
  for (let i = 0; i < n; i++) {
    const changeType = readChangeType(r);
    changes.push({ changeType, nodeId: r.varint('node id') });
  }
  const context = r.bytes('context');
  r.end();
  const cc: ConfChangeV2 = { transition, changes };
  if (context) cc.context = context;
  return cc;
}

/** isConfChangeV2 tells the two conf change shapes apart. */
export function isConfChangeV2(cc: ConfChange | ConfChangeV2): cc is ConfChangeV2 {
  return Array.isArray((cc as ConfChangeV2).changes);
}

/** confChangeAsV2 converts a v1 change into the equivalent ConfChangeV2. */
export function confChangeAsV2(cc: ConfChange | ConfChangeV2): ConfChangeV2 {
  if (isConfChangeV2(cc)) return cc;
  const v2: ConfChangeV2 = { transition: ConfChangeTransition.Auto, changes: [{ changeType: cc.changeType, nodeId: cc.nodeId }] };
  if (cc.context) v2.context = cc.context;
  return v2;
}

/** encodeConfChangeEntry returns the entry type and data for proposing cc. */
export function encodeConfChangeEntry(cc: ConfChange | ConfChangeV2): { entryType: EntryType; data: Uint8Array } {
  if (isConfChangeV2(cc)) return { entryType: EntryType.EntryConfChangeV2, data: encodeConfChangeV2(cc) };
  return { entryType: EntryType.EntryConfChange, data: encodeConfChange(cc) };
}

/** decodeConfChangeEntry decodes a conf change entry's data as a ConfChangeV2 (v1 converted). */
export function decodeConfChangeEntry(entryType: EntryType, data: Uint8Array): ConfChangeV2 {
  if (entryType === EntryType.EntryConfChange) return confChangeAsV2(decodeConfChange(data));
  if (entryType === EntryType.EntryConfChangeV2) return decodeConfChangeV2(data);
  throw new ConfChangeDecodeError(`entry type ${entryType} is not a conf change`);
}

/**
 * confChangeEnterJoint reports whether cc enters a joint configuration and,
 * if so, whether it leaves it automatically (etcd's ConfChangeV2.EnterJoint).
 */
export function confChangeEnterJoint(cc: ConfChangeV2): { enter: boolean; autoLeave: boolean } {
  if (cc.transition !== ConfChangeTransition.Auto || cc.changes.length > 1) {
    return { enter: true, autoLeave: cc.transition !== ConfChangeTransition.Explicit };
  }
  return { enter: false, autoLeave: false };
}

/** confChangeLeaveJoint: the empty ConfChangeV2 (Auto, no changes) leaves a joint configuration. */
export function confChangeLeaveJoint(cc: ConfChangeV2): boolean {
  return cc.transition === ConfChangeTransition.Auto && cc.changes.length === 0;
}
