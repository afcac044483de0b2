import type { LeaseInfo } from '@flotilla/placement/client';
import { checkKey, checkValue, type Bytes } from '../bytes';
import { ClientError } from '../errors';
import type { Transaction, TxnOptions, TxnOutcome } from '../txn/txn';
import { guardKey, isInternalKey } from './guard';
import { AttachBatcher, type AttachItemResult } from './attach-batcher';
import { KeepAliveBatcher } from './batcher';
import { KeepAlive, type KeepAliveResponse } from './keepalive';

/** LeaseApi: the placement calls leases need (PlacementClient has them). */
export interface LeaseApi {
  leaseGrant(ttlMs: number): Promise<{ id: number; ttlMs: number }>;
  leaseKeepAlive(id: number): Promise<{ id: number; ttlMs: number }>;
  /** leaseKeepAlives: many refreshes in one request (optional: without it every refresh is its own request). */
  leaseKeepAlives?(ids: number[]): Promise<({ id: number; ttlMs: number } | { id: number; error: 'LeaseNotFound' })[]>;
  leaseRevoke(id: number): Promise<void>;
  leaseTimeToLive(id: number, keys?: boolean): Promise<LeaseInfo>;
  leaseList(): Promise<LeaseInfo[]>;
  leaseAttach(id: number, key: Uint8Array): Promise<void>;
  /** leaseAttachBatch: many attaches in one request (optional: without it, or from a placement that answers UnknownMethod, each is its own leaseAttach). */
  leaseAttachBatch?(items: { id: number; key: Uint8Array }[]): Promise<AttachItemResult[]>;
}

export interface LeaseDeps {
  /** api: placement's lease calls, or undefined when the client's route provider has none. */
  api: LeaseApi | undefined;
  /** placement runs a placement call with the client's retries and deadline (ClientError on failure). */
  placement: <T>(what: string, fn: () => Promise<T>) => Promise<T>;
  runTxn: <T>(fn: (tx: Transaction) => Promise<T> | T, opts?: TxnOptions) => Promise<TxnOutcome<T>>;
}

/** mapped turns placement's typed lease errors (wrapped by the client's retry loop) into the client's codes. */
function mapped(err: unknown): unknown {
  const cause = err instanceof ClientError ? (err.cause as { code?: unknown; message?: string } | undefined) : undefined;
  if (cause?.code === 'LeaseNotFound') return new ClientError('LeaseNotFound', cause.message ?? 'lease not found', undefined, cause);
  if (cause?.code === 'InvalidArgument') return new ClientError('InvalidArgument', cause.message ?? 'invalid argument', undefined, cause);
  return err;
}

function leaseId(id: number): number {
  if (!Number.isSafeInteger(id) || id <= 0) throw new ClientError('InvalidArgument', `lease: expected a positive integer ID, got ${String(id)}`);
  return id;
}

/**
 * LeaseClient is `client.lease` (etcd's Lease API on placement's replicated
 * lease state): grant, keepAlive, revoke, timeToLive, list, and put with a
 * lease in the transactional keyspace. Errors are ClientErrors; a lease
 * that expired or was revoked is `LeaseNotFound`.
 */
export class LeaseClient {
  /** batcher: refreshes of all this client's leases, coalesced (when placement has leaseKeepAlives). */
  private readonly batcher: KeepAliveBatcher | undefined;
  /** attacher: attaches of attachKeyBatched, coalesced (when placement has leaseAttachBatch). */
  private readonly attacher: AttachBatcher | undefined;
  /** attachBatchUnknown: placement answered UnknownMethod (older than leaseAttachBatch): attach one key per request from then on. */
  private attachBatchUnknown = false;

  constructor(private readonly deps: LeaseDeps) {
    const api = deps.api;
    if (api?.leaseKeepAlives) this.batcher = new KeepAliveBatcher((ids) => this.call('keepalive', () => api.leaseKeepAlives!(ids)));
    if (api?.leaseAttachBatch) this.attacher = new AttachBatcher((items) => this.call('attach', () => api.leaseAttachBatch!(items)));
  }

  private async call<T>(what: string, fn: (api: LeaseApi) => Promise<T>): Promise<T> {
    const api = this.deps.api;
    if (api === undefined) throw new ClientError('Unavailable', `lease ${what}: this client's route provider has no lease calls (connect with placement addresses)`);
    try {
      return await this.deps.placement(`lease ${what}`, () => fn(api));
    } catch (err) {
      throw mapped(err);
    }
  }

