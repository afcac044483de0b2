import { silentLogger, type Logger } from '@flotilla/proto';
import { PlacementError, PlacementErrorCode, PlacementInvariantError } from '../errors';
import type { LeaseRow } from './store';
import type { LeaseAttachResult, LeaseInfo, LeaseMethods, LeaseReaper } from './types';

/** LEASE_LIMITS bound the lease state (every lease and attached key is a row in every member's database). */
export const LEASE_LIMITS = {
  minTtlMs: 200,
  maxTtlMs: 24 * 3600_000,
  maxLeases: 100_000,
  /** maxKeysPerLease: the revocation deletes them and the guard in one transaction (TXN_LIMITS.maxKeys is 10,000). */
  maxKeysPerLease: 9_999,
  /** maxKeepAlivesPerRequest: IDs in one leaseKeepAlives request. */
  maxKeepAlivesPerRequest: 10_000,
  /** maxAttachesPerRequest: (lease, key) pairs in one leaseAttachBatch request (one log entry of at most a few MiB of keys). */
  maxAttachesPerRequest: 1_000,
  /** maxConcurrentReaps: revocation transactions in flight at once. */
  maxConcurrentReaps: 8,
} as const;

/** LeaseOptions: the reaper (without one, leaseGrant is refused) and the retry backoff of failed reaps. */
export interface LeaseOptions {
  reaper?: LeaseReaper;
  reapBackoffMs?: { baseMs: number; maxMs: number };
}

/** LeaseCommand: the placement log's lease commands (raft/command.ts carries them). */
export type LeaseCommand =
  | { t: 'leaseGrant'; id: number; ttlMs: number }
  | { t: 'leaseAttach'; id: number; key: Uint8Array }
  /** leaseAttachMany: the new attaches of one leaseAttachBatch, as [lease ID, key] pairs, in one entry. */
  | { t: 'leaseAttachMany'; items: [number, Uint8Array][] }
  | { t: 'leaseRevoke'; id: number }
  | { t: 'leaseDrop'; id: number };

export interface LeaseLeaderDeps {
  /** propose appends a command and returns its index (throws NotLeader when refused; nothing changed then). */
  propose: (cmd: LeaseCommand) => number;
  /** waitApplied resolves once the entry at index is applied (rejects when the term ends). */
  waitApplied: (index: number) => Promise<void>;
  /** allocId: one cluster-unique ID from the allocator. */
  allocId: () => number;
  clock: () => number;
  /** rows: the committed leases of this member's database (the new leader's starting point). */
  rows: LeaseRow[];
  options?: LeaseOptions;
  logger?: Logger;
}

interface LiveLease {
  id: number;
  ttlMs: number;
  /** expireAtMs: on the leader's clock; never replicated. */
  expireAtMs: number;
  revoked: boolean;
  /** revokeIndex: the log index of the revocation (0 when it was committed before this term). */
  revokeIndex: number;
  keys: Map<string, Uint8Array>;
  reaping: boolean;
  failures: number;
  nextReapAtMs: number;
  installing: Promise<void> | undefined;
  waiters: { resolve: () => void; reject: (e: Error) => void }[];
}

export function leaseNotFound(id: number): PlacementError {
  return new PlacementError(PlacementErrorCode.LeaseNotFound, `lease ${id} not found (never granted, expired or revoked)`);
}

function hexOf(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex');
}

/**
 * LeaseLeader is the placement leader's lease keeper for one term (etcd's
 * lessor on its leader). Grants, attaches and revocations are proposed and
 * answered behind the commit barrier; keepalives only move the expiry in
 * memory, as etcd does: only the leader expires leases, and a new leader
 * starts every lease with a full TTL (the failover extension), so a lease
 * kept alive up to the failover cannot expire because of it.
 *
 * Revocation (by leaseRevoke or expiry): "revoked" is committed first, so
 * from then on attach and keepalive answer LeaseNotFound; then the reaper
 * deletes the guard and every attached key in one transaction, retried
 * with backoff until it succeeds; then the lease is dropped. A put with the
 * lease reads the guard in its own transaction, which is why that put can
 * never leave a key behind (docs/watch-and-leases.md has the argument).
 */
export class LeaseLeader {
  private readonly leases = new Map<number, LiveLease>();
  private readonly logger: Logger;
  private readonly backoff: { baseMs: number; maxMs: number };
  private reapsInFlight = 0;
  private stopped: Error | undefined;

