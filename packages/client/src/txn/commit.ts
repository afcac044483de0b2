import assert from 'node:assert/strict';
import { TXN_LIMITS, silentLogger, type KeyError, type LockInfo, type Logger, type Mutation, type Ts, type TxnCommand } from '@flotilla/proto';
import { ClientError } from '../errors';
import { TxnAbortedError } from './errors';
import { expectType, type LockResolver } from './resolver';
import { hexKey } from './snapshot';
import type { Pacer } from './pacer';
import { timed, type TxnTrace } from './trace';
import type { TxnTransport } from './transport';

/**
 * TxnHooks are test seams: each runs at one step of the commit. A hook
 * that throws stops the driver right there, with no cleanup, as if the
 * client process died (the error is rethrown as is): what it leaves behind
 * (locks, a committed primary with uncommitted secondaries) is for readers
 * to resolve.
 */
export interface TxnHooks {
  /** afterPrewrite: every key is locked, commit_ts not yet taken. */
  afterPrewrite?: (info: { startTs: Ts; primary: Uint8Array }) => void | Promise<void>;
  /** afterCommitPrimary: the primary is committed (the transaction is), the secondaries are not. */
  afterCommitPrimary?: (info: { startTs: Ts; commitTs: Ts }) => void | Promise<void>;
}

export interface CommitOptions {
  readonly lockTtlMs: number;
  readonly onePc: boolean;
  /** startedAtMs: when start_ts was taken (by the local clock), for heartbeat TTLs. */
  readonly startedAtMs: number;
  readonly waitForSecondaries: boolean;
  readonly hooks?: TxnHooks | undefined;
  readonly logger?: Logger | undefined;
  readonly trace?: TxnTrace | undefined;
  /**
   * rollbackInBackground: an abort sends its rollbacks without waiting for
   * them (pendingRollback holds them), after telling the resolver the
   * transaction is rolled back; false waits for them (the previous path).
   */
  readonly rollbackInBackground?: boolean | undefined;
}

/** CommitResult says how the transaction committed. */
export interface CommitResult {
  commitTs: Ts;
  onePc: boolean;
}

/**
 * Committer runs Percolator's two-phase commit of one transaction's
 * mutations (mutations[0] is the primary): prewrite every key grouped by
 * Region, in parallel; take commit_ts from the oracle; commit the primary
 * (the transaction's commit point); then commit the secondaries in the
 * background (readers that meet their locks commit them from the
 * primary's record). When every key is in one Region it asks for 1PC.
 */
export class Committer {
  private readonly byKey = new Map<string, Mutation>();
  private readonly primary: Uint8Array;
  private readonly logger: Logger;
  /** askedOnePc: a 1PC prewrite was built (the only command the transport does not resend, so the only one that can end Undetermined). */
  private askedOnePc = false;
  /** noOnePc: after an undetermined 1PC attempt, finish in two phases. */
  private noOnePc = false;
  /** rollingBack: the rollbacks sent in the background (they never reject); runTxn waits for them before its next commit or its end. */
  private rollingBack: Promise<void> | undefined;

  constructor(
    private readonly t: TxnTransport,
    private readonly resolver: LockResolver,
    private readonly pacer: Pacer,
    private readonly startTs: Ts,
    private readonly mutations: Mutation[],
    private readonly opts: CommitOptions,
  ) {
    for (const m of mutations) this.byKey.set(hexKey(m.key), m);
    this.primary = mutations[0]!.key;
    this.logger = opts.logger ?? silentLogger;
  }

  async commit(): Promise<CommitResult> {
    const hb = this.startHeartbeat();
    let commitTs: Ts;
    try {
      const onePcTs = await this.prewrite();
      if (onePcTs !== undefined) return { commitTs: onePcTs, onePc: true };
      await this.opts.hooks?.afterPrewrite?.({ startTs: this.startTs, primary: this.primary });
      commitTs = await this.commitPrimary();
    } finally {
      hb.stop();
    }
    await this.opts.hooks?.afterCommitPrimary?.({ startTs: this.startTs, commitTs });
    const secondaries = this.commitSecondaries(commitTs);
    if (this.opts.waitForSecondaries) await secondaries;
    return { commitTs, onePc: false };
  }

