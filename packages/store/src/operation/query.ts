import { compareEndKeys, compareKeys, keyInRegion, type KvRead, type TxnRead } from '@flotilla/proto';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import type { Callback, CommandResult } from '../raft/proposal';
import { err } from './command/command';
import { execTxnRead, memLockBlocking, memLockError, MEM_LOCK_WAIT_MS } from './txn-read';

/**
 * LEASE_DRIFT_MARGIN: the leader lease is this fraction shorter than the
 * election timeout, for clock-rate differences between stores (TiKV keeps
 * its 9 s max lease under a 10 s election timeout for the same reason).
 */
export const LEASE_DRIFT_MARGIN = 0.2;

/**
 * startRead serves a linearizable read. By default (readOnly 'safe') raft
 * confirms leadership with a heartbeat round (ReadIndex) and the read is
 * served once apply reaches the returned index. With 'lease-based' reads
 * the leader skips that round while its lease is valid and reads at its
 * commit index.
 *
 * The lease is the store's, in a monotonic clock, not raft's: a round
 * that a quorum confirmed, asked for at time t, proves that no other
 * leader can be elected before t + election timeout (each follower that
 * answered heard from this leader after t and, with check-quorum, refuses
 * votes for an election timeout after that). The lease runs to t +
 * election timeout × (1 − LEASE_DRIFT_MARGIN). Counting it in raft ticks
 * instead (raft-core's own lease mode) is unsafe: a stalled process does
 * not tick, and wakes up trusting a lease that expired long ago
 * (packages/sim/STORE_BUGS.md #6). The lease ends early on a new term, a
 * leader transfer, a membership change, a split or a merge; and once this
 * leader has sent a MsgTimeoutNow it stays off for the rest of the term
 * (raft-core's Raft.leaseForfeited says why: a late MsgTimeoutNow elects a
 * new leader past the followers' lease even after the transfer was given up).
 */
export function startRead(ctx: StoreContext, peer: Peer, read: KvRead, cb: Callback): void {
  const keys = read.type === 'get' ? [read.key] : read.type === 'batchGet' ? read.keys : [];
  for (const k of keys) if (!keyInRegion(k, peer.region)) return cb(err.keyNotInRegion(k, peer.region));
  queueRead(ctx, peer, cb, () => {
    cb(execRead(ctx, peer, read));
    return true;
  });
}

/**
 * startTxnRead serves a snapshot read of the transactional keyspace on the
 * same path as a raw read (ReadIndex or lease, the pending-read queue, the
 * epoch check). At serve time a 1PC memory lock of start_ts <= ts on a key
 * the read covers makes it wait (operation/txn.ts says why that keeps it
 * sound); a read that waited MEM_LOCK_WAIT_MS answers KeyIsLocked instead,
 * which the reader resolves through the primary like any lock.
 */
export function startTxnRead(ctx: StoreContext, peer: Peer, read: TxnRead, cb: Callback): void {
  const keys = read.type === 'get' ? [read.key] : read.type === 'batchGet' ? read.keys : [];
  for (const k of keys) if (!keyInRegion(k, peer.region)) return cb(err.keyNotInRegion(k, peer.region));
  let blockedSince: number | undefined;
  queueRead(ctx, peer, cb, () => {
    const m = memLockBlocking(ctx, peer, read);
    if (m !== undefined) {
      const now = ctx.monoNow();
      blockedSince ??= now;
      if (now - blockedSince < MEM_LOCK_WAIT_MS) return false;
      cb(memLockError(m));
      return true;
    }
    cb(execTxnRead(ctx, peer, read));
    return true;
  });
}

/** queueRead puts a read in the peer's pending-read queue behind a ReadIndex round (or serves it under the lease). */
export function queueRead(ctx: StoreContext, peer: Peer, cb: Callback, exec: () => boolean): void {
  if (peer.reads.length >= ctx.config.maxPendingReadsPerPeer) return cb(err.busy('too many pending reads for this region'));
  const ctxBytes = new Uint8Array(8);
  new DataView(ctxBytes.buffer).setFloat64(0, ++ctx.readCtxSeq);
  const readCtx = Buffer.from(ctxBytes).toString('hex');
  const version = peer.region.epoch.version;
  const leaseIndex = leaseReadIndex(ctx, peer);
  peer.reads.push({
    ctx: readCtx,
    index: leaseIndex,
    startedTick: peer.ticks,
    issuedAtMs: ctx.monoNow(),
    serve: () => {
      if (peer.region.epoch.version !== version) {
        cb(err.epochNotMatch([peer.region]));
        return true;
      }
      return exec();
    },
    fail: (leader) => cb(err.notLeader(peer.regionId, leader)),
  });
  ctx.metrics.reads++;
  if (leaseIndex > 0) {
    ctx.metrics.leaseReads++;
    serveReads(peer);
    if (peer.reads.length > 0) ctx.markDirty(peer);
    return;
  }
  peer.raw.readIndex(ctxBytes);
  ctx.markDirty(peer);
}

