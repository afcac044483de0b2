import { silentLogger, type Logger } from '@flotilla/proto';
import { PlacementCluster, type ClusterOptions } from '../cluster';
import { PlacementError, PlacementErrorCode, PlacementInvariantError } from '../errors';
import { GcLeader } from '../gc/leader';
import type { GcMethod } from '../gc/types';
import { LeaseLeader } from '../lease/leader';
import type { LeaseMethod } from '../lease/types';
import { TimestampOracle } from '../tso/oracle';
import type { ClusterMethod, ParamsOf } from '../types';
import type { PlacementFsm } from './fsm';
import type { RaftNode } from './node';
import { Proposer, RaftPersistence } from './proposer';
import { TsoGate } from './tso-gate';
import { handsOutOperator } from '../region-heartbeats';
import type { RegionHeartbeatResult } from '../types';

/** handsOut: a heartbeat answer (one, or a batch's) carries an operator step. */
function handsOut(result: unknown): boolean {
  const batch = (result as { results?: RegionHeartbeatResult[] }).results;
  return batch !== undefined ? handsOutOperator(batch) : (result as { operator?: unknown }).operator !== undefined;
}

/**
 * handled marks an answer promise as handled at once: dispatch chains it
 * behind the commit barrier, and a rejection meanwhile (the term ending)
 * must not count as unhandled. Whoever awaits it still sees the rejection.
 */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/**
 * NO_BARRIER: methods whose answers depend on nothing that must be committed first. A lease
 * keepalive, ttl or list only reads the leader's memory (expiry is never replicated, and a lease
 * a client can name was granted behind the barrier), so it does not wait for the 50 ms flushes.
 */
const NO_BARRIER: ReadonlySet<string> = new Set(['regionHeartbeat', 'regionHeartbeats', 'storeHeartbeat', 'getRegion', 'getRegionById', 'scanRegions', 'leaseKeepAlive', 'leaseKeepAlives', 'leaseTimeToLive', 'leaseList']);
const GC_METHODS: ReadonlySet<string> = new Set<GcMethod>(['updateServiceSafePoint', 'getGcSafePoint', 'getGcStatus']);
const LEASE_METHODS: ReadonlySet<string> = new Set<LeaseMethod>(['leaseGrant', 'leaseKeepAlive', 'leaseKeepAlives', 'leaseRevoke', 'leaseTimeToLive', 'leaseList', 'leaseAttach']);

export interface LeadershipOptions {
  term: number;
  node: RaftNode;
  fsm: PlacementFsm;
  cluster: Omit<ClusterOptions, 'opened' | 'logger'>;
  clock: () => number;
  tsoSaveIntervalMs?: number;
  /** singleVoter: the group has one voter (no ReadIndex round needed before timestamps). */
  singleVoter: () => boolean;
  /** tsoConfirmTimeoutMs: a leadership confirmation that takes longer fails its batch (default 3000). */
  tsoConfirmTimeoutMs?: number;
  /** electionTimeoutMs: the group's election timeout (the TSO lease is 80% of it). */
  electionTimeoutMs: number;
  logger?: Logger;
}

/**
 * Leadership is what a placement member holds while it leads one term:
 * the in-memory cluster (built from its own database, which holds every
 * committed change), the timestamp oracle (started above the committed
 * bound) and the proposer every change goes through. It lives exactly as
 * long as the term; on stepping down it is dropped without writing
 * anything, and the next leader builds its own from what was committed.
 */
export class Leadership {
  readonly proposer: Proposer;
  readonly cluster: PlacementCluster;
  readonly oracle: TimestampOracle;
  readonly gate: TsoGate;
  /** gc: the GC safe points (gc/leader.ts); its answers pass the commit barrier like the cluster's. */
  readonly gc: GcLeader;
  /** lease: the leases (lease/leader.ts); expiry runs on tick, and only here, on the leader. */
  readonly lease: LeaseLeader;
  private readonly logger: Logger;
  private readonly tsoConfirmTimeoutMs: number;

  constructor(readonly opts: LeadershipOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.tsoConfirmTimeoutMs = opts.tsoConfirmTimeoutMs ?? 3000;
    const storage = opts.fsm.storage;
    this.proposer = new Proposer(opts.node, opts.fsm.store.appliedIndex);
    this.cluster = new PlacementCluster({ ...opts.cluster, clock: opts.clock, logger: this.logger, opened: { persistence: new RaftPersistence(this.proposer, storage.path), state: storage.loadState() } });
    this.oracle = new TimestampOracle({
      clock: opts.clock,
      persist: (upperMs) => {
        try {
          return this.proposer.waitApplied(this.proposer.propose({ t: 'tsoUpper', upperMs }));
        } catch (err) {
          return Promise.reject(err as Error);
        }
      },
      ...(opts.tsoSaveIntervalMs !== undefined ? { saveIntervalMs: opts.tsoSaveIntervalMs } : {}),
      logger: this.logger,
    });
    this.oracle.start(storage.readMetaNumber('tso_upper_ms'));
    this.gc = new GcLeader({ propose: (cmd) => void this.proposer.propose(cmd), clock: opts.clock, rows: opts.fsm.store.gc.load(), ...(opts.cluster.gc ? { options: opts.cluster.gc } : {}), logger: this.logger });
    this.lease = new LeaseLeader({
      propose: (cmd) => this.proposer.propose(cmd),
      waitApplied: (index) => this.proposer.waitApplied(index),
      allocId: () => this.cluster.call('allocId', { count: 1 }).ids[0]!,
      clock: opts.clock,
      rows: opts.fsm.store.leases.load(),
      ...(opts.cluster.lease ? { options: opts.cluster.lease } : {}),
      logger: this.logger,
    });
    const raft = opts.node.raw.raft;
    this.gate = new TsoGate({
      term: opts.term,
      oracle: this.oracle,
      readIndex: (ctx) => opts.node.readIndex(ctx),
      singleVoter: opts.singleVoter,
      leaseAllowed: () => raft.leadTransferee === 0 && !raft.leaseForfeited,
      // The store's margin (LEASE_DRIFT_MARGIN): 20% for clock-rate differences between members.
      leaseMs: opts.electionTimeoutMs * 0.8,
      now: () => performance.now(),
    });
  }

