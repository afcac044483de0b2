// The raft frame codec: a compact binary encoding of RaftMessage batches.
//
// Raft traffic is the hot path of a store (heartbeats for thousands of
// Regions every tick), so it does not go through generic msgpack maps: every
// field of a RaftMessage is written positionally as a LEB128 varint, flags
// are packed into one byte, byte strings are length-prefixed. A heartbeat
// envelope is ~20 bytes instead of ~250 as a msgpack map. The rare
// `Message.snapshot` (metadata only, in practice) is embedded as msgpack.
// docs/transport.md describes the layout byte by byte.

import { DecodeError, decode as decodeMsgpack, encode as encodeMsgpack } from '@flotilla/proto';
import type { RaftMessage, PeerRole } from '@flotilla/proto';
import type { Entry, EntryType, Message, MessageType, Snapshot } from '@flotilla/raft-core';

/** FRAME_KIND_RAFT tags a frame that carries a batch of RaftMessages. */
export const FRAME_KIND_RAFT = 0x01;

/** FRAME_HEADER_BYTES: kind byte + u32 little-endian message count. */
export const FRAME_HEADER_BYTES = 5;

/** MAX_MESSAGES_PER_FRAME bounds what a decoder will allocate for one frame. */
export const MAX_MESSAGES_PER_FRAME = 1 << 20;

/** Raft's message types are 0..18 (raft-core MessageType). */
const MAX_RAFT_MESSAGE_TYPE = 18;

/**
 * isWireMessageType: raft's types, plus the store-level types 64..127 that
 * ride in the same envelope and are never stepped into raft (proto's
 * StoreMessageType, e.g. MsgHibernate = 64; TiKV's ExtraMessage).
 */
export function isWireMessageType(t: number): boolean {
  return Number.isInteger(t) && ((t >= 0 && t <= MAX_RAFT_MESSAGE_TYPE) || (t >= 64 && t < 128));
}
const MAX_ENTRIES_PER_MESSAGE = 1 << 20;

// Flag bits of the envelope flags byte.
const F_FROM_LEARNER = 1;
const F_TO_LEARNER = 2;
const F_TOMBSTONE = 4;
const F_REJECT = 8;
const F_CONTEXT = 16;
const F_SNAPSHOT = 32;
const F_KEYS = 64;
const F_NEGATIVE_PRIORITY = 128;

// Flag bits of an entry's first byte (entry type lives in the low 2 bits).
const E_CONTEXT = 4;

const EMPTY: Uint8Array = new Uint8Array(0);

/** LARGE_FRAME_BYTES: frames at least this big are handed over, not copied (see FrameWriter.take). */
const LARGE_FRAME_BYTES = 256 * 1024;
const MAX_SPARE_BUFFERS = 4;

function notUint(n: number, field: string): never {
  // A negative, fractional or unsafe number here is a bug in the caller
  // (raft indexes are non-negative integers): fail loudly, never encode junk.
  throw new TypeError(`codec: ${field}=${n} is not a non-negative safe integer`);
}

/**
 * FrameWriter encodes messages into one reusable scratch buffer that grows
 * as needed, so steady-state encoding allocates nothing per message; `take`
 * copies the finished frame out (the socket may hold it after send).
 */
export class FrameWriter {
  buf: Buffer;
  pos = 0;
  private spare: Buffer[] = [];
  private countAt = -1;
  private count = 0;

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** begin starts a new raft frame (kind byte + count placeholder). */
  begin(): void {
    this.pos = 0;
    this.count = 0;
    this.ensure(FRAME_HEADER_BYTES);
    this.buf[0] = FRAME_KIND_RAFT;
    this.countAt = 1;
    this.pos = FRAME_HEADER_BYTES;
  }

  /** messageCount is the number of messages written since begin(). */
  get messageCount(): number {
    return this.count;
  }

  /** rewind drops everything written after `pos` (a message that did not fit). */
  rewind(pos: number, count: number): void {
    this.pos = pos;
    this.count = count;
  }

