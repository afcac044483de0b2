// lock.ts: the lock workload of `pnpm chaos --workload lock`. --clients
// contenders (a FlotillaClient each) loop: client.lock(LOCK, { leaseTtlMs })
// then 1-3 writes to a fenced register, then release; while holding, a
// contender stops writing once its lease is reported lost (holder.signal).
// The register is one transactional key whose value is its whole history
// ("token:who:seq;..."): a write reads it, is refused when its token is
// below the highest there (the fence), else appends its entry. At the end
// the register is read once more and lock-check.ts checks its history.
//
// --plant-bug makes contender 0 the planted bug: it takes the lock once,
// writes, then closes the client that keeps its lease alive and goes on
// writing through another client with its stale token and without the
// fence check, as a holder that ignores the loss of its lease would. The
// checker must then report two holders' writes out of token order.
import { FlotillaClient, runTxn, TxnAbortedError, type LockHolder } from '@flotilla/client';
import { fromUtf8 } from '@flotilla/proto';
import { mulberry32 } from '@flotilla/transport';
import { checkLock, formatEntry, parseRegister, type LockGrant, type RegisterWrite } from './lock-check';
import { pdAddrs } from './cluster';
import { sleep } from './procs';
import { log, type Chaos } from './run';

/** LOCK is the lock's name; REGISTER the fenced register's key (in another Region: the run splits at 'lock/'). */
const LOCK = 'lock/chaos';
const REGISTER = 'fenced/register';
/** LEASE_TTL_MS: a holder's lease (a dead or cut-off holder blocks the others about this long). */
const LEASE_TTL_MS = 2000;
const TXN_OPTIONS = { timeoutMs: 10_000, maxRetries: 10 } as const;

/** LockVerdict: the check, a JSON summary and whether the run held. */
export interface LockVerdict {
  ok: boolean;
  summary: Record<string, unknown>;
  explanation: string;
}

/** RunningLockChaos is the lock workload while the faults run. */
export interface RunningLockChaos {
  finished: Promise<void>;
  finish(): Promise<LockVerdict>;
}

interface LockState {
  run: Chaos;
  grants: LockGrant[];
  writes: RegisterWrite[];
  counts: { locks: number; lockFailed: number; lost: number; writes: number; ok: number; refused: number; fail: number; info: number };
  /**
   * plantedUntilMs (--plant-bug): while the stale writer has not yet been
   * overtaken by a later holder, and until this time, the other contenders
   * keep taking the lock past the run's end: under faults the next holder
   * may come late (a store was killed and the lock's Region re-elected),
   * and without one the bug has nothing to interleave with.
   */
  plantedUntilMs?: number;
  plantedOvertaken?: boolean;
}

/** keepContending: the run goes on, or the planted bug still waits for a later holder (bounded by plantedUntilMs). */
function keepContending(st: LockState, running: () => boolean): boolean {
  if (running()) return true;
  return st.plantedUntilMs !== undefined && st.plantedOvertaken !== true && Date.now() < st.plantedUntilMs;
}

/** fencedWrite appends (who, token, seq) to the register; fenced: refused when a higher token is already there. Resolves with the highest token it read when it wrote (0n when it did not). */
async function fencedWrite(st: LockState, c: FlotillaClient, who: number, token: bigint, seq: number, fenced: boolean): Promise<bigint> {
  st.counts.writes++;
  let thrown: unknown;
  let highest = 0n;
  let outcome: RegisterWrite['outcome'];
  try {
    const o = await runTxn(
      c.txnTransport(),
      async (tx) => {
        let cur: Uint8Array | null;
        try {
          cur = await tx.get(REGISTER);
        } catch (e) {
          thrown = e;
          throw e;
        }
        const text = cur ? fromUtf8(cur) : '';
        const top = parseRegister(text).reduce((m, e) => (e.token > m ? e.token : m), 0n);
        highest = top;
        if (fenced && token < top) return false;
        tx.put(REGISTER, `${text === '' ? '' : `${text};`}${formatEntry({ token, who, seq })}`);
        return true;
      },
      TXN_OPTIONS,
    );
    outcome = o.value ? 'ok' : 'refused';
  } catch (e) {
    outcome = e instanceof TxnAbortedError || (thrown !== undefined && e === thrown) ? 'fail' : 'info';
  }
  st.counts[outcome]++;
  st.writes.push({ who, token, seq, outcome });
  return outcome === 'ok' ? highest : 0n;
}

/** acquire asks for the lock and records the grant (undefined: it timed out or failed). */
async function acquire(st: LockState, c: FlotillaClient, who: number): Promise<{ h: LockHolder; g: LockGrant } | undefined> {
  const askedAtMs = st.run.now();
  try {
    const h = await c.lock(LOCK, { leaseTtlMs: LEASE_TTL_MS, timeoutMs: 15_000 });
    const g: LockGrant = { who, token: h.fencingToken, askedAtMs, heldAtMs: st.run.now() };
    st.grants.push(g);
    st.counts.locks++;
    void h.lost.then(() => {
      g.lostAtMs ??= st.run.now();
      st.counts.lost++;
    });
    return { h, g };
  } catch {
    st.counts.lockFailed++;
    return undefined;
  }
}

