import type { ApplyState, RegionLocalState } from './types';
import type { MvccOp } from './mvcc/schema';
import { assert } from './errors';

/** KvOp is one change of a KvWriteBatch; ops apply in order. */
export type KvOp =
  | { kind: 'put'; key: Uint8Array; value: Uint8Array }
  | { kind: 'delete'; key: Uint8Array }
  | { kind: 'deleteRange'; start: Uint8Array; end: Uint8Array }
  /** deleteRegionData clears [start, end) in the raw AND the transactional tables (a removed Region's data). */
  | { kind: 'deleteRegionData'; start: Uint8Array; end: Uint8Array }
  /** mvcc: one change to the transactional tables (Percolator at apply). */
  | { kind: 'mvcc'; op: MvccOp }
  | { kind: 'applyState'; regionId: number; state: ApplyState }
  | { kind: 'regionState'; regionId: number; state: RegionLocalState };

/** MAX_KV_BATCH_OPS bounds one batch; an apply round is far smaller. */
export const MAX_KV_BATCH_OPS = 1_000_000;

/**
 * KvWriteBatch collects state-machine changes — data and the apply/region
 * state describing them — that KvEngine.write commits in one transaction,
 * so a restart sees all of them or none.
 */
export class KvWriteBatch {
  readonly ops: KvOp[] = [];

  put(key: Uint8Array, value: Uint8Array): this {
    assert(key.length > 0, 'put: empty key');
    return this.push({ kind: 'put', key, value });
  }

  delete(key: Uint8Array): this {
    return this.push({ kind: 'delete', key });
  }

  /** deleteRange removes [start, end) of the raw keyspace; an empty end means unbounded. */
  deleteRange(start: Uint8Array, end: Uint8Array): this {
    return this.push({ kind: 'deleteRange', start, end });
  }

  /** deleteRegionData removes [start, end) from both keyspaces (raw and transactional); an empty end means unbounded. */
  deleteRegionData(start: Uint8Array, end: Uint8Array): this {
    return this.push({ kind: 'deleteRegionData', start, end });
  }

  mvcc(op: MvccOp): this {
    return this.push({ kind: 'mvcc', op });
  }

  setApplyState(regionId: number, state: ApplyState): this {
    assert(Number.isSafeInteger(state.appliedIndex) && state.appliedIndex >= 0, `bad applied index ${state.appliedIndex}`);
    return this.push({ kind: 'applyState', regionId, state: { ...state } });
  }

  setRegionState(regionId: number, state: RegionLocalState): this {
    assert(state.region.id === regionId, `region state for ${regionId} carries region ${state.region.id}`);
    return this.push({ kind: 'regionState', regionId, state });
  }

  get isEmpty(): boolean {
    return this.ops.length === 0;
  }

  get size(): number {
    return this.ops.length;
  }

  clear(): void {
    this.ops.length = 0;
  }

  private push(op: KvOp): this {
    assert(this.ops.length < MAX_KV_BATCH_OPS, `KvWriteBatch exceeds ${MAX_KV_BATCH_OPS} ops; split it`);
    this.ops.push(op);
    return this;
  }
}
