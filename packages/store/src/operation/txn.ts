import { keyInRegion, TXN_LIMITS, type ClientRequest, type TxnCommand } from '@flotilla/proto';
import { physicalMs } from '@flotilla/kv-engine';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import type { Callback, CommandResult } from '../raft/proposal';
import { encodeCommand, err } from './command/command';
import { propose } from './command/propose';
import { serveReads } from './query';

type TxnRequest = Extract<ClientRequest, { op: 'txn' }>;

/** txnKeys lists the keys a command names (resolveLock without keys names the whole Region: none). */
function txnKeys(c: TxnCommand): Uint8Array[] {
  switch (c.type) {
    case 'prewrite':
      return c.mutations.map((m) => m.key);
    case 'commit':
    case 'rollback':
      return c.keys;
    case 'resolveLock':
      return c.keys ?? [];
    case 'checkTxnStatus':
    case 'txnHeartBeat':
      return [c.primary];
  }
}

/**
 * validateTxn refuses, before anything is proposed, what no table contents
 * could make valid: keys outside the Region, a start_ts (or currentTs) too
 * far ahead of this store's clock to come from the oracle, a commit ts not
 * above start_ts, duplicate or oversized mutations. Outcomes that depend on
 * the tables are decided at apply, where every replica agrees.
 */
export function validateTxn(ctx: StoreContext, peer: Peer, c: TxnCommand): CommandResult | undefined {
  for (const k of txnKeys(c)) if (!keyInRegion(k, peer.region)) return err.keyNotInRegion(k, peer.region);
  const limit = ctx.now() + TXN_LIMITS.maxFutureMs;
  const stamps: [string, bigint][] = [['start_ts', c.startTs]];
  if (c.type === 'checkTxnStatus') stamps.push(['current_ts', c.currentTs]);
  for (const [name, ts] of stamps) {
    if (physicalMs(ts) > limit) return err.invalid(`${name} ${ts} is ${physicalMs(ts) - ctx.now()} ms ahead of this store's clock (more than TXN_LIMITS.maxFutureMs = ${TXN_LIMITS.maxFutureMs}): it did not come from the timestamp oracle`);
  }
  if ((c.type === 'commit' || (c.type === 'resolveLock' && c.commitTs !== 0n)) && c.commitTs <= c.startTs) {
    return err.invalid(`commit_ts ${c.commitTs} must be above start_ts ${c.startTs}`);
  }
  if (c.type !== 'prewrite') return undefined;
  if (c.mutations.length > TXN_LIMITS.maxKeys) return err.invalid(`prewrite of ${c.mutations.length} keys exceeds TXN_LIMITS.maxKeys = ${TXN_LIMITS.maxKeys}`);
  let bytes = 0;
  const seen = new Set<string>();
  for (const m of c.mutations) {
    bytes += m.key.length + (m.op === 'put' ? m.value.length : 0);
    const h = Buffer.from(m.key).toString('latin1');
    if (seen.has(h)) return err.invalid(`prewrite names key ${Buffer.from(m.key).toString('hex')} twice`);
    seen.add(h);
  }
  if (bytes > TXN_LIMITS.maxBytes) return err.invalid(`prewrite of ${bytes} bytes exceeds TXN_LIMITS.maxBytes = ${TXN_LIMITS.maxBytes}`);
  return undefined;
}

/** startTxn proposes a Percolator command (checked first); a 1PC prewrite takes the fast path. */
export function startTxn(ctx: StoreContext, peer: Peer, req: TxnRequest, cb: Callback): void {
  const bad = validateTxn(ctx, peer, req.txn);
  if (bad) return cb(bad);
  if (req.txn.type === 'prewrite' && req.txn.onePc === true) return startOnePc(ctx, peer, req, cb);
  const data = encodeCommand({ header: req.header, writes: [], txn: req.txn });
  peer.flow.write(txnKeys(req.txn).length, data.length);
  propose(ctx, peer, data, cb);
}

