import type { LockInfo, Ts, TxnResult, TxnStatus } from '@flotilla/proto';
import { ClientError } from '../errors';
import type { TxnTransport } from './transport';

/** TS_LOGICAL_BITS: a hybrid timestamp is physicalMs << 18 | logical. */
const TS_LOGICAL_BITS = 18n;
/** STATUS_CACHE_MAX bounds the final statuses remembered (committed / rolled back never change). */
const STATUS_CACHE_MAX = 4096;

/** physicalMs is the wall-clock part of a hybrid timestamp. */
export function physicalMs(ts: Ts): number {
  return Number(ts >> TS_LOGICAL_BITS);
}

/**
 * LockResolver clears the locks a reader or a prewrite ran into (TiKV's
 * lock resolver). For each transaction behind the locks it asks the
 * transaction's primary (checkTxnStatus, currentTs from the oracle):
 *   committed          → resolveLock commits the locks at the commit ts
 *   rolled back        → resolveLock rolls them back
 *   expired            → checkTxnStatus itself rolls the primary back, then as above
 *   locked and alive   → left alone; the caller backs off and tries again
 * The primary decides, never the secondary: a secondary's lock is only
 * committed or removed according to its primary, which is what keeps a
 * transaction atomic when its client died between prewrite and commit.
 */
export class LockResolver {
  private readonly final = new Map<Ts, TxnStatus>();

  constructor(private readonly t: TxnTransport) {}

  /** resolve tries to clear locks met by a caller reading or writing at callerStartTs; returns how many are still held by live transactions. */
  async resolve(locks: readonly LockInfo[], callerStartTs: Ts): Promise<number> {
    const byTxn = new Map<Ts, LockInfo[]>();
    for (const l of locks) {
      const list = byTxn.get(l.startTs);
      if (list) list.push(l);
      else byTxn.set(l.startTs, [l]);
    }
    let live = 0;
    await Promise.all(
      [...byTxn.values()].map(async (group) => {
        const status = await this.status(group[0]!, callerStartTs);
        if (status.status === 'locked') {
          live += group.length;
          return;
        }
        const commitTs = status.status === 'committed' ? status.commitTs : 0n;
        const startTs = group[0]!.startTs;
        const results = await this.t.forKeys(
          group.map((l) => l.key),
          (keys) => ({ type: 'resolveLock', startTs, commitTs, keys }),
        );
        for (const r of results) expectType(r.result, 'resolveLock');
      }),
    );
    return live;
  }

  /**
   * status asks lock's primary what became of its transaction. It asks the
   * primary to write a rollback record when it finds nothing only once the
   * lock's TTL has passed: before that, the primary's prewrite may still be
   * on its way (the prewrites of one transaction run in parallel). A
   * 'rolledBack'/'none' answer to a question that did not allow that is
   * taken as "not known yet" (the store cannot tell an old rollback record
   * from nothing in that answer), so the caller waits for the TTL.
   */
  private async status(lock: LockInfo, callerStartTs: Ts): Promise<TxnStatus> {
    const known = this.final.get(lock.startTs);
    if (known) return known;
    const currentTs = await this.t.timestamp();
    const expired = physicalMs(lock.startTs) + lock.ttlMs < physicalMs(currentTs);
    const r = expectType(
      await this.t.forKey(lock.primary, {
        type: 'checkTxnStatus',
        primary: lock.primary,
        startTs: lock.startTs,
        currentTs,
        callerStartTs,
        rollbackIfNotExist: expired,
      }),
      'checkTxnStatus',
    );
    const status: TxnStatus = r.status === 'locked' ? { status: 'locked', lock: r.lock } : r.status === 'committed' ? { status: 'committed', commitTs: r.commitTs } : { status: 'rolledBack', action: r.action };
    if (status.status === 'rolledBack' && status.action === 'none' && !expired) return { status: 'locked', lock };
    if (status.status !== 'locked') {
      if (this.final.size >= STATUS_CACHE_MAX) this.final.clear();
      this.final.set(lock.startTs, status);
    }
    return status;
  }
}

/** expectType narrows a store's TxnResult to the type the command asks for; any other answer is a store bug, reported as Unavailable. */
export function expectType<K extends TxnResult['type']>(r: TxnResult, type: K): Extract<TxnResult, { type: K }> {
  if (r.type !== type) throw new ClientError('Unavailable', `store answered a ${type} command with a ${r.type} result`);
  return r as Extract<TxnResult, { type: K }>;
}
