// Wire types of the lease API (etcd's Lease service: LeaseGrant,
// LeaseKeepAlive, LeaseRevoke, LeaseTimeToLive, LeaseLeases) plus
// leaseAttach, which a client calls before it writes a key with a lease.
// Lease state is replicated by placement (lease/store.ts); the keys are
// deleted by a LeaseReaper the process embedding placement supplies.

/** LeaseInfo: one lease as timeToLive and list show it. remainingMs is judged on the leader's clock. */
export interface LeaseInfo {
  id: number;
  ttlMs: number;
  remainingMs: number;
  /** keys: the keys attached to it (timeToLive with keys: true only). */
  keys?: Uint8Array[];
}

/**
 * LeaseReaper is how placement reaches the transactional keyspace, which
 * it cannot import (the client depends on placement, not the other way
 * round). The process that runs placement implements it with
 * @flotilla/client (client/src/lease/reaper.ts); tests inject a fake.
 *
 * Both calls must be idempotent: placement retries them until they
 * succeed (with backoff), and a new leader repeats a revocation whose
 * drop it did not see committed.
 */
export interface LeaseReaper {
  /** install writes the lease's guard key (a put with this lease reads it; grant answers after it). */
  install(leaseId: number): Promise<void>;
  /** reap deletes the guard key and every given key in ONE transaction (one revision). */
  reap(leaseId: number, keys: readonly Uint8Array[]): Promise<void>;
}

export interface LeaseMethods {
  /** leaseGrant: a new lease with a cluster-unique ID (the ID allocator's), alive for ttlMs unless kept alive. */
  leaseGrant: { params: { ttlMs: number }; result: { id: number; ttlMs: number } };
  /** leaseKeepAlive: the lease lives ttlMs from now on the leader's clock; LeaseNotFound once revoked or expired. */
  leaseKeepAlive: { params: { id: number }; result: { id: number; ttlMs: number } };
  /** leaseRevoke: revoke now; answers once every attached key is deleted (one transaction). */
  leaseRevoke: { params: { id: number }; result: { revoked: true } };
  /**
   * leaseKeepAlives: leaseKeepAlive for many leases in one request (a client keeping thousands alive
   * batches its refreshes); one result per ID, in order, LeaseNotFound per lease.
   */
  leaseKeepAlives: { params: { ids: number[] }; result: { results: ({ id: number; ttlMs: number } | { id: number; error: 'LeaseNotFound' })[] } };
  leaseTimeToLive: { params: { id: number; keys?: boolean }; result: LeaseInfo };
  leaseList: { params: Record<string, never>; result: { leases: LeaseInfo[] } };
  /** leaseAttach: attach a key before writing it with the lease; refused with LeaseNotFound once the revocation is committed. */
  leaseAttach: { params: { id: number; key: Uint8Array }; result: { attached: true } };
  /**
   * leaseAttachBatch: leaseAttach for many (lease, key) pairs in one request and one placement log entry
   * (a front writing thousands of expiring keys a second coalesces its attaches). One result per item, in
   * order: attached, or that item's refusal (LeaseNotFound once its lease's revocation is committed,
   * InvalidArgument when its lease already holds LEASE_LIMITS.maxKeysPerLease keys); the others still attach.
   */
  leaseAttachBatch: { params: { items: { id: number; key: Uint8Array }[] }; result: { results: LeaseAttachResult[] } };
}

/** LeaseAttachResult: one item of leaseAttachBatch. */
export type LeaseAttachResult = { attached: true } | { error: 'LeaseNotFound' | 'InvalidArgument'; message: string };

export type LeaseMethod = keyof LeaseMethods;
