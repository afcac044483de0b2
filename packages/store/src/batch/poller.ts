import type { Ready } from '@flotilla/raft-core';
import { LogBatch } from '@flotilla/log-engine';
import { assert, type StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import { drainMailbox } from '../fsm/peer';
import { afterApply } from '../operation/command/admin';
import { catchUpSource } from '../operation/command/admin/merge';
import { applyEntries } from '../operation/command/apply';
import { ApplyBatch, type ApplyContext, type ApplyEffect } from '../operation/command/apply-context';
import { flushWriteBatch, matchProposal, type Response } from '../operation/command/propose';
import { sendHibernateNotice } from '../operation/hibernate';
import { serveReads } from '../operation/query';
import { applyCommitted, handleReadyBeforePersist } from '../operation/ready/ready';
import { sendRaft } from '../operation/send';
import { guardStorage } from '../storage-fault';
import { err } from '../operation/command/command';
import { publishWatchRound, watchView } from '../watch/hub';
import type { PersistAck } from '../raft/inflight-writes';
import { actOnDurable, issueRoundWrite, waitForIssued } from './log-pipeline';

/** PeerReady is one peer's Ready of this round. */
interface PeerReady {
  peer: Peer;
  rd: Ready;
}

/**
 * RoundLog is the round's one log batch and what became of it. Invariant:
 * it is written, issued to the writer thread (the async pipeline), or
 * deferred exactly once (or is empty), before anything of the round is
 * applied.
 */
class RoundLog {
  fate: 'pending' | 'written' | 'issued' | 'deferred' | 'empty' = 'pending';
  constructor(readonly batch: LogBatch) {}
  settle(fate: 'written' | 'issued' | 'deferred' | 'empty'): void {
    assert(this.fate === 'pending', `round log batch settled twice (${this.fate}, then ${fate})`);
    this.fate = fate;
  }
}

/** AppliedRound is what applying the round produced, to be answered and acted on after the KV write. */
interface AppliedRound {
  responses: Response[];
  effects: ApplyEffect[];
  needApplyAdvance: Peer[];
}

/**
 * poll is one round of the batch system (raftstore-v2's begin /
 * handle_normal / end): collect every dirty peer's Ready, persist them
 * with ONE log write, apply committed entries in ONE KV transaction, then
 * answer clients, act on admin effects and advance. Messages leave with
 * one transport flush after collecting and one at the end. With
 * writePipeline 'async' the log write is issued to the writer thread and
 * the round does not wait for it (batch/log-pipeline.ts): it applies what
 * is already durable, and a later round acts on the write once it is.
 *
 * A storage failure anywhere in the round (a full disk, a damaged file)
 * stops the store (storage-fault.ts) where it happened: a round whose log
 * write failed applies nothing, answers nobody and advances no peer.
 */
export function poll(ctx: StoreContext): void {
  if (ctx.closed || ctx.polling) return;
  guardStorage(ctx, () => pollRound(ctx));
}

function pollRound(ctx: StoreContext): void {
  ctx.polling = true;
  const started = ctx.now();
  const pipelined = ctx.config.writePipeline === 'async';
  try {
    if (pipelined) actOnDurable(ctx);
    const round = takeRound(ctx);
    const log = new RoundLog(takeLogBatch(ctx));
    const readies = collectReadies(ctx, round, log.batch);
    // Ready.messages may leave before this round's log write is durable
    // (a leader's MsgApp, heartbeats): flushing them now lets followers
    // append and fsync while the leader fsyncs, instead of after.
    ctx.transport.flush();
    if (pipelined) issueRound(ctx, readies, log);
    else persistRound(ctx, readies, log);
    assert(log.fate !== 'pending', 'round log batch neither written nor deferred before apply');
    const applied = applyRound(ctx, readies, pipelined);
    finishRound(ctx, round, readies, applied);
  } finally {
    ctx.polling = false;
    ctx.metrics.observePoll(ctx.now() - started);
  }
  if (ctx.closed) return;
  if (ctx.dirty.size > 0 || !ctx.pendingLog.isEmpty) {
    if (!ctx.pendingLog.isEmpty && ctx.dirty.size === 0) flushPending(ctx, pipelined);
    else ctx.schedulePoll();
  }
}

/** flushPending writes what applies queued for the log (compactions) when no round follows; the pipeline issues it like a round's write. */
function flushPending(ctx: StoreContext, pipelined: boolean): void {
  if (!pipelined) return ctx.flushPendingLog();
  guardStorage(ctx, () => {
    const b = ctx.pendingLog;
    ctx.pendingLog = new LogBatch();
    issueRoundWrite(ctx, b, []);
  });
}

/** takeRound picks at most maxPeersPerPoll dirty peers, so hot Regions cannot starve others. */
function takeRound(ctx: StoreContext): Peer[] {
  const round: Peer[] = [];
  for (const p of ctx.dirty) {
    round.push(p);
    if (round.length >= ctx.config.maxPeersPerPoll) break;
  }
  for (const p of round) ctx.dirty.delete(p);
  ctx.metrics.pollRounds++;
  return round;
}

/** takeLogBatch starts the round's log batch from the queued and deferred changes. */
function takeLogBatch(ctx: StoreContext): LogBatch {
  const logBatch = ctx.pendingLog;
  ctx.pendingLog = new LogBatch();
  for (const d of ctx.deferredLog) logBatch.ops.push(...d.ops);
  ctx.deferredLog = [];
  return logBatch;
}

/** collectReadies steps each peer's mailbox and takes its Ready into the round's log batch. */
function collectReadies(ctx: StoreContext, round: Peer[], logBatch: LogBatch): PeerReady[] {
  const readies: PeerReady[] = [];
  for (const peer of round) {
    drainMailbox(ctx, peer);
    if (ctx.peers.get(peer.regionId) !== peer) continue; // destroyed meanwhile (failPending answered its batch)
    flushWriteBatch(ctx, peer);
    if (!peer.raw.hasReady()) continue;
    const rd = peer.raw.ready();
    handleReadyBeforePersist(ctx, peer, rd, logBatch);
    readies.push({ peer, rd });
  }
  return readies;
}

/**
 * persistRound writes the round's log batch with one fsync, or defers it.
 * The write goes through ctx.writeLog, which makes the KV engine durable
 * first when the batch compacts a log or installs a snapshot (this
 * round's ingest included).
 * A round whose only change is commit indexes need not fsync (etcd's
 * mustSync): the commit index is recomputed after a crash. Such a batch
 * rides along with the next write that must be durable. When the write
 * throws (a StorageFaultError: the disk is full, the file is damaged),
 * nothing of the batch is on disk and the log engine is poisoned; the
 * throw leaves the round before applyRound, so no peer is advanced past
 * what is durable and no persisted-only message is sent.
 */
function persistRound(ctx: StoreContext, readies: PeerReady[], log: RoundLog): void {
  const batch = log.batch;
  if (batch.isEmpty) return log.settle('empty');
  if (!readies.some((r) => r.rd.mustSync) && batch.approximateBytes <= ctx.config.logDeferMaxBytes) {
    ctx.deferredLog.push(batch);
    return log.settle('deferred');
  }
  const t0 = ctx.now();
  ctx.writeLog(batch);
  ctx.metrics.logWrites++;
  ctx.metrics.observeWrite(ctx.now() - t0);
  log.settle('written');
}

/**
 * issueRound is persistRound for the async pipeline: the batch goes to the
 * writer thread with every Ready of the round waiting on it (their
 * persisted messages leave and raft hears of durability once it
 * completes), or, when the round need not fsync, is deferred as on the
 * sync path and its Readies' messages wait for the newest write issued.
 */
function issueRound(ctx: StoreContext, readies: PeerReady[], log: RoundLog): void {
  const batch = log.batch;
  const acks = (markPersisted: boolean): PersistAck[] => readies.map(({ peer, rd }) => ({ peer, readyNumber: rd.number, markPersisted, messages: rd.persistedMessages }));
  const mustSync = readies.some((r) => r.rd.mustSync);
  if (batch.isEmpty || (!mustSync && batch.approximateBytes <= ctx.config.logDeferMaxBytes)) {
    // Invariant: a Ready with entries or a snapshot is mustSync, so it never lands here (raft would wait for it forever).
    assert(!readies.some((r) => r.rd.entries.length > 0 || r.rd.snapshot !== undefined), 'a Ready with entries or a snapshot was deferred on the async pipeline');
    if (batch.isEmpty) log.settle('empty');
    else {
      ctx.deferredLog.push(batch);
      log.settle('deferred');
    }
    return waitForIssued(ctx, acks(false));
  }
  for (const { peer, rd } of readies) peer.raw.advanceAppendAsync(rd);
  issueRoundWrite(ctx, batch, acks(true));
  log.settle('issued');
}

/**
 * applyRound sends what waited for persistence, advances, and applies
 * committed entries into one KV transaction. On the async pipeline the
 * persisted messages wait for the write instead (issueRound), and the
 * committed entries are the Ready's: raft hands out only locally durable ones.
 */
function applyRound(ctx: StoreContext, readies: PeerReady[], pipelined: boolean): AppliedRound {
  const out: AppliedRound = { responses: [], effects: [], needApplyAdvance: [] };
  const apply = newApplyContext(ctx, out);
  for (const { peer, rd } of readies) {
    if (pipelined) {
      if (rd.committedEntries.length > 0) {
        applyCommitted(ctx, peer, rd.committedEntries, apply);
        out.needApplyAdvance.push(peer);
      }
      continue;
    }
    for (const m of rd.persistedMessages) sendRaft(ctx, peer, m);
    const light = peer.raw.advance(rd);
    for (const m of light.messages) sendRaft(ctx, peer, m);
    if (rd.committedEntries.length > 0) applyCommitted(ctx, peer, rd.committedEntries, apply);
    if (light.committedEntries.length > 0) {
      applyCommitted(ctx, peer, light.committedEntries, apply);
      out.needApplyAdvance.push(peer);
    }
  }
  if (!apply.batch.batch.isEmpty) writeApplied(ctx, apply, out);
  // Feeds get the round's write records once they are written, before any later probe computes a resolved ts.
  publishWatchRound(ctx);
  return out;
}

/**
 * writeApplied commits the round's applies in one KV transaction. When the
 * write fails (a full disk), nothing of it is on disk: the answers it would
 * have released become Undetermined, with the reason, since their entries
 * are durable in the log and apply again when the store restarts; then the
 * error goes on up (the store stops, storage-fault.ts).
 */
function writeApplied(ctx: StoreContext, apply: ApplyContext, out: AppliedRound): void {
  const t0 = ctx.now();
  try {
    ctx.sm.write(apply.batch.batch);
  } catch (e) {
    const why = `applying it failed: ${(e as Error).message}`;
    for (const r of out.responses.splice(0)) r.cb(err.undetermined(r.regionId, why));
    throw e;
  }
  ctx.metrics.kvWrites++;
  ctx.metrics.observeApply(ctx.now() - t0);
}

function newApplyContext(ctx: StoreContext, out: AppliedRound): ApplyContext {
  const apply: ApplyContext = {
    batch: new ApplyBatch(ctx.sm),
    effects: out.effects,
    storeId: ctx.storeId,
    respond: (peer, index, term, result) => matchProposal(peer, index, term, result, out.responses),
    catchUpSource: (sourceId, commit, entries) => catchUpSource(ctx, sourceId, commit, entries, apply),
    // A split-off Region already initialized here (from a newer snapshot) or
    // tombstoned (removed since) must keep its own state (TiKV does the same).
    splitRegionExists: (regionId) => ctx.peers.get(regionId)?.initialized === true || ctx.tombstones.has(regionId),
    applyEntries: (peer, entries) => applyEntries(peer, entries, apply),
    mvccFor: (peer) => watchView(ctx, peer, apply.batch.mvcc),
  };
  return apply;
}

/** finishRound answers clients, acts on admin effects, serves reads and sends the round's last messages. */
function finishRound(ctx: StoreContext, round: Peer[], readies: PeerReady[], applied: AppliedRound): void {
  for (const p of applied.needApplyAdvance) p.raw.advanceApply();
  for (const r of applied.responses) r.cb(r.result);
  ctx.metrics.observeResponses(applied.responses, ctx.now());
  for (const e of applied.effects) afterApply(ctx, e);
  for (const p of round) if (p.hibernateNoticePending) sendHibernateNotice(ctx, p);
  for (const { peer } of readies) {
    serveReads(peer);
    // Anything left over (more committed entries, messages) is for the next round.
    if (peer.raw.hasReady() || peer.mailbox.length > 0) ctx.dirty.add(peer);
  }
  ctx.transport.flush();
}
