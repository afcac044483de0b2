import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import { appliedSafePoint } from './apply';

/** GcState is one store's GC bookkeeping (memory only: after a restart the first poll restores the safe point). */
export interface GcState {
  /** safePoint: the highest effective safe point placement gave this store. */
  safePoint: bigint;
  /** doneAt: per Region, the safe point its last finished pass worked to. */
  doneAt: Map<number, bigint>;
  /** versionsRemoved: write records this store's passes removed (batches applied) since it started. */
  versionsRemoved: number;
  batches: number;
  running: boolean;
}

const states = new WeakMap<StoreContext, GcState>();

export function gcState(ctx: StoreContext): GcState {
  let s = states.get(ctx);
  if (s === undefined) {
    s = { safePoint: 0n, doneAt: new Map(), versionsRemoved: 0, batches: 0, running: false };
    states.set(ctx, s);
  }
  return s;
}

/**
 * readBelowSafePoint: a snapshot read at ts on this peer may miss versions
 * GC removed (ts below the safe point this store learned, or below one a GC
 * batch this peer applied carried); the caller refuses it with a typed
 * error rather than answer from a history with holes.
 */
export function readBelowSafePoint(ctx: StoreContext, peer: Peer, ts: bigint): bigint | undefined {
  const s = states.get(ctx)?.safePoint ?? 0n;
  const sp = s > appliedSafePoint(peer) ? s : appliedSafePoint(peer);
  return ts < sp ? sp : undefined;
}