/**
 * startOnePc is the 1PC fast path. The leader locks the keys in its memory
 * lock table, THEN asks placement's oracle for the commit ts, then proposes
 * one entry carrying it; apply runs prewrite's checks and writes the commit
 * records directly (or only the KeyErrors). The memory locks go when the
 * entry's answer comes (applied, failed or superseded).
 *
 * Why the commit ts is above every snapshot read ts R that could miss the
 * write: reads are served on this leader (ReadIndex or lease), and each
 * checks the memory lock table when it is served. A read served while the
 * keys are memory-locked with start_ts <= R waits until the entry applied,
 * then sees the write if commit_ts <= R. A read served before the keys were
 * locked got R from the oracle before it was served, so before the lock,
 * so before the commit ts was asked for: the oracle is monotonic, hence
 * commit_ts > R, and missing the write is right. A read served after the
 * entry applied sees it. A new leader serves no read before its own term's
 * entry commits, so this entry is then either applied there or lost. A
 * lock of start_ts > R never matters to R (commit_ts > start_ts > R).
 * If the oracle does not answer, the client gets ServerIsBusy and commits in
 * two phases instead.
 */
function startOnePc(ctx: StoreContext, peer: Peer, req: TxnRequest, cb: Callback): void {
  const pw = req.txn as Extract<TxnCommand, { type: 'prewrite' }>;
  const lock = ctx.memLocks.add(pw.mutations.map((m) => m.key), pw.startTs, pw.primary);
  if (lock === undefined) return cb(err.busy('too many one-phase commits in flight on this store', 20));
  let released = false;
  const answer: Callback = (r) => {
    if (!released) {
      released = true;
      ctx.memLocks.release(lock);
      // Snapshot reads waiting on the lock may go now.
      if (ctx.peers.get(peer.regionId) === peer) serveReads(peer);
    }
    cb(r);
  };
  const oracle = ctx.pd.timestamp?.bind(ctx.pd) ?? (() => Promise.reject(new Error('this placement client has no timestamp oracle')));
  // The memory locks must not outlive a hung oracle: past the bound the 1PC is refused (nothing was proposed yet).
  let waiting = true;
  const refuse = (why: string): void => {
    if (!waiting) return;
    waiting = false;
    warnOracle(ctx, peer.regionId, why);
    answer(err.busy(`one-phase commit needs a commit ts and the timestamp oracle did not give one (${why}); commit in two phases`, 20));
  };
  const timer = setTimeout(() => refuse(`no answer within ${ONE_PC_TS_TIMEOUT_MS} ms`), ONE_PC_TS_TIMEOUT_MS);
  oracle().then(
    (commitTs) => {
      clearTimeout(timer);
      if (!waiting) return;
      waiting = false;
      if (ctx.closed || ctx.peers.get(peer.regionId) !== peer) return answer(err.regionNotFound(peer.regionId));
      ctx.send(peer, { kind: 'proposeOnePc', req, commitTs, cb: answer });
    },
    (e: unknown) => {
      clearTimeout(timer);
      refuse((e as Error).message);
    },
  );
}

/** ONE_PC_TS_TIMEOUT_MS bounds a 1PC's wait for its commit ts (and so how long its memory locks can hold readers). */
export const ONE_PC_TS_TIMEOUT_MS = 5_000;

/** oracleWarned: per store, when the last "no commit ts" warning was logged and how many failures it has not reported yet. */
const oracleWarned = new WeakMap<StoreContext, { atMs: number; since: number }>();

/** warnOracle logs a 1PC that got no commit ts, at most once per 10 s per store (with the count since the last line). */
function warnOracle(ctx: StoreContext, regionId: number, why: string): void {
  const w = oracleWarned.get(ctx) ?? { atMs: -Infinity, since: 0 };
  w.since++;
  const now = ctx.monoNow();
  if (now - w.atMs >= 10_000) {
    ctx.logger.warn({ regionId, failures: w.since, err: why }, 'one-phase commits get no commit ts from the timestamp oracle; answered ServerIsBusy (clients commit in two phases)');
    w.atMs = now;
    w.since = 0;
  }
  oracleWarned.set(ctx, w);
}

/** proposeOnePc proposes a 1PC prewrite with its commit ts, if this peer still leads the same Region version. */
export function proposeOnePc(ctx: StoreContext, peer: Peer, req: TxnRequest, commitTs: bigint, cb: Callback): void {
  if (!peer.isLeader) return cb(err.notLeader(peer.regionId, peer.leaderMeta()));
  if (peer.mergeState || req.header.regionEpoch.version !== peer.region.epoch.version) return cb(err.epochNotMatch([peer.region]));
  const data = encodeCommand({ header: req.header, writes: [], txn: req.txn, onePcCommitTs: commitTs });
  peer.flow.write(txnKeys(req.txn).length, data.length);
  propose(ctx, peer, data, cb);
}
