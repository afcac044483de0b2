import type { LogBatch } from '@flotilla/log-engine';
import type { StoreContext } from '../context';
import { sendRaft } from '../operation/send';
import { guardStorage } from '../storage-fault';
import type { PersistAck } from '../raft/inflight-writes';

// log-pipeline: the async write pipeline (StoreConfig.writePipeline =
// 'async', issue #19 item 1). A poll round hands its log batch to the log
// engine's writer thread and goes on; the event loop keeps stepping,
// sending and applying. The Ready contract, and how it is kept:
//
// - Entries and hard state are durable before any message that depends on
//   them leaves: a Ready's persistedMessages (MsgAppResp, vote answers) ride
//   with the write of their round and are sent only once it completed
//   (actOnDurable). A Ready that wrote nothing itself (its changes were
//   commit indexes only) may still answer for entries an earlier write
//   carries, so its messages wait for the newest write issued (waitForIssued).
// - A leader's MsgApp and heartbeats (Ready.messages) leave at once, before
//   its own append is durable: the leader counts itself toward the commit
//   quorum only once raft is told the append is durable (onPersistReady).
// - Applying never runs ahead of local durability: raft-core hands out as
//   committed only entries at or below its persisted index
//   (RaftLog.applyHi = min(committed, persisted)), and persisted moves only
//   in onPersistReady, called here once the write is durable. So the KV
//   engine, written without fsync, never holds an entry the local log could
//   lose in a crash (the same argument as the sync path's).
// - Snapshot installs and compactions keep their order with the KV engine:
//   StoreContext.writeLogAsync makes the KV engine durable before it issues
//   a batch that compacts or installs a snapshot, as writeLog does.
// - Writes complete in issue order (one writer thread, one queue), a
//   blocking ctx.writeLog after them included; so durability of one write
//   is durability of every earlier one, and acks are acted on from the head.
// - In-flight writes are bounded (maxInflightLogWrites): at the bound the
//   round writes on this thread, which waits for the ones before it.
// - A crash between issue and completion loses nothing acknowledged: no
//   client answer, no MsgAppResp and no vote depends on a write that has not
//   completed.

/**
 * issueRoundWrite hands a round's log batch to the writer thread; acks
 * are acted on once it is durable. At the in-flight bound, or on a log
 * engine without a writer thread (writer 'sync', whose writeAsync would
 * complete inside the call anyway), it writes on this thread instead and
 * acts on everything at once. A storage failure while issuing (syncing the
 * KV engine first) throws into the round, as the sync path does.
 */
export function issueRoundWrite(ctx: StoreContext, batch: LogBatch, acks: PersistAck[]): void {
  const q = ctx.inflightWrites;
  const t0 = ctx.now();
  ctx.metrics.logWrites++;
  if (q.size >= ctx.config.maxInflightLogWrites || ctx.log.options.writer !== 'worker') {
    ctx.writeLog(batch);
    ctx.metrics.observeWrite(ctx.now() - t0);
    q.markAllDurable();
    q.add(acks, t0).durable = true;
    actOnDurable(ctx);
    return;
  }
  const done = ctx.writeLogAsync(batch);
  const w = q.add(acks, t0);
  done.then(
    () => {
      w.durable = true;
      if (ctx.closed) return;
      ctx.metrics.observeWrite(ctx.now() - w.issuedAt);
      for (const a of w.acks) ctx.dirty.add(a.peer);
      ctx.schedulePoll();
    },
    (e: unknown) => onWriteFailed(ctx, e),
  );
}

/**
 * waitForIssued holds Readies whose messages depend on writes already
 * issued (not on one of their own) until the newest of those is durable;
 * with nothing in flight they leave now.
 */
export function waitForIssued(ctx: StoreContext, acks: PersistAck[]): void {
  const last = ctx.inflightWrites.newest();
  for (const a of acks) {
    if (a.messages.length === 0) continue;
    if (last !== undefined) last.acks.push(a);
    else for (const m of a.messages) sendRaft(ctx, a.peer, m);
  }
}

/**
 * actOnDurable tells raft which Readies are durable, in issue order, and
 * sends the messages that waited for them; the peers go into the next
 * round (new committed entries, the leader's commit broadcast). A peer
 * destroyed or replaced meanwhile is skipped. Runs at the start of a
 * round, inside it, never from a callback.
 */
export function actOnDurable(ctx: StoreContext): void {
  if (ctx.closed) return;
  for (const w of ctx.inflightWrites.takeDurable()) {
    for (const a of w.acks) {
      const peer = a.peer;
      if (ctx.peers.get(peer.regionId) !== peer) continue;
      if (a.markPersisted) peer.raw.onPersistReady(a.readyNumber);
      for (const m of a.messages) sendRaft(ctx, peer, m);
      ctx.dirty.add(peer);
    }
  }
}

/**
 * onWriteFailed: an issued write failed on the writer thread (a full disk,
 * a damaged file). Nothing it carried was acted on; the store stops as on
 * the sync path (storage-fault.ts), and any other error is a bug that
 * crashes the process. A store already closing only logs it: nothing
 * acknowledged depended on the write.
 */
function onWriteFailed(ctx: StoreContext, e: unknown): void {
  if (ctx.closed) {
    ctx.logger.warn({ storeId: ctx.storeId, err: (e as Error).message }, 'a log write in flight failed while the store was stopping; nothing acknowledged depended on it');
    return;
  }
  ctx.inflightWrites.clear();
  guardStorage(ctx, () => {
    throw e;
  });
}