  /** prewrite locks every key (resolving other transactions' locks on the way); returns the commit ts when the store committed in one phase. */
  private async prewrite(): Promise<Ts | undefined> {
    const all = this.mutations.map((m) => m.key);
    const locked: Uint8Array[] = [];
    let pending = all;
    for (;;) {
      let groups;
      try {
        groups = await timed(this.opts.trace, 'prewrite', () => this.t.forKeys(pending, (keys, g) => this.prewriteCommand(keys, g.allKeys && g.onePcRefused !== true)));
      } catch (err) {
        if (err instanceof ClientError && err.code === 'Undetermined' && this.askedOnePc) return this.learnOnePcFate(err);
        await this.rollback(all);
        throw abortFor(err, 'prewrite');
      }
      const locks: LockInfo[] = [];
      let stop: KeyError | undefined;
      let onePcTs: Ts | undefined;
      const retry: Uint8Array[] = [];
      for (const { keys, result } of groups) {
        const r = expectType(result, 'prewrite');
        if (r.errors.length === 0) {
          locked.push(...keys);
          if (r.onePcCommitTs !== undefined && r.onePcCommitTs > 0n) onePcTs = r.onePcCommitTs;
          continue;
        }
        retry.push(...keys);
        for (const e of r.errors) {
          if (e.type === 'KeyIsLocked') locks.push(e.lock);
          else if (stop === undefined || e.type === 'WriteConflict') stop = e;
        }
      }
      if (stop) {
        await this.rollback(locked);
        throw abortForKeyError(stop);
      }
      if (locks.length === 0) return onePcTs;
      await this.waitForLocks(locks, locked);
      pending = retry;
    }
  }

  /** prewriteCommand builds one group's prewrite; 1PC only for the whole transaction in one Region that has not refused it. */
  private prewriteCommand(keys: Uint8Array[], onePcAllowed: boolean): TxnCommand {
    const onePc = this.opts.onePc && !this.noOnePc && onePcAllowed && keys.length === this.mutations.length;
    if (onePc) this.askedOnePc = true;
    return {
      type: 'prewrite',
      mutations: keys.map((k) => this.byKey.get(hexKey(k))!),
      primary: this.primary,
      startTs: this.startTs,
      lockTtlMs: this.opts.lockTtlMs,
      txnSize: keys.length,
      ...(onePc ? { onePc: true } : {}),
    };
  }

  /**
   * waitForLocks resolves the locks in the way; while some are alive it
   * backs off, and past the deadline aborts (LockTimeout). A live lock of a
   * transaction that started after ours aborts this attempt at once (a
   * retryable WriteConflict): if that transaction commits, its commit_ts
   * is above our start_ts and our prewrite conflicts anyway, so waiting
   * only delays the retry. It also means a prewrite waits only for older
   * transactions, so two transactions prewriting each other's keys never
   * wait for each other until a TTL runs out (no wait cycle).
   */
  private async waitForLocks(locks: LockInfo[], locked: Uint8Array[]): Promise<void> {
    let live: LockInfo[];
    try {
      live = await timed(this.opts.trace, 'resolve', () => this.resolver.resolve(locks, this.startTs));
    } catch (err) {
      await this.rollback(locked);
      throw abortFor(err, 'resolving locks');
    }
    if (live.length === 0) return this.pacer.reset('lock');
    const newer = live.find((l) => l.startTs > this.startTs);
    if (newer !== undefined) {
      await this.rollback(locked);
      throw new TxnAbortedError('WriteConflict', `key ${keyText(newer.key)} is locked by a live transaction that started after ours (start_ts ${newer.startTs} > ${this.startTs}): it would commit after our start_ts`);
    }
    if (!(await this.pacer.wait('lock'))) {
      await this.rollback(locked);
      throw new TxnAbortedError('LockTimeout', `${live.length} key(s) still locked by other live transactions at the deadline (start_ts ${live[0]!.startTs})`);
    }
  }

