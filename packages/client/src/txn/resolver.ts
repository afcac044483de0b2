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

/** RECENT_TS_MS: how long an oracle timestamp this client saw may stand in for "now" in checkTxnStatus. */
const RECENT_TS_MS = 50;

/**
 * ResolverState is what every LockResolver over one transport shares: the
 * final statuses learned (a committed or rolled-back transaction stays so,
 * so many readers meeting one transaction's locks ask its primary once,
 * as TiKV's client-wide resolver cache does) and the newest oracle
 * timestamp seen, with when it was seen.
 */
interface ResolverState {
  readonly final: Map<Ts, TxnStatus>;
  /** rollingBack: this client's own aborted attempts whose rollbacks are on their way (each entry leaves when its rollback answered). */
  readonly rollingBack: Map<Ts, Promise<void>>;
  recent: { ts: Ts; atMs: number } | undefined;
}

const states = new WeakMap<TxnTransport, ResolverState>();

function stateOf(t: TxnTransport): ResolverState {
  let s = states.get(t);
  if (s === undefined) states.set(t, (s = { final: new Map(), rollingBack: new Map(), recent: undefined }));
  return s;
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
  private readonly s: ResolverState;

  constructor(private readonly t: TxnTransport) {
    this.s = stateOf(t);
  }

  /** observe notes a timestamp just taken from the oracle (a start_ts), so a status check soon after needs no oracle round trip of its own. */
  observe(ts: Ts): void {
    const r = this.s.recent;
    if (r === undefined || ts >= r.ts) this.s.recent = { ts, atMs: Date.now() };
  }

  /**
   * noteRolledBack records that the transaction of startTs will never
   * commit, as decided by its own driver (an abort before the commit point),
   * whose rollback `done` is on its way: a lock of it met meanwhile waits
   * for that rollback (no second Raft proposal for the same key), and one
   * met later is rolled back at once, without a status check. action
   * 'none': no store wrote it; nothing but `status` reads it here.
   */
  noteRolledBack(startTs: Ts, done: Promise<void>): void {
    this.remember(startTs, { status: 'rolledBack', action: 'none' });
    const before = this.s.rollingBack.get(startTs);
    const all = before === undefined ? done : Promise.all([before, done]).then(() => undefined);
    this.s.rollingBack.set(startTs, all);
    void all.then(() => {
      if (this.s.rollingBack.get(startTs) === all) this.s.rollingBack.delete(startTs);
    });
  }

  private remember(startTs: Ts, status: TxnStatus): void {
    if (this.s.final.size >= STATUS_CACHE_MAX) this.s.final.clear();
    this.s.final.set(startTs, status);
  }

  /** resolve tries to clear locks met by a caller reading or writing at callerStartTs; returns the locks still held by live transactions. */
  async resolve(locks: readonly LockInfo[], callerStartTs: Ts): Promise<LockInfo[]> {
    const byTxn = new Map<Ts, LockInfo[]>();
    for (const l of locks) {
      const list = byTxn.get(l.startTs);
      if (list) list.push(l);
      else byTxn.set(l.startTs, [l]);
    }
    const live: LockInfo[] = [];
    await Promise.all(
      [...byTxn.values()].map(async (group) => {
        const ours = this.s.rollingBack.get(group[0]!.startTs);
        // Our own aborted attempt's rollback is on its way: wait for it (it never rejects); a lock it left is met again, then resolved below.
        if (ours !== undefined) return ours;
        const status = await this.status(group[0]!, callerStartTs);
        if (status.status === 'locked') {
          live.push(...group);
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
   * currentTs is the "now" a status check sends: an oracle timestamp seen
   * within RECENT_TS_MS (a start_ts of this client's), else a fresh one.
   * Any timestamp the oracle already handed out is a sound currentTs (the
   * primary decides expiry from it, and an older one only says "not
   * expired yet" a little longer); a fresh one is fetched once the lock may
   * have expired by the recent one's clock, so expiry is never put off.
   */
  private async currentTs(lock: LockInfo): Promise<Ts> {
    const r = this.s.recent;
    const nowMs = Date.now();
    if (r !== undefined && nowMs - r.atMs < RECENT_TS_MS && physicalMs(r.ts) + (nowMs - r.atMs) < physicalMs(lock.startTs) + lock.ttlMs) return r.ts;
    const ts = await this.t.timestamp();
    this.observe(ts);
    return ts;
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
    const final = this.s.final;
    const known = final.get(lock.startTs);
    if (known) return known;
    const currentTs = await this.currentTs(lock);
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
    if (status.status !== 'locked') this.remember(lock.startTs, status);
    return status;
  }
}

/** expectType narrows a store's TxnResult to the type the command asks for; any other answer is a store bug, reported as Unavailable. */
export function expectType<K extends TxnResult['type']>(r: TxnResult, type: K): Extract<TxnResult, { type: K }> {
  if (r.type !== type) throw new ClientError('Unavailable', `store answered a ${type} command with a ${r.type} result`);
  return r as Extract<TxnResult, { type: K }>;
}
