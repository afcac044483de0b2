import { compareEndKeys, compareKeys, type TxnRead, type VersionedPair } from '@flotilla/proto';
import type { StoreContext } from '../context';
import type { MemLock } from '../mem-locks';
import type { Peer } from '../raft/peer';
import type { CommandResult } from '../raft/proposal';
import { readBelowSafePoint } from '../gc/state';

/** MEM_LOCK_WAIT_MS: how long a snapshot read waits for a 1PC's memory lock before it answers KeyIsLocked. */
export const MEM_LOCK_WAIT_MS = 1_000;
/** MEM_LOCK_TTL_MS: the TTL a KeyIsLocked built from a memory lock reports (the reader waits that long before it rolls the primary back). */
const MEM_LOCK_TTL_MS = 3_000;

/** clip narrows [start, end) to the Region (an empty end is unbounded); undefined when nothing is left. */
function clip(peer: Peer, start: Uint8Array, end: Uint8Array): [Uint8Array, Uint8Array] | undefined {
  const r = peer.region;
  const s = compareKeys(start, r.startKey) < 0 ? r.startKey : start;
  const e = compareEndKeys(end, r.endKey) <= 0 ? end : r.endKey;
  if (e.length > 0 && compareKeys(s, e) >= 0) return undefined;
  return [s, e];
}

/** memLockBlocking: a memory lock of start_ts <= ts on a key the read covers, if any. */
export function memLockBlocking(ctx: StoreContext, peer: Peer, read: TxnRead): MemLock | undefined {
  const t = ctx.memLocks;
  if (t.size === 0) return undefined;
  switch (read.type) {
    case 'get':
      return t.blockingKey(read.key, read.ts);
    case 'batchGet':
      for (const k of read.keys) {
        const m = t.blockingKey(k, read.ts);
        if (m !== undefined) return m;
      }
      return undefined;
    case 'scan': {
      const c = clip(peer, read.startKey, read.endKey);
      return c === undefined ? undefined : t.blockingRange(c[0], c[1], read.ts);
    }
  }
}

/** memLockError answers a read that waited too long for a memory lock with a KeyIsLocked on its primary. */
export function memLockError(m: MemLock): CommandResult {
  const lock = { key: m.keys[0]!, primary: m.primary, startTs: m.startTs, ttlMs: MEM_LOCK_TTL_MS, kind: 'put' as const, minCommitTs: 0n, txnSize: m.keys.length };
  return { ok: true, txn: { type: 'read', pairs: [], errors: [{ type: 'KeyIsLocked', lock }] } };
}

/** execTxnRead reads the transactional keyspace at ts (kv-engine mvcc/reader.ts); a scan is clipped to the Region like a raw one. */
export function execTxnRead(ctx: StoreContext, peer: Peer, read: TxnRead): CommandResult {
  const sp = readBelowSafePoint(ctx, peer, read.ts);
  if (sp !== undefined) return { ok: false, error: { type: 'InvalidRequest', message: `read ts ${read.ts} is below the GC safe point ${sp}: versions it needs may be gone (the snapshot is older than the GC life time; read at a newer ts)` } };
  let r: { pairs: VersionedPair[]; errors: import('@flotilla/proto').KeyError[] };
  switch (read.type) {
    case 'get':
      r = ctx.sm.snapshotGet([read.key], read.ts);
      break;
    case 'batchGet':
      r = ctx.sm.snapshotGet(read.keys, read.ts);
      break;
    case 'scan': {
      const c = clip(peer, read.startKey, read.endKey);
      r = c === undefined ? { pairs: [], errors: [] } : ctx.sm.snapshotScan(c[0], c[1], read.limit, read.ts, read.keyOnly ?? false);
      break;
    }
  }
  let bytes = 0;
  for (const p of r.pairs) bytes += p.key.length + p.value.length;
  peer.flow.read(r.pairs.length, bytes);
  return { ok: true, txn: { type: 'read', pairs: r.pairs, errors: r.errors } };
}