  /**
   * commitPrimary commits the primary key: the transaction's commit point.
   * A commit whose answer was lost is sent again with the same commit_ts
   * (commit is idempotent, and a late first copy then commits at the ts we
   * report); only CommitTsExpired takes a new one.
   */
  private async commitPrimary(): Promise<Ts> {
    let commitTs = await this.takeCommitTs();
    for (;;) {
      let r;
      try {
        r = expectType(await timed(this.opts.trace, 'commitPrimary', () => this.t.forKey(this.primary, { type: 'commit', keys: [this.primary], startTs: this.startTs, commitTs })), 'commit');
      } catch (err) {
        const fate = await this.learnFate(err);
        if (fate !== 'locked') return fate;
        continue; // our lock is still there: the commit has not applied (yet); send it again
      }
      const e = r.errors[0];
      if (!e) return commitTs;
      if (e.type === 'CommitTsExpired') {
        commitTs = await this.takeCommitTs();
        continue;
      }
      if (e.type === 'Committed') return e.commitTs;
      await this.rollback(this.mutations.slice(1).map((m) => m.key));
      throw abortForKeyError(e);
    }
  }

  private async takeCommitTs(): Promise<Ts> {
    try {
      return await timed(this.opts.trace, 'commitTs', () => this.t.timestamp());
    } catch (err) {
      await this.rollback(this.mutations.map((m) => m.key));
      throw abortFor(err, 'taking commit_ts');
    }
  }

  /**
   * learnFate asks the primary, after its commit failed in flight, what
   * became of the transaction: committed (the answer was lost), rolled back
   * (a reader found it expired), or still locked (the commit never
   * applied). Undetermined only when even that cannot be learned.
   */
  private async learnFate(cause: unknown): Promise<Ts | 'locked'> {
    try {
      const currentTs = await this.t.timestamp();
      const r = expectType(
        await this.t.forKey(this.primary, { type: 'checkTxnStatus', primary: this.primary, startTs: this.startTs, currentTs, callerStartTs: 0n, rollbackIfNotExist: true }),
        'checkTxnStatus',
      );
      if (r.status === 'committed') return r.commitTs;
      if (r.status === 'locked') {
        if (this.pacer.expired()) throw cause;
        return 'locked';
      }
      throw new TxnAbortedError('Rolledback', `the primary was rolled back (${r.action}) while its commit was in flight`, undefined, cause);
    } catch (err) {
      if (err instanceof TxnAbortedError) throw err;
      const why = cause instanceof Error ? cause.message : String(cause);
      throw new ClientError('Undetermined', `commit of the primary of start_ts ${this.startTs} was sent and its outcome cannot be learned: ${why}`, undefined, err);
    }
  }

  /**
   * learnOnePcFate: a 1PC prewrite failed in flight; the primary's status
   * says whether it committed (checkTxnStatus writes a rollback record if
   * nothing is there). A lock on the primary means the store took it as a
   * 2PC prewrite, perhaps of some keys only (a split re-grouped them): lock
   * every key with plain prewrites (our own locks are no conflict), then
   * commit in two phases.
   */
  private async learnOnePcFate(cause: ClientError): Promise<Ts | undefined> {
    const fate = await this.learnFate(cause);
    if (fate !== 'locked') return fate;
    this.noOnePc = true;
    const again = await this.prewrite();
    assert.equal(again, undefined, 'a prewrite without onePc answered a 1PC commit ts');
    return undefined;
  }

  /** commitSecondaries commits the other keys; failures are logged only (readers resolve the locks from the primary). */
  private async commitSecondaries(commitTs: Ts): Promise<void> {
    const keys = this.mutations.slice(1).map((m) => m.key);
    if (keys.length === 0) return;
    try {
      const groups = await timed(this.opts.trace, 'secondaries', () => this.t.forKeys(keys, (ks) => ({ type: 'commit', keys: ks, startTs: this.startTs, commitTs })));
      for (const { result } of groups) {
        // The primary is committed, so a secondary's lock can only have been committed (fine) or, if anything
        // rolled it back, the transaction is no longer atomic: say so loudly, it is a bug somewhere.
        const bad = result.type === 'commit' ? result.errors.find((e) => e.type !== 'Committed') : undefined;
        if (bad) this.logger.error({ startTs: String(this.startTs), commitTs: String(commitTs), error: bad.type }, 'txn: a secondary of a committed transaction could not be committed');
      }
    } catch (err) {
      this.logger.debug({ startTs: String(this.startTs), err: (err as Error).message }, 'txn: committing secondaries failed; readers will resolve their locks');
    }
  }