  /**
   * take finishes the frame and returns it. A small frame is copied out and
   * the scratch buffer reused. A large one (>= LARGE_FRAME_BYTES) is handed
   * over whole and the scratch replaced from a small pool: copying or freshly
   * allocating megabytes per frame (page faults, GC pressure) cost more than
   * encoding them. Give a large frame back with `release` once the socket
   * has written it; a frame never released is simply garbage collected.
   */
  take(): Buffer {
    this.buf.writeUInt32LE(this.count, this.countAt);
    if (this.pos >= LARGE_FRAME_BYTES) {
      const out = this.buf.subarray(0, this.pos);
      this.buf = this.spare.pop() ?? Buffer.allocUnsafe(this.buf.length);
      return out;
    }
    return Buffer.from(this.buf.subarray(0, this.pos));
  }

  /** release returns a large frame's buffer to the pool (no-op for small frames). */
  release(frame: Buffer): void {
    if (frame.length < LARGE_FRAME_BYTES || frame.byteOffset !== 0) return;
    const whole = Buffer.from(frame.buffer, 0, frame.buffer.byteLength);
    // Keep at most MAX_SPARE_BUFFERS, of the current scratch size (older, smaller ones are dropped).
    if (this.spare.length < MAX_SPARE_BUFFERS && whole.length >= this.buf.length) this.spare.push(whole);
  }

  ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /**
   * varint writes a non-negative safe integer as LEB128 and validates it on
   * the way: the common case (an integer below 2^32) is one comparison.
   * Callers ensure() 10 bytes of room per varint before writing.
   */
  private varint(n: number, field: string): void {
    const buf = this.buf;
    let pos = this.pos;
    if (n >>> 0 === n) {
      if (n < 0x80) {
        buf[pos++] = n;
      } else if (n < 0x4000) {
        buf[pos++] = (n & 0x7f) | 0x80;
        buf[pos++] = n >>> 7;
      } else {
        while (n >= 0x80) {
          buf[pos++] = (n & 0x7f) | 0x80;
          n >>>= 7;
        }
        buf[pos++] = n;
      }
    } else {
      if (!(Number.isSafeInteger(n) && n >= 0)) notUint(n, field);
      while (n >= 0x80) {
        buf[pos++] = (n % 0x80) | 0x80;
        n = Math.floor(n / 0x80);
      }
      buf[pos++] = n;
    }
    this.pos = pos;
  }

  private bytes(b: Uint8Array): void {
    const len = b.length;
    this.ensure(len + 10);
    this.varint(len, 'length');
    if (len > 0) {
      this.buf.set(b, this.pos);
      this.pos += len;
    }
  }

  /**
   * write appends one RaftMessage to the current frame. A field that is not
   * a non-negative safe integer is a broken invariant: it throws (TypeError)
   * and the frame is left as it was before this message.
   */
  write(rm: RaftMessage): void {
    const start = this.pos;
    try {
      this.writeMessage(rm);
    } catch (err) {
      this.pos = start;
      throw err;
    }
    this.count++;
  }

