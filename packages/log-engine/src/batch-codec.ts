import type { ConfState, Entry, EntryType } from '@flotilla/raft-core';
import { assert } from './errors';
import type { LogOp } from './log-batch';

// batch-codec: the binary form of a LogBatch, as stored in the `staging`
// table (one row per write) and as handed to the writer thread. Numbers are
// float64 (exact for integers below 2^53), lengths uint32, little endian.
//
//   body   := magic:u32 opCount:u32 op*
//   op     := kind:u8 regionId:f64 payload
//   append := firstIndex:f64 count:u32 (term:f64 type:u8 dataLen:u32 ctxLen:i32 data ctx)*
//   hard   := term:f64 vote:f64 commit:f64
//   conf   := confState
//   compact:= index:f64 term:f64
//   snap   := index:f64 term:f64 confState
//   remove := (nothing)
//   confState := autoLeave:u8 (count:u32 id:f64*) x4   (voters, learners, votersOutgoing, learnersNext)

const MAGIC = 0x31424c46; // "FLB1"
const KIND = { append: 1, hardState: 2, confState: 3, compact: 4, snapshot: 5, remove: 6 } as const;

/** encodeBatch serializes ops into one buffer (exactly sized). */
export function encodeBatch(ops: readonly LogOp[]): Uint8Array {
  let size = 8;
  for (const op of ops) size += opSize(op);
  // allocUnsafeSlow: never a slice of Node's shared pool, so the buffer can be
  // transferred to the writer thread.
  const buf = Buffer.allocUnsafeSlow(size);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  view.setUint32(p, MAGIC, true);
  view.setUint32(p + 4, ops.length, true);
  p += 8;
  for (const op of ops) {
    view.setUint8(p, KIND[op.kind]);
    view.setFloat64(p + 1, op.regionId, true);
    p += 9;
    switch (op.kind) {
      case 'append': {
        view.setFloat64(p, op.entries[0]!.index, true);
        view.setUint32(p + 8, op.entries.length, true);
        p += 12;
        for (const e of op.entries) {
          view.setFloat64(p, e.term, true);
          view.setUint8(p + 8, e.entryType);
          view.setUint32(p + 9, e.data.length, true);
          view.setInt32(p + 13, e.context === undefined ? -1 : e.context.length, true);
          p += 17;
          buf.set(e.data, p);
          p += e.data.length;
          if (e.context !== undefined) {
            buf.set(e.context, p);
            p += e.context.length;
          }
        }
        break;
      }
      case 'hardState':
        view.setFloat64(p, op.hardState.term, true);
        view.setFloat64(p + 8, op.hardState.vote, true);
        view.setFloat64(p + 16, op.hardState.commit, true);
        p += 24;
        break;
      case 'confState':
        p = writeConfState(view, p, op.confState);
        break;
      case 'compact':
        view.setFloat64(p, op.truncatedIndex, true);
        view.setFloat64(p + 8, op.truncatedTerm, true);
        p += 16;
        break;
      case 'snapshot':
        view.setFloat64(p, op.index, true);
        view.setFloat64(p + 8, op.term, true);
        p = writeConfState(view, p + 16, op.confState);
        break;
      case 'remove':
        break;
    }
  }
  assert(p === size, `batch encoding wrote ${p} bytes, sized ${size}`);
  return buf;
}

/**
 * decodeBatch parses a body written by encodeBatch. Entry data and context
 * are views into `body` (no copy). A malformed body is a broken invariant
 * (SQLite guarantees the row is what was written): it asserts.
 */
