import { compareKeys, type RaftCmdRequest } from '@flotilla/proto';
import type { GcPlan } from '@flotilla/kv-engine';
import type { StoreContext } from '../context';
import { encodeCommand, err } from '../operation/command/command';
import { propose } from '../operation/command/propose';
import type { Peer } from '../raft/peer';
import type { CommandResult } from '../raft/proposal';
import type { GcCommand, RaftCmdWithGc } from './command';
import { gcState, type GcState } from './state';

// The store's GC worker (TiKV's gc_worker, driven by placement's safe
// point). Every gcIntervalMs (batch/ticks.ts) it asks placement for the
// effective safe point, passing its progress along, then walks the Regions
// it leads: for each one not yet done at that safe point it plans a batch
// of at most gcBatchRows write records from its applied state, proposes the
// deletes through the Region's Raft log, waits for them to apply, and goes
// on from where the batch stopped, yielding to the event loop between
// batches. One pass at a time; a Region whose leadership or range moves
// mid-pass is picked up by the next pass.

/** GcProposal: a peer message carrying one planned batch into the poll round (router/message.ts 'proposeGc'). */
export interface GcProposal {
  kind: 'proposeGc';
  epochVersion: number;
  gc: GcCommand;
  cb: (r: CommandResult) => void;
}

/**
 * GcPlanner is what a state machine offers GC: one bounded batch of rows
 * below a safe point (KvEngineStateMachine, over kv-engine mvcc/gc.ts). A
 * state machine without it (a test double) simply runs no GC.
 */
export interface GcPlanner {
  gcPlan(startKey: Uint8Array, endKey: Uint8Array, safePoint: bigint, maxRows: number): GcPlan;
}

function plannerOf(ctx: StoreContext): GcPlanner | undefined {
  const sm = ctx.sm as Partial<GcPlanner>;
  return typeof sm.gcPlan === 'function' ? (sm as GcPlanner) : undefined;
}

/** mvccGc is the periodic task: start a pass unless one is running (or placement cannot tell the safe point, or the state machine has no MVCC). */
export function mvccGc(ctx: StoreContext): void {
  const st = gcState(ctx);
  const pd = ctx.pd as { getGcSafePoint?: (p?: { storeId: number; safePoint: bigint; regionsDone: number; versionsRemoved: number }) => Promise<bigint> };
  if (ctx.closed || st.running || pd.getGcSafePoint === undefined || plannerOf(ctx) === undefined) return;
  st.running = true;
  void runPass(ctx, st, pd.getGcSafePoint.bind(ctx.pd))
    .catch((e: unknown) => ctx.logger.warn({ err: (e as Error).message }, 'GC pass failed; the next one retries'))
    .finally(() => (st.running = false));
}

async function runPass(ctx: StoreContext, st: GcState, getSafePoint: (p: { storeId: number; safePoint: bigint; regionsDone: number; versionsRemoved: number }) => Promise<bigint>): Promise<void> {
  const led = [...ctx.peers.values()].filter((p) => p.isLeader && p.initialized);
  const regionsDone = led.filter((p) => (st.doneAt.get(p.regionId) ?? -1n) >= st.safePoint).length;
  const sp = await getSafePoint({ storeId: ctx.storeId, safePoint: st.safePoint, regionsDone, versionsRemoved: st.versionsRemoved });
  if (sp > st.safePoint) st.safePoint = sp;
  if (st.safePoint === 0n) return;
  for (const p of led) {
    if (ctx.closed) return;
    if ((st.doneAt.get(p.regionId) ?? -1n) >= st.safePoint) continue;
    await gcRegion(ctx, st, p.regionId, st.safePoint);
  }
  for (const id of st.doneAt.keys()) if (!ctx.peers.has(id)) st.doneAt.delete(id);
}

/** gcRegion runs batches over one Region until its range is done at safePoint, or it stops leading it, or a batch fails. */
async function gcRegion(ctx: StoreContext, st: GcState, regionId: number, safePoint: bigint): Promise<void> {
  let cursor: Uint8Array | undefined;
  for (;;) {
    const batchStartedAt = Date.now();
    const peer = ctx.peers.get(regionId);
    if (ctx.closed || !peer || !peer.isLeader) return;
    const r = peer.region;
    const start = cursor !== undefined && compareKeys(cursor, r.startKey) > 0 ? cursor : r.startKey;
    if (r.endKey.length > 0 && compareKeys(start, r.endKey) >= 0) break;
    const plan = plannerOf(ctx)!.gcPlan(start, r.endKey, safePoint, ctx.config.gcBatchRows);
    if (plan.deletes.length > 0) {
      const res = await proposeGcBatch(ctx, peer, { safePoint, deletes: plan.deletes });
      if (!res.ok) {
        ctx.logger.debug({ regionId, err: res.error.type }, 'GC batch not applied; the next pass retries');
        return;
      }
      st.versionsRemoved += plan.deletes.length;
      st.batches++;
    }
    if (plan.next === undefined) break;
    cursor = plan.next;
    // Yield between batches (foreground rounds run before the next scan), and stay under gcMaxRowsPerSec.
    const cap = ctx.config.gcMaxRowsPerSec;
    const waitMs = cap > 0 ? (plan.deletes.length * 1000) / cap - (Date.now() - batchStartedAt) : 0;
    await new Promise<void>((resolve) => (waitMs >= 1 ? setTimeout(resolve, waitMs) : setImmediate(resolve)));
  }
  st.doneAt.set(regionId, safePoint);
}

/** GC_BATCH_TIMEOUT_MS: a batch whose answer is lost (its peer destroyed with the message queued) stops the pass; the next retries. */
const GC_BATCH_TIMEOUT_MS = 30_000;

function proposeGcBatch(ctx: StoreContext, peer: Peer, gc: GcCommand): Promise<CommandResult> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(err.unavailable('GC batch not answered in time')), GC_BATCH_TIMEOUT_MS);
    const msg: GcProposal = {
      kind: 'proposeGc',
      epochVersion: peer.region.epoch.version,
      gc,
      cb: (r) => {
        clearTimeout(timer);
        resolve(r);
      },
    };
    ctx.send(peer, msg);
  });
}

/**
 * onProposeGc proposes a planned batch from inside the poll round, if this
 * peer still leads and the Region has not split or merged since the plan
 * (apply skips keys outside the Region anyway; this saves the entry).
 */
export function onProposeGc(ctx: StoreContext, peer: Peer, m: GcProposal): void {
  if (!peer.isLeader) return m.cb(err.notLeader(peer.regionId, peer.leaderMeta()));
  if (peer.region.epoch.version !== m.epochVersion) return m.cb(err.epochNotMatch([peer.region]));
  const cmd: RaftCmdWithGc = { header: { regionId: peer.regionId, regionEpoch: peer.region.epoch, peer: peer.meta() }, writes: [], gc: m.gc };
  propose(ctx, peer, encodeCommand(cmd as RaftCmdRequest), m.cb);
}
