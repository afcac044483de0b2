import { ProposalDroppedError, type ConfChange } from '@flotilla/raft-core';
import { PlacementError, PlacementErrorCode } from '../errors';
import type { ClusterPersistence } from '../persistence';
import type { PersistedStore } from '../storage';
import type { Operator, RegionInfo } from '../types';
import { encodeCommand, stripInfo, type PlacementCommand } from './command';
import type { RaftNode } from './node';

interface Waiter {
  index: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Proposer is the leader's side of the log for one term: it proposes
 * commands and says when they are applied. waitAllProposed is the commit
 * barrier the member puts in front of every answer: an answer may depend
 * on any change proposed before it (an ID below a raised bound, a store
 * just registered), so it leaves only once all of them are committed and
 * applied. Within one term the entry at an index the leader proposed is
 * the leader's own, so "applied >= index" means "this proposal applied".
 */
export class Proposer {
  private lastProposed = 0;
  private applied: number;
  private readonly waiters: Waiter[] = [];
  private failed: Error | undefined;
  private barrier: { index: number; promise: Promise<void> } | undefined;

  constructor(
    private readonly node: RaftNode,
    appliedIndex: number,
  ) {
    this.applied = appliedIndex;
  }

  /** propose appends cmd and returns its index; a refusal is a NotLeader (nothing was proposed, so the caller may go elsewhere). */
  propose(cmd: PlacementCommand): number {
    return this.wrap(() => this.node.propose(encodeCommand(cmd)));
  }

  proposeConfChange(cc: ConfChange): number {
    return this.wrap(() => this.node.proposeConfChange(cc));
  }

  private wrap(fn: () => number): number {
    if (this.failed) throw this.failed;
    let index: number;
    try {
      index = fn();
    } catch (err) {
      if (err instanceof ProposalDroppedError) throw new PlacementError(PlacementErrorCode.NotLeader, `placement refused the proposal: ${err.message}`);
      throw err;
    }
    if (index === 0) throw new PlacementError(PlacementErrorCode.NotLeader, 'this placement member is no longer the leader');
    this.lastProposed = Math.max(this.lastProposed, index);
    return index;
  }

  /** waitApplied resolves once the entry at index is applied. */
  waitApplied(index: number): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    if (index <= this.applied) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ index, resolve, reject }));
  }

  /**
   * waitAllProposed: undefined when nothing proposed is still unapplied,
   * else a promise for it. Answers queued behind the same last proposal
   * share one promise, so a burst of requests costs one waiter.
   */
  waitAllProposed(): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed);
    if (this.lastProposed <= this.applied) return undefined;
    if (this.barrier?.index !== this.lastProposed) this.barrier = { index: this.lastProposed, promise: this.waitApplied(this.lastProposed) };
    return this.barrier.promise;
  }

  onApplied(appliedIndex: number): void {
    this.applied = Math.max(this.applied, appliedIndex);
    if (this.waiters.length === 0 || this.waiters.every((w) => w.index > this.applied)) return;
    const ready = this.waiters.filter((w) => w.index <= this.applied);
    const rest = this.waiters.filter((w) => w.index > this.applied);
    this.waiters.splice(0, this.waiters.length, ...rest);
    for (const w of ready) w.resolve();
  }

  /**
   * fail ends the term: every waiting answer gets err. What was proposed may
   * still commit under the next leader, so err says the outcome is unknown.
   */
  fail(err: Error): void {
    this.failed = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

/** RaftPersistence is ClusterPersistence for the leader: every write is a proposal. */
export class RaftPersistence implements ClusterPersistence {
  constructor(
    private readonly proposer: Proposer,
    readonly path: string,
  ) {}
  saveIdHighWater(highWater: number): void {
    this.proposer.propose({ t: 'idHighWater', highWater });
  }
  saveMaxReplicas(maxReplicas: number): void {
    this.proposer.propose({ t: 'maxReplicas', maxReplicas });
  }
  saveBootstrap(store: PersistedStore, region: RegionInfo): void {
    this.proposer.propose({ t: 'bootstrap', store, region: stripInfo(region) });
  }
  saveStore(store: PersistedStore): void {
    this.proposer.propose({ t: 'store', store });
  }
  writeBatch(regions: Map<number, RegionInfo | null>, stats: Map<number, RegionInfo>, operators: Map<number, Operator | null>): void {
    if (regions.size === 0 && stats.size === 0 && operators.size === 0) return;
    // Statistics-only rows as flat numbers (command.ts statRows): the Region's meta is already in its row.
    const statRows: number[] = [];
    for (const i of stats.values()) if (!regions.has(i.region.id)) statRows.push(i.region.id, i.leader?.id ?? 0, i.approximateSizeBytes, i.approximateKeys);
    this.proposer.propose({
      t: 'batch',
      regions: [...regions].map(([id, info]) => [id, info === null ? null : stripInfo(info)]),
      stats: [],
      statRows,
      operators: [...operators],
    });
  }
  close(): void {}
}
