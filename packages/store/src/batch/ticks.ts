import type { StoreConfig } from '../config';
import type { StoreContext } from '../context';
import { TICK } from '../router/message';
import { raftLogGc, purgeLog } from '../operation/command/admin/compact-log';
import { mergeCheck } from '../operation/command/admin/merge';
import { splitCheck } from '../operation/command/admin/split';
import { loadSplitCheck } from '../operation/load-split-driver';
import { regionHeartbeats, storeHeartbeat } from '../operation/pd';
import { expireReads } from '../operation/query';
import { guardStorage } from '../storage-fault';
import { mvccGc } from '../gc/worker';

/**
 * PeriodicTask is one entry of the store's tick table (TiKV's PeerTick /
 * StoreTick): what runs, and how often, from StoreConfig. Every periodic
 * piece of store work is listed here and nowhere else.
 */
export interface PeriodicTask {
  name: string;
  intervalMs(cfg: StoreConfig): number;
  run(ctx: StoreContext): void;
}

export const TICKS: readonly PeriodicTask[] = [
  { name: 'raft', intervalMs: (c) => c.tickIntervalMs, run: tickPeers },
  { name: 'storeHeartbeat', intervalMs: (c) => c.storeHeartbeatIntervalMs, run: (ctx) => void storeHeartbeat(ctx) },
  { name: 'regionHeartbeats', intervalMs: (c) => c.regionHeartbeatIntervalMs, run: (ctx) => void regionHeartbeats(ctx) },
  { name: 'splitCheck', intervalMs: (c) => c.splitCheckIntervalMs, run: splitCheck },
  { name: 'loadSplitCheck', intervalMs: (c) => c.loadSplitWindowMs, run: loadSplitCheck },
  { name: 'raftLogGc', intervalMs: (c) => c.raftLogGcIntervalMs, run: raftLogGc },
  { name: 'expireReads', intervalMs: (c) => c.expireReadsIntervalMs, run: expireReads },
  { name: 'mergeCheck', intervalMs: (c) => c.mergeCheckIntervalMs, run: mergeCheck },
  { name: 'purgeLog', intervalMs: (c) => c.purgeLogIntervalMs, run: purgeLog },
  { name: 'mvccGc', intervalMs: (c) => c.gcIntervalMs, run: mvccGc },
];

/** tickPeers queues one raft tick for every awake peer (hibernated peers cost nothing). */
function tickPeers(ctx: StoreContext): void {
  if (ctx.closed) return;
  ctx.metrics.tickRounds++;
  for (const p of ctx.peers.values()) {
    if (p.hibernating) continue;
    if (p.mailbox.length < ctx.config.mailboxCapacity) p.mailbox.push(TICK);
    ctx.dirty.add(p);
  }
  ctx.schedulePoll();
}

/**
 * startTicks starts a timer per task; the returned function stops them
 * all. A task that meets a storage failure (log purge on a full disk)
 * stops the store cleanly instead of throwing from a timer.
 */
export function startTicks(ctx: StoreContext, tasks: readonly PeriodicTask[] = TICKS): () => void {
  const timers = tasks.map((t) => setInterval(() => guardStorage(ctx, () => t.run(ctx)), t.intervalMs(ctx.config)));
  return () => {
    for (const t of timers) clearInterval(t);
  };
}