  constructor(private readonly deps: LeaseLeaderDeps) {
    this.logger = deps.logger ?? silentLogger;
    this.backoff = deps.options?.reapBackoffMs ?? { baseMs: 50, maxMs: 2000 };
    const now = deps.clock();
    for (const r of deps.rows) {
      const keys = new Map(r.keys.map((k) => [hexOf(k), k] as const));
      this.leases.set(r.id, { id: r.id, ttlMs: r.ttlMs, expireAtMs: now + r.ttlMs, revoked: r.revoked, revokeIndex: 0, keys, reaping: false, failures: 0, nextReapAtMs: 0, installing: undefined, waiters: [] });
    }
  }

  private live(id: number): LiveLease {
    const l = this.leases.get(id);
    if (l === undefined || l.revoked) throw leaseNotFound(id);
    return l;
  }

  private reaper(): LeaseReaper {
    const r = this.deps.options?.reaper;
    if (r === undefined) throw new PlacementError('Unsupported', 'this placement was started without a lease reaper (flotilla placement provides one); leases are not available');
    return r;
  }

  grant(p: LeaseMethods['leaseGrant']['params']): Promise<LeaseMethods['leaseGrant']['result']> {
    const reaper = this.reaper();
    if (this.leases.size >= LEASE_LIMITS.maxLeases) throw new PlacementError(PlacementErrorCode.InvalidArgument, `too many leases (${LEASE_LIMITS.maxLeases}); revoke some or let them expire`);
    const id = this.deps.allocId();
    const index = this.deps.propose({ t: 'leaseGrant', id, ttlMs: p.ttlMs });
    const installing = this.deps.waitApplied(index).then(() => reaper.install(id));
    this.leases.set(id, { id, ttlMs: p.ttlMs, expireAtMs: this.deps.clock() + p.ttlMs, revoked: false, revokeIndex: 0, keys: new Map(), reaping: false, failures: 0, nextReapAtMs: 0, installing, waiters: [] });
    // A failed install leaves a lease no put can use; it expires by itself.
    return installing.then(
      () => ({ id, ttlMs: p.ttlMs }),
      (err: unknown) => {
        throw err instanceof PlacementError ? err : new PlacementError(PlacementErrorCode.Unavailable, `lease ${id} was granted but its guard key could not be written (${(err as Error).message}); it expires in ${p.ttlMs} ms`);
      },
    );
  }

  keepAlive(p: LeaseMethods['leaseKeepAlive']['params']): LeaseMethods['leaseKeepAlive']['result'] {
    const l = this.live(p.id);
    l.expireAtMs = Math.max(l.expireAtMs, this.deps.clock() + l.ttlMs);
    return { id: l.id, ttlMs: l.ttlMs };
  }

  keepAliveMany(p: LeaseMethods['leaseKeepAlives']['params']): LeaseMethods['leaseKeepAlives']['result'] {
    const now = this.deps.clock();
    return {
      results: p.ids.map((id) => {
        const l = this.leases.get(id);
        if (l === undefined || l.revoked) return { id, error: 'LeaseNotFound' as const };
        l.expireAtMs = Math.max(l.expireAtMs, now + l.ttlMs);
        return { id, ttlMs: l.ttlMs };
      }),
    };
  }

  attach(p: LeaseMethods['leaseAttach']['params']): LeaseMethods['leaseAttach']['result'] {
    const l = this.live(p.id);
    const hex = hexOf(p.key);
    if (l.keys.has(hex)) return { attached: true };
    if (l.keys.size >= LEASE_LIMITS.maxKeysPerLease) throw new PlacementError(PlacementErrorCode.InvalidArgument, `lease ${p.id} already has ${LEASE_LIMITS.maxKeysPerLease} keys (what one revocation transaction deletes)`);
    this.deps.propose({ t: 'leaseAttach', id: p.id, key: p.key });
    l.keys.set(hex, p.key);
    return { attached: true };
  }