/** contender: lock, 1-3 fenced writes (stopping once the lease is lost), release; until running() turns false. */
async function contender(st: LockState, who: number, running: () => boolean): Promise<void> {
  const c = await FlotillaClient.connect({ placement: pdAddrs(st.run), timeoutMs: 5000 });
  const r = mulberry32(st.run.o.seed * 17 + who);
  let seq = 0;
  try {
    while (keepContending(st, running)) {
      const held = await acquire(st, c, who);
      if (!held) {
        await sleep(100);
        continue;
      }
      const n = 1 + Math.floor(r() * 3);
      for (let i = 0; i < n && !held.h.signal.aborted; i++) await fencedWrite(st, c, who, held.h.fencingToken, seq++, true);
      held.g.releasedAtMs = st.run.now();
      await held.h.release().catch(() => {});
      await sleep(Math.floor(r() * 50));
    }
  } finally {
    c.close();
  }
}

/** staleWriter is the planted bug (--plant-bug): it holds once, then lets its lease go and keeps writing unfenced with its old token. */
async function staleWriter(st: LockState, who: number, running: () => boolean): Promise<void> {
  const pd = pdAddrs(st.run);
  const lockClient = await FlotillaClient.connect({ placement: pd, timeoutMs: 5000 });
  const writeClient = await FlotillaClient.connect({ placement: pd, timeoutMs: 5000 });
  let seq = 0;
  try {
    let held: Awaited<ReturnType<typeof acquire>>;
    while (!held && running()) held = await acquire(st, lockClient, who);
    if (!held) return;
    await fencedWrite(st, writeClient, who, held.h.fencingToken, seq++, true);
    lockClient.close(); // its keepalives stop: the lease expires and another contender takes the lock...
    log(st.run, `planted bug: contender ${who} (token ${held.h.fencingToken}) dropped its lease and goes on writing unfenced`);
    // ...which this one ignores. It writes for the whole run, and past its end (20 s at most) until one of its
    // writes has landed after a later holder's (a loaded machine can make the next holder slow to come).
    const until = Date.now() + st.run.o.durationS * 1000 + 20_000;
    st.plantedUntilMs = until;
    let overtaken = false;
    while ((running() || !overtaken) && Date.now() < until) {
      overtaken = (await fencedWrite(st, writeClient, who, held.h.fencingToken, seq++, false)) > held.h.fencingToken || overtaken;
      st.plantedOvertaken = overtaken;
      await sleep(200);
    }
    st.plantedOvertaken = true; // done either way: the contenders may stop
  } finally {
    lockClient.close();
    writeClient.close();
  }
}

/** startLockChaos puts the lock and the register in Regions of their own and starts the contenders. */
export async function startLockChaos(run: Chaos, client: FlotillaClient, running: () => boolean): Promise<RunningLockChaos> {
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      await client.split('lock/');
      break;
    } catch {
      await sleep(200);
    }
  }
  log(run, `lock: ${run.o.clients} contenders for ${LOCK} (lease TTL ${LEASE_TTL_MS} ms), fenced register ${REGISTER}${run.o.plantBug ? '; contender 0 is the planted stale writer' : ''}`);
  const st: LockState = { run, grants: [], writes: [], counts: { locks: 0, lockFailed: 0, lost: 0, writes: 0, ok: 0, refused: 0, fail: 0, info: 0 } };
  const counted = setInterval(() => {
    if (st.counts.ok > run.counts.acked) {
      const at = run.now();
      run.stall.longestMs = Math.max(run.stall.longestMs, at - run.stall.lastAckMs);
      run.stall.lastAckMs = at;
    }
    run.counts.ops = st.counts.writes;
    run.counts.acked = st.counts.ok;
    run.counts.unknown = st.counts.info;
  }, 100);
  run.stall.lastAckMs = run.now();
  const finished = Promise.all(Array.from({ length: run.o.clients }, (_, who) => (run.o.plantBug && who === 0 ? staleWriter(st, who, running) : contender(st, who, running)))).then(() => clearInterval(counted));
  return { finished, finish: () => finishLockChaos(st, client) };
}

/** readRegister reads the register's final value (30 s at most; undefined when it never succeeded). */
async function readRegister(client: FlotillaClient): Promise<string | null | undefined> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const v = await (await client.snapshot()).get(REGISTER);
      return v ? fromUtf8(v) : null;
    } catch {
      await sleep(500);
    }
  }
  return undefined;
}

/** finishLockChaos reads the register and checks its history against the contenders' records. */
async function finishLockChaos(st: LockState, client: FlotillaClient): Promise<LockVerdict> {
  const value = await readRegister(client);
  if (value === undefined) return { ok: false, summary: { workload: 'lock', ...st.counts }, explanation: 'the final read of the register did not succeed within 30 s after recovery' };
  const c = checkLock(parseRegister(value), st.grants, st.writes);
  const summary = { workload: 'lock', plantBug: st.run.o.plantBug, ...st.counts, historyEntries: c.entries, holders: c.holders, overlappingHolds: c.overlaps, eventsChecked: c.entries + st.writes.length + st.grants.length };
  return { ok: c.problems.length === 0, summary, explanation: c.problems.join('\n') };
}