  /**
   * dispatch runs one validated request. The answer leaves only once every
   * change proposed so far is committed (the commit barrier): an ID, a
   * store registration or a finished split is acknowledged only when no
   * new leader can lose it.
   */
  dispatch<M extends ClusterMethod | 'getTimestamps' | GcMethod | LeaseMethod>(method: M, params: ParamsOf<M>): unknown {
    if (method === 'getTimestamps') return this.gate.request((params as ParamsOf<'getTimestamps'>).count);
    const result = GC_METHODS.has(method) ? this.callGc(method as GcMethod, params) : LEASE_METHODS.has(method) ? this.callLease(method as LeaseMethod, params) : this.cluster.call(method as ClusterMethod, params as never);
    // Heartbeats and routing lookups acknowledge nothing durable (the routing table may be rebuilt from
    // heartbeats): they skip the barrier, unless a heartbeat answer hands out an operator.
    if (NO_BARRIER.has(method) && !handsOut(result)) return result;
    const barrier = this.proposer.waitAllProposed();
    return barrier === undefined ? result : barrier.then(() => result);
  }

  private callGc(method: GcMethod, params: unknown): unknown {
    if (method === 'updateServiceSafePoint') return this.gc.updateServiceSafePoint(params as ParamsOf<'updateServiceSafePoint'>);
    if (method === 'getGcSafePoint') return this.gc.getGcSafePoint((params ?? {}) as ParamsOf<'getGcSafePoint'>);
    return this.gc.status();
  }

  private callLease(method: LeaseMethod, params: unknown): unknown {
    const l = this.lease;
    switch (method) {
      case 'leaseGrant':
        return handled(l.grant(params as ParamsOf<'leaseGrant'>));
      case 'leaseKeepAlive': {
        // Only a leader that knows no other leader can exist may extend a lease (etcd checks leadership
        // before renewing): the TSO gate's confirmation (its lease, or a ReadIndex round). A deposed leader
        // therefore answers no keepalive after a new leader started counting the lease's TTL.
        const p = params as ParamsOf<'leaseKeepAlive'>;
        const confirmed = this.gate.request(1);
        return confirmed instanceof Promise ? handled(confirmed.then(() => l.keepAlive(p))) : l.keepAlive(p);
      }
      case 'leaseKeepAlives': {
        const p = params as ParamsOf<'leaseKeepAlives'>;
        const confirmed = this.gate.request(1);
        return confirmed instanceof Promise ? handled(confirmed.then(() => l.keepAliveMany(p))) : l.keepAliveMany(p);
      }
      case 'leaseRevoke':
        return handled(l.revoke(params as ParamsOf<'leaseRevoke'>));
      case 'leaseTimeToLive':
        return l.timeToLive(params as ParamsOf<'leaseTimeToLive'>);
      case 'leaseAttach':
        return l.attach(params as ParamsOf<'leaseAttach'>);
      case 'leaseList':
        return l.list();
    }
  }

  onApplied(appliedIndex: number): void {
    this.proposer.onApplied(appliedIndex);
  }

  onReadState(ctx: Uint8Array): void {
    this.gate.onReadState(ctx);
  }

  tick(): void {
    this.oracle.maybeExtend();
    this.gate.tick(this.tsoConfirmTimeoutMs);
    this.gc.tick();
    this.lease.tick();
  }

  /** flush proposes the batched Region and operator changes (the server's flush interval). */
  flush(): void {
    this.guard('flush', () => this.cluster.flush());
  }

  /**
   * runSchedulers runs a scheduling round and proposes new operators at
   * once: an answer that hands one to a Region leader then waits for it to
   * be committed (the barrier), so a new leader knows every operator a
   * store was told to run.
   */
  runSchedulers(): void {
    this.guard('scheduling round', () => {
      if (this.cluster.runSchedulers() > 0) this.cluster.flush();
    });
  }

  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      if (err instanceof PlacementInvariantError) throw err;
      // Refused proposals (a leadership change under way) leave the batch dirty; the next round tries again.
      if (!(err instanceof PlacementError && err.code === PlacementErrorCode.NotLeader)) this.logger.error({ err: (err as Error).message }, `placement ${what} failed`);
    }
  }

  /** stepDown ends the term: waiting answers get err, nothing more is written. */
  stepDown(err: PlacementError): void {
    this.proposer.fail(err);
    this.oracle.stop(err);
    this.gate.fail(err);
    this.lease.stop(err);
    this.cluster.abandon();
  }

  /** drain proposes what is still batched and waits (bounded) for it: a clean shutdown of the leader. */
  async drain(timeoutMs: number): Promise<void> {
    this.guard('final flush', () => this.cluster.close());
    const barrier = this.proposer.waitAllProposed();
    if (barrier === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([barrier.catch(() => {}), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}
