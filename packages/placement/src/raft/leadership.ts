import { silentLogger, type Logger } from '@flotilla/proto';
import { PlacementCluster, type ClusterOptions } from '../cluster';
import { LoadCancelled, Slicer, loadClusterInSlices, type LoadedCluster, type SliceOptions } from '../cluster-load';
import { PlacementError, PlacementErrorCode, PlacementInvariantError, assert } from '../errors';
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
const NO_BARRIER: ReadonlySet<string> = new Set(['regionHeartbeat', 'regionHeartbeats', 'regionHeartbeatsPacked', 'storeHeartbeat', 'getRegion', 'getRegionById', 'scanRegions', 'leaseKeepAlive', 'leaseKeepAlives', 'leaseTimeToLive', 'leaseList']);
const GC_METHODS: ReadonlySet<string> = new Set<GcMethod>(['updateServiceSafePoint', 'getGcSafePoint', 'getGcStatus']);
const LEASE_METHODS: ReadonlySet<string> = new Set<LeaseMethod>(['leaseGrant', 'leaseKeepAlive', 'leaseKeepAlives', 'leaseRevoke', 'leaseTimeToLive', 'leaseList', 'leaseAttach', 'leaseAttachBatch']);

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
  /** onServing: the routing table is loaded and every method is served (the member releases what waited for it). */
  onServing?: () => void;
  /** load: how the routing table load is sliced (tests; defaults in cluster-load.ts). */
  load?: Omit<SliceOptions, 'cancelled'>;
  logger?: Logger;
}

/** Serving: what a leader holds once its routing table is loaded. */
interface Serving {
  cluster: PlacementCluster;
  /** gc: the GC safe points (gc/leader.ts); its answers pass the commit barrier like the cluster's. */
  gc: GcLeader;
  /** lease: the leases (lease/leader.ts); expiry runs on tick, and only here, on the leader. */
  lease: LeaseLeader;
}

/**
 * Leadership is what a placement member holds while it leads one term:
 * the in-memory cluster (built from its own database, which holds every
 * committed change), the timestamp oracle (started above the committed
 * bound) and the proposer every change goes through. It lives exactly as
 * long as the term; on stepping down it is dropped without writing
 * anything, and the next leader builds its own from what was committed.
 *
 * The cluster is loaded in slices between event-loop turns (issue #16: at
 * 100,000 Regions a load at once blocked for longer than the election
 * timeout, and the group never kept a leader). Meanwhile raft ticks and
 * heartbeats go on, timestamps are served (the oracle needs only its
 * committed bound), and nothing else: no scheduler runs, and the member
 * holds or refuses other requests until isServing (member.ts).
 */
export class Leadership {
  readonly proposer: Proposer;
  readonly oracle: TimestampOracle;
  readonly gate: TsoGate;
  private serving: Serving | undefined;
  /** ended: the term ended (a load still under way is abandoned at its next slice). */
  private ended = false;
  private readonly logger: Logger;
  private readonly tsoConfirmTimeoutMs: number;

  constructor(readonly opts: LeadershipOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.tsoConfirmTimeoutMs = opts.tsoConfirmTimeoutMs ?? 3000;
    const storage = opts.fsm.storage;
    this.proposer = new Proposer(opts.node, opts.fsm.store.appliedIndex);
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
    this.load().catch((err: unknown) => {
      this.logger.error({ err: (err as Error).message }, 'placement leader could not load its state');
      // As a load at once would have: out of the event loop (a corrupt database or a bug is fatal).
      setImmediate(() => {
        throw err;
      });
    });
  }

  /** cluster: the in-memory cluster (undefined while it loads). */
  get cluster(): PlacementCluster | undefined {
    return this.serving?.cluster;
  }

  /** isServing: the cluster is loaded; every method is answered. */
  get isServing(): boolean {
    return this.serving !== undefined;
  }