export function decodeBatch(body: Uint8Array): LogOp[] {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const need = (p: number, n: number) => assert(p + n <= buf.length, `log batch body truncated at byte ${p}`);
  need(0, 8);
  assert(view.getUint32(0, true) === MAGIC, 'log batch body has a bad magic number');
  const count = view.getUint32(4, true);
  const ops: LogOp[] = [];
  let p = 8;
  for (let k = 0; k < count; k++) {
    need(p, 9);
    const kind = view.getUint8(p);
    const regionId = view.getFloat64(p + 1, true);
    p += 9;
    switch (kind) {
      case KIND.append: {
        need(p, 12);
        const first = view.getFloat64(p, true);
        const n = view.getUint32(p + 8, true);
        p += 12;
        const entries: Entry[] = new Array(n);
        for (let i = 0; i < n; i++) {
          need(p, 17);
          const term = view.getFloat64(p, true);
          const entryType = view.getUint8(p + 8) as EntryType;
          const dataLen = view.getUint32(p + 9, true);
          const ctxLen = view.getInt32(p + 13, true);
          p += 17;
          need(p, dataLen + Math.max(ctxLen, 0));
          const data = buf.subarray(p, p + dataLen);
          p += dataLen;
          const e: Entry = { entryType, term, index: first + i, data };
          if (ctxLen >= 0) {
            e.context = buf.subarray(p, p + ctxLen);
            p += ctxLen;
          }
          entries[i] = e;
        }
        ops.push({ kind: 'append', regionId, entries });
        break;
      }
      case KIND.hardState:
        need(p, 24);
        ops.push({
          kind: 'hardState',
          regionId,
          hardState: { term: view.getFloat64(p, true), vote: view.getFloat64(p + 8, true), commit: view.getFloat64(p + 16, true) },
        });
        p += 24;
        break;
      case KIND.confState: {
        const r = readConfState(view, p);
        p = r.p;
        ops.push({ kind: 'confState', regionId, confState: r.cs });
        break;
      }
      case KIND.compact:
        need(p, 16);
        ops.push({ kind: 'compact', regionId, truncatedIndex: view.getFloat64(p, true), truncatedTerm: view.getFloat64(p + 8, true) });
        p += 16;
        break;
      case KIND.snapshot: {
        need(p, 16);
        const index = view.getFloat64(p, true);
        const term = view.getFloat64(p + 8, true);
        const r = readConfState(view, p + 16);
        p = r.p;
        ops.push({ kind: 'snapshot', regionId, index, term, confState: r.cs });
        break;
      }
      case KIND.remove:
        ops.push({ kind: 'remove', regionId });
        break;
      default:
        assert(false, `log batch body has unknown op kind ${kind}`);
    }
  }
  assert(p === buf.length, `log batch body has ${buf.length - p} trailing bytes`);
  return ops;
}

function opSize(op: LogOp): number {
  switch (op.kind) {
    case 'append': {
      let n = 9 + 12;
      for (const e of op.entries) n += 17 + e.data.length + (e.context === undefined ? 0 : e.context.length);
      return n;
    }
    case 'hardState':
      return 9 + 24;
    case 'confState':
      return 9 + confStateSize(op.confState);
    case 'compact':
      return 9 + 16;
    case 'snapshot':
      return 9 + 16 + confStateSize(op.confState);
    case 'remove':
      return 9;
  }
}

function confStateSize(cs: ConfState): number {
  return 1 + 16 + 8 * (cs.voters.length + cs.learners.length + cs.votersOutgoing.length + cs.learnersNext.length);
}

function writeConfState(view: DataView, p: number, cs: ConfState): number {
  view.setUint8(p, cs.autoLeave ? 1 : 0);
  p += 1;
  for (const ids of [cs.voters, cs.learners, cs.votersOutgoing, cs.learnersNext]) {
    view.setUint32(p, ids.length, true);
    p += 4;
    for (const id of ids) {
      view.setFloat64(p, id, true);
      p += 8;
    }
  }
  return p;
}

function readConfState(view: DataView, p: number): { cs: ConfState; p: number } {
  assert(p + 1 <= view.byteLength, 'conf state truncated');
  const autoLeave = view.getUint8(p) === 1;
  p += 1;
  const lists: number[][] = [];
  for (let k = 0; k < 4; k++) {
    assert(p + 4 <= view.byteLength, 'conf state truncated');
    const n = view.getUint32(p, true);
    p += 4;
    assert(p + 8 * n <= view.byteLength, 'conf state truncated');
    const ids: number[] = [];
    for (let i = 0; i < n; i++) ids.push(view.getFloat64(p + 8 * i, true));
    p += 8 * n;
    lists.push(ids);
  }
  return { cs: { voters: lists[0]!, learners: lists[1]!, votersOutgoing: lists[2]!, learnersNext: lists[3]!, autoLeave }, p };
}

/** encodeConfState / decodeConfState store a ConfState in the raft_state table. */
export function encodeConfState(cs: ConfState): Buffer {
  const buf = Buffer.allocUnsafe(confStateSize(cs));
  writeConfState(new DataView(buf.buffer, buf.byteOffset, buf.byteLength), 0, cs);
  return buf;
}

export function decodeConfState(b: Uint8Array): ConfState {
  const r = readConfState(new DataView(b.buffer, b.byteOffset, b.byteLength), 0);
  assert(r.p === b.byteLength, 'conf state has trailing bytes');
  return r.cs;
}
