import { silentLogger, type Logger } from '@flotilla/proto';
import { PlacementError, PlacementErrorCode, PlacementInvariantError } from '../errors';
import { composeTs } from '../tso/timestamp';
import type { GcRows, ServiceSafePoint } from './store';
import type { GcMethods, GcStatus, StoreGcProgress } from './types';

/** GcOptions: how far behind now the cluster safe point trails, and how often the leader advances it. */
export interface GcOptions {
  /** lifeTimeMs: versions younger than this are kept (TiDB's tidb_gc_life_time; default 10 min). */
  lifeTimeMs?: number;
  /** intervalMs: how often the leader's GC worker tries to advance the safe point (default 10 s). */
  intervalMs?: number;
}

export const DEFAULT_GC_LIFE_TIME_MS = 10 * 60_000;
export const DEFAULT_GC_INTERVAL_MS = 10_000;
/** MAX_SERVICES bounds the service safe points (each is a row in every member's database). */
export const MAX_SERVICES = 1024;
/** MAX_SERVICE_TTL_MS: a service must renew at least daily. */
export const MAX_SERVICE_TTL_MS = 24 * 3600_000;

/** GcCommand: the placement log's GC commands (raft/command.ts carries them; ts as decimal text). */
export type GcCommand = { t: 'gcSafePoint'; ts: string } | { t: 'serviceSafePoint'; serviceId: string; ts: string; expireAtMs: number };

export interface GcLeaderDeps {
  /** propose appends a command to the placement log (throws NotLeader when refused; nothing changed then). */
  propose: (cmd: GcCommand) => void;
  clock: () => number;
  /** rows: the committed GC state of this member's database (the new leader's starting point). */
  rows: GcRows;
  options?: GcOptions;
  logger?: Logger;
}

/**
 * GcLeader is the placement leader's GC safe point keeper for one term
 * (PD's GC safe point manager plus TiDB's GC worker, which here runs on the
 * placement leader). State changes in memory as each command is proposed;
 * every answer passes the leader's commit barrier, so a safe point a store
 * is told, or a service safe point acknowledged, is committed: a new
 * leader starts from its own database with at least as much.
 *
 * Invariant: clusterSafePoint only grows, and never passes a live service
 * safe point (a service is refused below it, and the worker bounds by it).
 */
export class GcLeader {
  private clusterSafePoint: bigint;
  private readonly services = new Map<string, ServiceSafePoint>();
  private readonly progress = new Map<number, StoreGcProgress & { atMs: number }>();
  private readonly lifeTimeMs: number;
  private readonly intervalMs: number;
  private lastRunMs = Number.NEGATIVE_INFINITY;
  private readonly logger: Logger;

  constructor(private readonly deps: GcLeaderDeps) {
    this.clusterSafePoint = deps.rows.clusterSafePoint;
    for (const s of deps.rows.services) this.services.set(s.serviceId, s);
    this.lifeTimeMs = deps.options?.lifeTimeMs ?? DEFAULT_GC_LIFE_TIME_MS;
    this.intervalMs = deps.options?.intervalMs ?? DEFAULT_GC_INTERVAL_MS;
    this.logger = deps.logger ?? silentLogger;
  }

  /** liveServices: service safe points not expired at now. */
  private liveServices(now: number): ServiceSafePoint[] {
    return [...this.services.values()].filter((s) => s.expireAtMs > now);
  }

  private minService(now: number): bigint | null {
    let min: bigint | null = null;
    for (const s of this.liveServices(now)) if (min === null || s.ts < min) min = s.ts;
    return min;
  }

  /** effective: min(cluster safe point, live service safe points). */
  effective(now = this.deps.clock()): bigint {
    const m = this.minService(now);
    return m !== null && m < this.clusterSafePoint ? m : this.clusterSafePoint;
  }