  /**
   * attachMany is attach for many items with one log entry for the keys
   * not attached yet. Each item is judged as attach judges it, in order (a
   * key named twice is attached once); a refused item is that item's error,
   * the rest attach. Like attach, the keys are in the lease's memory list
   * from now on, so a revocation proposed after this reads them.
   */
  attachMany(p: LeaseMethods['leaseAttachBatch']['params']): LeaseMethods['leaseAttachBatch']['result'] {
    const fresh: [number, Uint8Array][] = [];
    const results = p.items.map((item): LeaseAttachResult => {
      const l = this.leases.get(item.id);
      if (l === undefined || l.revoked) return { error: 'LeaseNotFound', message: leaseNotFound(item.id).message };
      const hex = hexOf(item.key);
      if (l.keys.has(hex)) return { attached: true };
      if (l.keys.size >= LEASE_LIMITS.maxKeysPerLease) return { error: 'InvalidArgument', message: `lease ${item.id} already has ${LEASE_LIMITS.maxKeysPerLease} keys (what one revocation transaction deletes)` };
      fresh.push([item.id, item.key]);
      l.keys.set(hex, item.key);
      return { attached: true };
    });
    if (fresh.length > 0) {
      try {
        this.deps.propose({ t: 'leaseAttachMany', items: fresh });
      } catch (err) {
        // Not proposed (NotLeader): nothing may stay in memory that the log does not carry.
        for (const [id, key] of fresh) this.leases.get(id)?.keys.delete(hexOf(key));
        throw err;
      }
    }
    return { results };
  }

  /** revoke answers once the lease's keys are deleted and the lease is dropped (or fails when the term ends first). */
  revoke(p: LeaseMethods['leaseRevoke']['params']): Promise<LeaseMethods['leaseRevoke']['result']> {
    const l = this.live(p.id);
    this.startRevoke(l, 'revoked');
    return new Promise((resolve, reject) => l.waiters.push({ resolve: () => resolve({ revoked: true }), reject }));
  }

  timeToLive(p: LeaseMethods['leaseTimeToLive']['params']): LeaseInfo {
    return this.info(this.live(p.id), p.keys === true);
  }

  list(): LeaseMethods['leaseList']['result'] {
    return { leases: [...this.leases.values()].filter((l) => !l.revoked).sort((a, b) => a.id - b.id).map((l) => this.info(l, false)) };
  }

  private info(l: LiveLease, keys: boolean): LeaseInfo {
    return { id: l.id, ttlMs: l.ttlMs, remainingMs: Math.max(0, l.expireAtMs - this.deps.clock()), ...(keys ? { keys: [...l.keys.values()] } : {}) };
  }

  private startRevoke(l: LiveLease, why: 'revoked' | 'expired'): void {
    if (l.revoked) return;
    l.revokeIndex = this.deps.propose({ t: 'leaseRevoke', id: l.id });
    l.revoked = true;
    l.nextReapAtMs = 0;
    this.logger.info({ lease: l.id, keys: l.keys.size, why }, 'lease revoked; deleting its keys');
    this.maybeReap(l);
  }

  /** tick expires leases past their time (leader clock) and retries revocations whose transaction failed. */
  tick(): void {
    if (this.stopped) return;
    const now = this.deps.clock();
    for (const l of [...this.leases.values()]) {
      try {
        if (!l.revoked && l.expireAtMs <= now) this.startRevoke(l, 'expired');
        else if (l.revoked) this.maybeReap(l);
      } catch (err) {
        if (err instanceof PlacementInvariantError) throw err;
        if (err instanceof PlacementError && err.code === PlacementErrorCode.NotLeader) return;
        this.logger.error({ err: (err as Error).message, lease: l.id }, 'lease expiry failed');
      }
    }
  }

  private maybeReap(l: LiveLease): void {
    const reaper = this.deps.options?.reaper;
    if (this.stopped || reaper === undefined || l.reaping || this.reapsInFlight >= LEASE_LIMITS.maxConcurrentReaps || l.nextReapAtMs > this.deps.clock()) return;
    l.reaping = true;
    this.reapsInFlight++;
    const run = async (): Promise<void> => {
      await this.deps.waitApplied(l.revokeIndex);
      await l.installing?.catch(() => {});
      await reaper.reap(l.id, [...l.keys.values()]);
      await this.deps.waitApplied(this.deps.propose({ t: 'leaseDrop', id: l.id }));
    };
    run().then(
      () => {
        this.leases.delete(l.id);
        for (const w of l.waiters.splice(0)) w.resolve();
      },
      (err: unknown) => {
        if (err instanceof PlacementInvariantError) throw err;
        l.failures++;
        l.nextReapAtMs = this.deps.clock() + Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** Math.min(l.failures, 16)) * (0.5 + Math.random() / 2);
        if (!this.stopped) this.logger.warn({ lease: l.id, failures: l.failures, err: (err as Error).message }, 'deleting a revoked lease\'s keys failed; retrying');
      },
    ).finally(() => {
      l.reaping = false;
      this.reapsInFlight--;
    });
  }

  /** stop ends the term: waiting revocations get err; the next leader finishes them from the committed rows. */
  stop(err: Error): void {
    this.stopped = err;
    for (const l of this.leases.values()) for (const w of l.waiters.splice(0)) w.reject(err);
  }
}