  private writeMessage(rm: RaftMessage): void {
    const m = rm.message;
    if (!Number.isSafeInteger(m.priority)) throw new TypeError(`codec: priority=${m.priority} is not a safe integer`);
    if (!isWireMessageType(m.msgType)) throw new TypeError(`codec: msgType=${m.msgType} is neither a raft nor a store message type`);
    const hasKeys = rm.startKey.length > 0 || rm.endKey.length > 0;
    let flags = 0;
    if (rm.fromPeer.role === 'learner') flags |= F_FROM_LEARNER;
    if (rm.toPeer.role === 'learner') flags |= F_TO_LEARNER;
    if (rm.isTombstone) flags |= F_TOMBSTONE;
    if (m.reject) flags |= F_REJECT;
    if (m.context !== undefined) flags |= F_CONTEXT;
    if (m.snapshot !== undefined) flags |= F_SNAPSHOT;
    if (hasKeys) flags |= F_KEYS;
    if (m.priority < 0) flags |= F_NEGATIVE_PRIORITY;

    // 7 envelope varints + 2 bytes + 11 message varints (max 10 bytes each).
    this.ensure(200);
    this.varint(rm.regionId, 'regionId');
    this.varint(rm.fromPeer.id, 'fromPeer.id');
    this.varint(rm.fromPeer.storeId, 'fromPeer.storeId');
    this.varint(rm.toPeer.id, 'toPeer.id');
    this.varint(rm.toPeer.storeId, 'toPeer.storeId');
    this.varint(rm.regionEpoch.confVer, 'regionEpoch.confVer');
    this.varint(rm.regionEpoch.version, 'regionEpoch.version');
    this.buf[this.pos++] = flags;
    this.buf[this.pos++] = m.msgType;
    this.varint(m.to, 'message.to');
    this.varint(m.from, 'message.from');
    this.varint(m.term, 'message.term');
    this.varint(m.logTerm, 'message.logTerm');
    this.varint(m.index, 'message.index');
    this.varint(m.commit, 'message.commit');
    this.varint(m.commitTerm, 'message.commitTerm');
    this.varint(m.requestSnapshot, 'message.requestSnapshot');
    this.varint(m.rejectHint, 'message.rejectHint');
    // priority may be negative: magnitude here, sign in the flags.
    this.varint(Math.abs(m.priority), 'message.priority');
    const entries = m.entries;
    this.varint(entries.length, 'entries.length');
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      this.ensure(32);
      this.buf[this.pos++] = e.entryType | (e.context !== undefined ? E_CONTEXT : 0);
      this.varint(e.term, 'entry.term');
      this.varint(e.index, 'entry.index');
      this.bytes(e.data);
      if (e.context !== undefined) this.bytes(e.context);
    }
    if (m.context !== undefined) this.bytes(m.context);
    if (m.snapshot !== undefined) this.bytes(encodeMsgpack(m.snapshot));
    if (hasKeys) {
      this.bytes(rm.startKey);
      this.bytes(rm.endKey);
    }
  }
}

/**
 * FrameReader decodes one raft frame. Every read is bounds-checked so
 * random bytes give a DecodeError, never a crash or a partial batch. Byte
 * fields of the result are views into `frame` (zero-copy): a holder that
 * keeps one for long should copy it, or it pins the whole frame.
 */