  updateServiceSafePoint(p: GcMethods['updateServiceSafePoint']['params']): GcMethods['updateServiceSafePoint']['result'] {
    const now = this.deps.clock();
    if (p.ttlMs === 0) {
      if (this.services.has(p.serviceId)) {
        this.deps.propose({ t: 'serviceSafePoint', serviceId: p.serviceId, ts: '0', expireAtMs: 0 });
        this.services.delete(p.serviceId);
      }
      return { accepted: true, gcSafePoint: this.clusterSafePoint, minServiceSafePoint: this.minService(now) };
    }
    if (p.ts < this.clusterSafePoint) return { accepted: false, gcSafePoint: this.clusterSafePoint, minServiceSafePoint: this.minService(now) };
    if (!this.services.has(p.serviceId) && this.services.size >= MAX_SERVICES) {
      throw new PlacementError(PlacementErrorCode.InvalidArgument, `too many service safe points (${MAX_SERVICES}); remove one (ttlMs 0) or wait for one to expire`);
    }
    const expireAtMs = now + p.ttlMs;
    this.deps.propose({ t: 'serviceSafePoint', serviceId: p.serviceId, ts: p.ts.toString(), expireAtMs });
    this.services.set(p.serviceId, { serviceId: p.serviceId, ts: p.ts, expireAtMs });
    return { accepted: true, gcSafePoint: this.clusterSafePoint, minServiceSafePoint: this.minService(now) };
  }

  getGcSafePoint(p: GcMethods['getGcSafePoint']['params']): GcMethods['getGcSafePoint']['result'] {
    const now = this.deps.clock();
    if (p.progress) {
      if (!this.progress.has(p.progress.storeId) && this.progress.size >= MAX_SERVICES) this.progress.clear();
      this.progress.set(p.progress.storeId, { ...p.progress, atMs: now });
    }
    return { safePoint: this.effective(now) };
  }

  status(): GcStatus {
    const now = this.deps.clock();
    return {
      safePoint: this.effective(now),
      clusterSafePoint: this.clusterSafePoint,
      gcLifeTimeMs: this.lifeTimeMs,
      gcIntervalMs: this.intervalMs,
      services: this.liveServices(now).map((s) => ({ serviceId: s.serviceId, ts: s.ts, ttlLeftMs: s.expireAtMs - now })),
      stores: [...this.progress.values()].sort((a, b) => a.storeId - b.storeId).map(({ atMs, ...rest }) => ({ ...rest, reportedAgoMs: now - atMs })),
    };
  }

  /**
   * tick is the GC worker: every intervalMs it drops expired service safe
   * points and raises the cluster safe point to now - lifeTime, bounded by
   * every live service safe point. A refused proposal (leadership moving)
   * leaves memory as it was; the next leader's worker runs from its own
   * committed state.
   */
  tick(): void {
    const now = this.deps.clock();
    if (now - this.lastRunMs < this.intervalMs) return;
    this.lastRunMs = now;
    try {
      this.expireServices(now);
      const candidate = composeTs(Math.max(0, now - this.lifeTimeMs), 0);
      const bound = this.minService(now);
      const next = bound !== null && bound < candidate ? bound : candidate;
      if (next <= this.clusterSafePoint) return;
      this.deps.propose({ t: 'gcSafePoint', ts: next.toString() });
      this.clusterSafePoint = next;
      this.logger.info({ safePoint: next.toString(), boundByService: bound !== null && bound === next }, 'placement GC safe point advanced');
    } catch (err) {
      if (err instanceof PlacementInvariantError) throw err;
      if (!(err instanceof PlacementError && err.code === PlacementErrorCode.NotLeader)) this.logger.error({ err: (err as Error).message }, 'placement GC worker failed');
    }
  }

  private expireServices(now: number): void {
    for (const s of [...this.services.values()]) {
      if (s.expireAtMs > now) continue;
      this.deps.propose({ t: 'serviceSafePoint', serviceId: s.serviceId, ts: '0', expireAtMs: 0 });
      this.services.delete(s.serviceId);
      this.logger.info({ serviceId: s.serviceId, ts: s.ts.toString() }, 'service GC safe point expired');
    }
  }
}
