import { ProposalDroppedError, StateRole, type ConfChangeV2 } from '@flotilla/raft-core';
import { describeRegionError, type KvWrite, type RequestHeader } from '@flotilla/proto';
import { assert, type StoreContext } from '../../context';
import type { Peer } from '../../raft/peer';
import type { Callback, CommandResult } from '../../raft/proposal';
import { writesBytes, type BatchedCmd } from '../../raft/write-batch';
import { wake } from '../hibernate';
import { encodeCommand, err } from './command';

/** Response is a proposal's answer, collected during apply and delivered after the round's KV write. */
export interface Response {
  regionId: number;
  cb: Callback;
  result: CommandResult;
  at: number;
}

/**
 * proposeWrite takes a leader's client write (keys already checked against
 * the Region) into the peer's proposal batch, which goes out as one entry
 * at the end of the peer's mailbox this round (flushWriteBatch). With
 * proposalBatchMaxCommands 1 it is proposed at once, alone, as before.
 */
export function proposeWrite(ctx: StoreContext, peer: Peer, header: RequestHeader, writes: KvWrite[], cb: Callback): void {
  const cfg = ctx.config;
  if (cfg.proposalBatchMaxCommands <= 1) return propose(ctx, peer, encodeCommand({ header, writes }), cb);
  const bytes = writesBytes(writes);
  if (!peer.writeBatch.fits(bytes, cfg.proposalBatchMaxCommands, cfg.proposalBatchMaxBytes)) flushWriteBatch(ctx, peer);
  peer.writeBatch.add(header, writes, cb, bytes);
  ctx.markDirty(peer);
}

/**
 * flushWriteBatch proposes the peer's batched writes: one command alone in
 * the entry format every version reads, several as one BatchedCmd whose
 * apply answers each command with its own result. A failure of the entry
 * as a whole (not leader, busy, stale, an epoch change, undetermined)
 * answers every command of it with that same error.
 */
export function flushWriteBatch(ctx: StoreContext, peer: Peer): void {
  const b = peer.writeBatch.take();
  if (b === undefined) return;
  if (b.cbs.length === 1) return propose(ctx, peer, encodeCommand({ header: b.header, writes: b.commands[0]! }), b.cbs[0]!);
  const cmd: BatchedCmd = { header: b.header, writes: [], batch: b.commands };
  const cbs = b.cbs;
  ctx.metrics.proposalBatches++;
  ctx.metrics.batchedCommands += cbs.length;
  propose(ctx, peer, encodeCommand(cmd), (r) => {
    const each = r.ok ? r.batch : undefined;
    for (let i = 0; i < cbs.length; i++) cbs[i]!(each?.[i] ?? (r.ok ? { ok: true } : r));
  });
}

/**
 * propose appends a command to the Region's raft log; its callback is
 * answered when the entry applies. Raft's own role decides, not
 * peer.isLeader: that flag follows the soft state of the last Ready, and a
 * message earlier in the same mailbox drain (a higher term's vote or
 * append) may have made the peer a follower since. A follower's raft would
 * forward the proposal (the store also turns forwarding off), and the
 * callback would be filed at the follower's last index, where another
 * command's entry lands: answered with that command's result, or two
 * proposals at one index (the assert in addProposal; a store crashed on it
 * in bench:watch's idle-watchers case).
 */
export function propose(ctx: StoreContext, peer: Peer, data: Uint8Array, cb: Callback): void {
  const r = peer.raw.raft;
  if (r.state !== StateRole.Leader) return cb(notLeaderNow(peer));
  // Entries keep the order commands arrived in: a batch waiting on the peer goes first.
  if (peer.writeBatch.size > 0) flushWriteBatch(ctx, peer);
  if (peer.proposals.length >= ctx.config.maxPendingProposalsPerPeer) return cb(err.busy('too many pending proposals for this region'));
  wake(ctx, peer);
  try {
    peer.raw.propose(data);
  } catch (e) {
    if (e instanceof ProposalDroppedError) return cb(peer.isLeader ? err.busy(e.message) : err.notLeader(peer.regionId, peer.leaderMeta()));
    throw e;
  }
  addProposal(ctx, peer, r.raftLog.lastIndex(), r.term, cb);
  ctx.metrics.proposals++;
  ctx.markDirty(peer);
}

export function proposeConfChange(ctx: StoreContext, peer: Peer, cc: ConfChangeV2, context: Uint8Array, cb: Callback): void {
  const r = peer.raw.raft;
  if (r.state !== StateRole.Leader) return cb(notLeaderNow(peer));
  wake(ctx, peer);
  try {
    peer.raw.proposeConfChange(cc, context);
  } catch (e) {
    if (e instanceof ProposalDroppedError) return cb(err.busy(e.message));
    throw e;
  }
  addProposal(ctx, peer, r.raftLog.lastIndex(), r.term, cb);
  ctx.markDirty(peer);
}

/** notLeaderNow: NotLeader naming the leader raft knows now (peer.leaderId may still name this peer). */
function notLeaderNow(peer: Peer): CommandResult {
  const lead = peer.raw.raft.leaderId;
  return err.notLeader(peer.regionId, lead === 0 || lead === peer.peerId ? undefined : peer.peerById(lead));
}

/** addProposal records a proposal. Invariant: the queue is ascending by index (a leader appends at its last index). */
function addProposal(ctx: StoreContext, peer: Peer, index: number, term: number, cb: Callback): void {
  const tail = peer.proposals[peer.proposals.length - 1];
  assert(tail === undefined || tail.index < index, `region ${peer.regionId}: proposal at ${index} after one at ${tail?.index}`);
  peer.addProposal(index, term, cb, ctx.now());
}

/**
 * matchProposal answers the proposal of the entry that applied at (index,
 * term). Proposals at lower indexes whose entries did not apply as theirs
 * were replaced by another leader's entries: they get StaleCommand.
 */
export function matchProposal(peer: Peer, index: number, term: number, result: CommandResult, out: Response[]): void {
  const q = peer.proposals;
  while (q.length > 0) {
    const head = q[0]!;
    if (head.index > index) return;
    q.shift();
    const next = q[0];
    assert(next === undefined || next.index > head.index, `region ${peer.regionId}: proposal queue not ascending (${head.index}, ${next?.index})`);
    if (head.index === index && head.term === term) {
      out.push({ regionId: peer.regionId, cb: head.cb, result, at: head.proposedAtMs });
      return;
    }
    // The entry at head.index was replaced by another leader's entry.
    out.push({ regionId: peer.regionId, cb: head.cb, result: err.stale(), at: head.proposedAtMs });
  }
}

/**
 * failPending answers everything waiting on a peer that can no longer
 * follow it. Proposals are already in the Raft log and may still commit
 * under another leader, so they get Undetermined (a client must not send
 * a write again); reads get `result` (NotLeader and the like: safe to retry).
 */
export function failPending(peer: Peer, result: CommandResult): void {
  // Writes still batching were never proposed: they get the result itself (safe to retry).
  const batched = peer.writeBatch.take();
  if (batched) for (const cb of batched.cbs) cb(result);
  const props = peer.proposals;
  peer.proposals = [];
  const why = result.ok ? 'lost track of the proposal' : describeRegionError(result.error);
  for (const p of props) p.cb(err.undetermined(peer.regionId, why));
  const reads = peer.reads;
  peer.reads = [];
  for (const r of reads) r.fail(peer.leaderMeta());
}