  /** pendingRollback: the rollbacks an abort sent in the background, if any (resolves once all answered or failed; never rejects). */
  get pendingRollback(): Promise<void> | undefined {
    return this.rollingBack;
  }

  /**
   * rollback removes our locks on keys and leaves rollback records (best
   * effort: locks left behind expire and readers roll them back). Every
   * caller has decided the transaction will not commit (nothing was sent
   * for the commit point, or the primary is gone), so with
   * rollbackInBackground it is final: the resolver learns the transaction
   * is rolled back (our next attempt's reads meeting these locks wait for
   * this rollback, not for a TTL, and send no resolveLock of their own), and
   * the rollbacks leave the caller's path:
   * the retry's backoff, start_ts and reads overlap them (client-go's
   * asynchronous cleanup after a failed prewrite does the same).
   */
  private async rollback(keys: Uint8Array[]): Promise<void> {
    if (keys.length === 0) return;
    if (this.opts.rollbackInBackground !== true) return this.sendRollback(keys);
    const sent = this.sendRollback(keys);
    this.resolver.noteRolledBack(this.startTs, sent);
    const before = this.rollingBack;
    this.rollingBack = before === undefined ? sent : Promise.all([before, sent]).then(() => undefined);
  }

  private async sendRollback(keys: Uint8Array[]): Promise<void> {
    try {
      await timed(this.opts.trace, 'rollback', () => this.t.forKeys(keys, (ks) => ({ type: 'rollback', keys: ks, startTs: this.startTs })));
    } catch (err) {
      this.logger.debug({ startTs: String(this.startTs), err: (err as Error).message }, 'txn: rollback failed; the locks will expire');
    }
  }

  /** startHeartbeat extends the primary's TTL every half TTL while the commit runs, so a long commit is not rolled back by readers. */
  private startHeartbeat(): { stop(): void } {
    const { lockTtlMs, startedAtMs } = this.opts;
    let inFlight = false;
    const timer = setInterval(() => {
      if (inFlight) return;
      inFlight = true;
      const adviseTtlMs = Math.min(TXN_LIMITS.maxLockTtlMs, Date.now() - startedAtMs + lockTtlMs);
      this.t
        .forKey(this.primary, { type: 'txnHeartBeat', primary: this.primary, startTs: this.startTs, adviseTtlMs })
        .catch((err: unknown) => this.logger.debug({ err: (err as Error).message }, 'txn: heartbeat failed'))
        .finally(() => (inFlight = false));
    }, Math.max(1, Math.floor(lockTtlMs / 2)));
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }
}

/** abortFor turns a failure before the commit point into an abort (nothing committed; locks are rolled back or expire). */
function abortFor(err: unknown, step: string): Error {
  if (err instanceof TxnAbortedError) return err;
  if (err instanceof ClientError) {
    const reason = err.code === 'Timeout' ? 'Timeout' : 'Failed';
    return new TxnAbortedError(reason, `${step} failed before the commit point: ${err.message}`, undefined, err);
  }
  return err instanceof Error ? err : new Error(String(err));
}

function abortForKeyError(e: KeyError): TxnAbortedError {
  switch (e.type) {
    case 'WriteConflict':
      return new TxnAbortedError('WriteConflict', `key ${keyText(e.key)} was written by a transaction that committed at ${e.conflictCommitTs} (start_ts ${e.conflictStartTs}), after our start_ts ${e.startTs}`, e);
    case 'Rolledback':
    case 'TxnLockNotFound':
      return new TxnAbortedError('Rolledback', `start_ts ${e.startTs} was rolled back on key ${keyText(e.key)} (by a reader that found its lock expired)`, e);
    default:
      return new TxnAbortedError('Failed', `the store answered ${e.type}`, e);
  }
}

function keyText(k: Uint8Array): string {
  const s = Buffer.from(k).toString('utf8');
  return /^[\x20-\x7e]*$/.test(s) ? JSON.stringify(s) : `0x${Buffer.from(k).toString('hex')}`;
}