  /** grant: a lease alive for ttlMs (at least 200 ms) unless kept alive. A grant whose answer was lost may leave an unused lease that expires by itself. */
  grant(ttlMs: number): Promise<{ id: number; ttlMs: number }> {
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) return Promise.reject(new ClientError('InvalidArgument', `ttlMs: expected a positive integer, got ${String(ttlMs)}`));
    return this.call('grant', (a) => a.leaseGrant(ttlMs));
  }

  /** keepAliveOnce refreshes the lease once. */
  keepAliveOnce(id: number): Promise<KeepAliveResponse> {
    const b = this.batcher;
    if (b) {
      try {
        return b.refresh(leaseId(id));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    return this.call('keepalive', (a) => a.leaseKeepAlive(leaseId(id)));
  }

  /** keepAlive refreshes the lease every ttl/3 until closed or lost (first checks that it is alive). */
  async keepAlive(id: number, opts: { intervalMs?: number } = {}): Promise<KeepAlive> {
    const first = await this.keepAliveOnce(id);
    return new KeepAlive({ id, ttlMs: first.ttlMs, refresh: (x) => this.keepAliveOnce(x), ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}) });
  }

  /** revoke deletes every key attached to the lease in one transaction, then the lease. */
  revoke(id: number): Promise<void> {
    return this.call('revoke', (a) => a.leaseRevoke(leaseId(id)));
  }

  timeToLive(id: number, opts: { keys?: boolean } = {}): Promise<LeaseInfo> {
    return this.call('ttl', (a) => a.leaseTimeToLive(leaseId(id), opts.keys === true));
  }

  list(): Promise<LeaseInfo[]> {
    return this.call('list', (a) => a.leaseList());
  }

  /**
   * attach makes key one of the lease's keys (placement refuses once the
   * revocation is committed) and checks, in tx, that the lease's guard is
   * still there: call it inside client.txn before tx.put(key, ...), so the
   * put commits only if the revocation did not commit before tx started
   * (and a revocation committing after conflicts with the put on the key).
   * tx's later puts of key carry the lease (Transaction.attachLease).
   */
  async attach(tx: Transaction, key: Bytes, id: number): Promise<void> {
    await this.attachKey(key, id);
    if ((await tx.get(guardKey(id))) === null) throw new ClientError('LeaseNotFound', `lease ${id} was revoked before this transaction started`);
    tx.attachLease(key, id);
  }

  /**
   * attachKey is attach's first step alone: placement records key in the
   * lease's list (LeaseNotFound once the revocation is committed). For a
   * caller that then proves, its own way, that the revocation did not
   * commit before its transaction's start ts (the Redis front's LeaseBook:
   * the guard read at start ts, or else at a fresh snapshot, for a lease
   * granted while the transaction ran), and writes with the lease
   * explicitly (tx.put(key, value, { lease })).
   */
  async attachKey(key: Bytes, id: number): Promise<void> {
    const k = checkKey(key, 'key');
    if (isInternalKey(k)) throw new ClientError('InvalidArgument', 'key: keys starting with 0xFF 0xFF "flotilla/" are reserved');
    await this.call('attach', (a) => a.leaseAttach(leaseId(id), k));
  }

  /**
   * attachKeyBatched is attachKey with the same answers, coalesced with the
   * concurrent attaches of this client into one leaseAttachBatch request
   * (one placement log entry) per round trip. Against a placement older
   * than leaseAttachBatch it is attachKey.
   */
  async attachKeyBatched(key: Bytes, id: number): Promise<void> {
    const k = checkKey(key, 'key');
    if (isInternalKey(k)) throw new ClientError('InvalidArgument', 'key: keys starting with 0xFF 0xFF "flotilla/" are reserved');
    const lease = leaseId(id);
    if (this.attacher === undefined || this.attachBatchUnknown) return this.attachKey(k, lease);
    try {
      await this.attacher.attach(lease, k);
    } catch (err) {
      const cause = err instanceof ClientError ? (err.cause as { code?: unknown } | undefined) : undefined;
      if (cause?.code !== 'UnknownMethod') throw err;
      this.attachBatchUnknown = true;
      await this.attachKey(k, lease);
    }
  }

  /** put writes key = value in the transactional keyspace, attached to the lease (deleted with it unless a later write or delete detaches it); resolves with the commit ts (the key's revision). */
  async put(key: Bytes, value: Bytes, id: number, opts?: TxnOptions): Promise<{ commitTs: bigint }> {
    const k = checkKey(key, 'key');
    const v = checkValue(value, 'value');
    let attached = false;
    const out = await this.deps.runTxn(async (tx) => {
      if (!attached) {
        await this.attach(tx, k, id);
        attached = true;
      } else if ((await tx.get(guardKey(id))) === null) {
        throw new ClientError('LeaseNotFound', `lease ${id} was revoked before this transaction started`);
      }
      tx.put(k, v, { lease: id });
    }, opts);
    return { commitTs: out.commitTs };
  }
}