/** leaseReadIndex returns the commit index to read at when lease-based reads are on and the lease holds, else 0. */
export function leaseReadIndex(ctx: StoreContext, peer: Peer): number {
  if (ctx.config.readOnly !== 'lease-based' || !peer.isLeader) return 0;
  const r = peer.raw.raft;
  if (peer.leaseTerm !== r.term || r.leadTransferee !== 0 || r.leaseForfeited || ctx.monoNow() >= peer.leaseUntilMs) return 0;
  return r.raftLog.committed;
}

/** renewLease extends a leader's lease after a quorum confirmed a read round asked for at issuedAtMs. */
export function renewLease(ctx: StoreContext, peer: Peer, issuedAtMs: number): void {
  if (ctx.config.readOnly !== 'lease-based' || !peer.isLeader) return;
  const r = peer.raw.raft;
  if (r.leadTransferee !== 0 || r.leaseForfeited) return;
  const until = issuedAtMs + ctx.config.electionTicks * ctx.config.tickIntervalMs * (1 - LEASE_DRIFT_MARGIN);
  if (peer.leaseTerm !== r.term) {
    peer.leaseTerm = r.term;
    peer.leaseUntilMs = until;
  } else if (until > peer.leaseUntilMs) peer.leaseUntilMs = until;
}

export function expireLease(peer: Peer): void {
  peer.leaseUntilMs = 0;
}

/** onReadStates matches the read indexes raft returned to the waiting reads, and renews the lease from each confirmed round. */
export function onReadStates(ctx: StoreContext, peer: Peer, readStates: { index: number; requestCtx: Uint8Array }[]): void {
  for (const rs of readStates) {
    const readCtx = Buffer.from(rs.requestCtx).toString('hex');
    for (const w of peer.reads) {
      if (w.ctx !== readCtx || w.index !== 0) continue;
      w.index = rs.index;
      renewLease(ctx, peer, w.issuedAtMs);
    }
  }
}

export function execRead(ctx: StoreContext, peer: Peer, read: KvRead): CommandResult {
  switch (read.type) {
    case 'get': {
      const value = ctx.sm.get(read.key) ?? null;
      peer.flow.read(1, value?.length ?? 0);
      return { ok: true, value };
    }
    case 'batchGet': {
      const values = read.keys.map((k) => ctx.sm.get(k) ?? null);
      let bytes = 0;
      for (const v of values) bytes += v?.length ?? 0;
      peer.flow.read(values.length, bytes);
      return { ok: true, values };
    }
    case 'scan': {
      const r = peer.region;
      const start = compareKeys(read.startKey, r.startKey) < 0 ? r.startKey : read.startKey;
      const end = compareEndKeys(read.endKey, r.endKey) <= 0 ? read.endKey : r.endKey;
      if (end.length > 0 && compareKeys(start, end) >= 0) return { ok: true, pairs: [] };
      const pairs = ctx.sm.scan(start, end, read.limit);
      let bytes = 0;
      for (const p of pairs) bytes += p.key.length + p.value.length;
      peer.flow.read(pairs.length, bytes);
      return { ok: true, pairs };
    }
  }
}

/** serveReads answers every read whose index the apply has reached. */
export function serveReads(peer: Peer): void {
  if (peer.reads.length === 0) return;
  const applied = peer.apply.appliedIndex;
  const keep = [];
  for (const w of peer.reads) {
    if (w.index === 0 || w.index > applied || w.serve() === false) keep.push(w);
  }
  peer.reads = keep;
}

/** expireReads fails reads that waited more than two election timeouts (their leader is likely gone). */
export function expireReads(ctx: StoreContext): void {
  for (const p of ctx.peers.values()) {
    if (p.reads.length === 0) continue;
    const keep = [];
    for (const w of p.reads) {
      if (p.ticks - w.startedTick > ctx.config.electionTicks * 2) w.fail(p.leaderMeta());
      else keep.push(w);
    }
    p.reads = keep;
  }
}