class FrameReader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly end: number,
  ) {}

  fail(what: string): never {
    throw new DecodeError(`raft frame: ${what} at byte ${this.pos}`);
  }

  byte(): number {
    if (this.pos >= this.end) this.fail('truncated');
    return this.buf[this.pos++]!;
  }

  varint(): number {
    const buf = this.buf;
    if (this.pos >= this.end) this.fail('truncated varint');
    let b = buf[this.pos++]!;
    if (b < 0x80) return b;
    let result = b & 0x7f;
    let mul = 0x80;
    for (let i = 1; i < 8; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      b = buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (result > Number.MAX_SAFE_INTEGER) this.fail('varint out of range');
        return result;
      }
      mul *= 0x80;
    }
    return this.fail('varint too long');
  }

  bytes(): Uint8Array {
    const len = this.varint();
    if (len === 0) return EMPTY;
    if (len > this.end - this.pos) this.fail(`byte string of ${len} bytes overruns the frame`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  /** entries reads a message's entry count and then its entries. */
  entries(): Entry[] {
    const entryCount = this.varint();
    if (entryCount > MAX_ENTRIES_PER_MESSAGE || entryCount > this.end - this.pos) this.fail(`entry count ${entryCount} too large`);
    const entries: Entry[] = new Array(entryCount);
    for (let i = 0; i < entryCount; i++) {
      const head = this.byte();
      const entryType = head & 3;
      if (entryType > 2 || head & ~7) this.fail('bad entry header');
      const eTerm = this.varint();
      const eIndex = this.varint();
      const data = this.bytes();
      if (head & E_CONTEXT) {
        entries[i] = { entryType: entryType as EntryType, term: eTerm, index: eIndex, data, context: this.bytes() };
      } else {
        entries[i] = { entryType: entryType as EntryType, term: eTerm, index: eIndex, data };
      }
    }
    return entries;
  }

  message(): RaftMessage {
    const regionId = this.varint();
    const fromId = this.varint();
    const fromStore = this.varint();
    const toId = this.varint();
    const toStore = this.varint();
    const confVer = this.varint();
    const version = this.varint();
    const flags = this.byte();
    const msgType = this.byte();
    if (!isWireMessageType(msgType)) this.fail(`unknown message type ${msgType}`);
    const to = this.varint();
    const from = this.varint();
    const term = this.varint();
    const logTerm = this.varint();
    const index = this.varint();
    const commit = this.varint();
    const commitTerm = this.varint();
    const requestSnapshot = this.varint();
    const rejectHint = this.varint();
    const pAbs = this.varint();
    const priority = flags & F_NEGATIVE_PRIORITY ? -pAbs : pAbs;
    const entries = this.entries();
    const message: Message = {
      msgType: msgType as MessageType,
      to,
      from,
      term,
      logTerm,
      index,
      entries,
      commit,
      commitTerm,
      requestSnapshot,
      reject: (flags & F_REJECT) !== 0,
      rejectHint,
      priority,
    };
    if (flags & F_CONTEXT) message.context = this.bytes();
    if (flags & F_SNAPSHOT) message.snapshot = parseSnapshot(this.bytes());
    let startKey = EMPTY;
    let endKey = EMPTY;
    if (flags & F_KEYS) {
      startKey = this.bytes();
      endKey = this.bytes();
    }
    return {
      regionId,
      fromPeer: { id: fromId, storeId: fromStore, role: (flags & F_FROM_LEARNER ? 'learner' : 'voter') as PeerRole },
      toPeer: { id: toId, storeId: toStore, role: (flags & F_TO_LEARNER ? 'learner' : 'voter') as PeerRole },
      regionEpoch: { confVer, version },
      message,
      startKey,
      endKey,
      isTombstone: (flags & F_TOMBSTONE) !== 0,
    };
  }
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isUintArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every(isUint);
}

/** parseSnapshot decodes and shape-checks an embedded Snapshot. */
function parseSnapshot(bytes: Uint8Array): Snapshot {
  const v = decodeMsgpack(bytes) as Record<string, unknown> | null;
  const md = (v && typeof v === 'object' ? v['metadata'] : undefined) as Record<string, unknown> | undefined;
  const cs = (md && typeof md === 'object' ? md['confState'] : undefined) as Record<string, unknown> | undefined;
  if (
    !v ||
    !(v['data'] instanceof Uint8Array) ||
    !md ||
    !isUint(md['index']) ||
    !isUint(md['term']) ||
    !cs ||
    !isUintArray(cs['voters']) ||
    !isUintArray(cs['learners']) ||
    !isUintArray(cs['votersOutgoing']) ||
    !isUintArray(cs['learnersNext']) ||
    typeof cs['autoLeave'] !== 'boolean'
  ) {
    throw new DecodeError('raft frame: malformed embedded snapshot');
  }
  return v as unknown as Snapshot;
}

/** encodeRaftFrame encodes a batch as one frame (tests and tools; the transport reuses a FrameWriter). */
export function encodeRaftFrame(msgs: readonly RaftMessage[]): Buffer {
  const w = new FrameWriter(1024);
  w.begin();
  for (const m of msgs) w.write(m);
  return w.take();
}

/**
 * decodeRaftFrame decodes a whole frame or throws DecodeError: a batch is
 * delivered all-or-nothing, so a corrupt frame never half-applies.
 */
export function decodeRaftFrame(frame: Uint8Array): RaftMessage[] {
  if (frame.length < FRAME_HEADER_BYTES) throw new DecodeError(`raft frame: ${frame.length} bytes is shorter than its header`);
  if (frame[0] !== FRAME_KIND_RAFT) throw new DecodeError(`raft frame: unknown frame kind ${frame[0]}`);
  const count = (frame[1]! | (frame[2]! << 8) | (frame[3]! << 16)) + frame[4]! * 0x1000000;
  // A message takes at least 20 bytes; a count the frame cannot hold is garbage.
  if (count > MAX_MESSAGES_PER_FRAME || count * 20 > frame.length) throw new DecodeError(`raft frame: message count ${count} does not fit the frame`);
  const r = new FrameReader(frame, frame.length);
  r.pos = FRAME_HEADER_BYTES;
  const out: RaftMessage[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = r.message();
  if (r.pos !== frame.length) throw new DecodeError(`raft frame: ${frame.length - r.pos} trailing bytes`);
  return out;
}