  /**
   * load builds the cluster from the database in slices, then the GC and
   * lease keepers. The leader proposes nothing the cluster reads before it
   * serves (timestamps and member addresses only), and every earlier
   * term's entry was applied before this term's leadership began, so the
   * tables hold still while they are read; clusterWrites asserts it.
   */
  private async load(): Promise<void> {
    const t0 = performance.now();
    const fsm = this.opts.fsm;
    const writes = fsm.clusterWrites;
    const slicer = new Slicer({ ...this.opts.load, cancelled: () => this.ended });
    let loaded: LoadedCluster;
    try {
      loaded = await loadClusterInSlices(fsm.storage, slicer);
    } catch (err) {
      if (err instanceof LoadCancelled) return;
      throw err;
    }
    if (this.ended) return;
    const tBuild = performance.now();
    assert(fsm.clusterWrites === writes, `the placement tables changed while the leader of term ${this.opts.term} loaded them (${fsm.clusterWrites - writes} writes)`);
    const o = this.opts;
    const cluster = new PlacementCluster({
      ...o.cluster,
      clock: o.clock,
      logger: this.logger,
      opened: { persistence: new RaftPersistence(this.proposer, fsm.storage.path), state: loaded.state, prepared: loaded.prepared },
    });
    const gc = new GcLeader({ propose: (cmd) => void this.proposer.propose(cmd), clock: o.clock, rows: fsm.store.gc.load(), ...(o.cluster.gc ? { options: o.cluster.gc } : {}), logger: this.logger });
    const lease = new LeaseLeader({
      propose: (cmd) => this.proposer.propose(cmd),
      waitApplied: (index) => this.proposer.waitApplied(index),
      allocId: () => cluster.call('allocId', { count: 1 }).ids[0]!,
      clock: o.clock,
      rows: fsm.store.leases.load(),
      ...(o.cluster.lease ? { options: o.cluster.lease } : {}),
      logger: this.logger,
    });
    this.serving = { cluster, gc, lease };
    const now = performance.now();
    this.logger.info(
      { term: o.term, regions: cluster.regionCount(), ms: Math.round(now - t0), slices: slicer.slices, longestSliceMs: Math.round(slicer.longestMs), buildMs: Math.round(now - tBuild) },
      'placement leader loaded its state',
    );
    o.onServing?.();
  }

  /**
   * dispatch runs one validated request. The answer leaves only once every
   * change proposed so far is committed (the commit barrier): an ID, a
   * store registration or a finished split is acknowledged only when no
   * new leader can lose it.
   */
  dispatch<M extends ClusterMethod | 'getTimestamps' | GcMethod | LeaseMethod>(method: M, params: ParamsOf<M>): unknown {
    if (method === 'getTimestamps') return this.gate.request((params as ParamsOf<'getTimestamps'>).count);
    const s = this.serving;
    assert(s !== undefined, `placement ${method} dispatched to a leader still loading its state`);
    const result = GC_METHODS.has(method) ? this.callGc(s.gc, method as GcMethod, params) : LEASE_METHODS.has(method) ? this.callLease(s.lease, method as LeaseMethod, params) : s.cluster.call(method as ClusterMethod, params as never);
    // Heartbeats and routing lookups acknowledge nothing durable (the routing table may be rebuilt from
    // heartbeats): they skip the barrier, unless a heartbeat answer hands out an operator.
    if (NO_BARRIER.has(method) && !handsOut(result)) return result;
    const barrier = this.proposer.waitAllProposed();
    return barrier === undefined ? result : barrier.then(() => result);
  }

  private callGc(gc: GcLeader, method: GcMethod, params: unknown): unknown {
    if (method === 'updateServiceSafePoint') return gc.updateServiceSafePoint(params as ParamsOf<'updateServiceSafePoint'>);
    if (method === 'getGcSafePoint') return gc.getGcSafePoint((params ?? {}) as ParamsOf<'getGcSafePoint'>);
    return gc.status();
  }

  private callLease(l: LeaseLeader, method: LeaseMethod, params: unknown): unknown {
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
      case 'leaseAttachBatch':
        return l.attachMany(params as ParamsOf<'leaseAttachBatch'>);
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
    this.serving?.gc.tick();
    this.serving?.lease.tick();
  }

  /** flush proposes the batched Region and operator changes (the server's flush interval). */
  flush(): void {
    const c = this.serving?.cluster;
    if (c) this.guard('flush', () => c.flush());
  }

  /**
   * runSchedulers runs a scheduling round and proposes new operators at
   * once: an answer that hands one to a Region leader then waits for it to
   * be committed (the barrier), so a new leader knows every operator a
   * store was told to run.
   */
  runSchedulers(): void {
    const c = this.serving?.cluster;
    if (!c) return;
    this.guard('scheduling round', () => {
      if (c.runSchedulers() > 0) c.flush();
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
    this.ended = true;
    this.proposer.fail(err);
    this.oracle.stop(err);
    this.gate.fail(err);
    this.serving?.lease.stop(err);
    this.serving?.cluster.abandon();
  }

  /** drain proposes what is still batched and waits (bounded) for it: a clean shutdown of the leader. */
  async drain(timeoutMs: number): Promise<void> {
    const c = this.serving?.cluster;
    if (c) this.guard('final flush', () => c.close());
    const barrier = this.proposer.waitAllProposed();
    if (barrier === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([barrier.catch(() => {}), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}
