// `pnpm powerloss --crashes N [--seed S] [--clients 4] [--keys 16] [--max-duration-s 600] [--blackout-share 0.25]`
//
// Power-loss test of a local cluster of REAL processes: placement and three
// `flotilla store` processes, each store under the LD_PRELOAD shim
// (shim.c) that keeps what a power loss would leave of its data directory.
// Clients record a history as in the chaos runner. One store at a time
// loses power (a quorum stays up): half the time a SIGKILL at a random
// moment, else the shim kills it itself at a drawn fsync of raft.db* or
// kv.db* (just before that fsync counts, or just after); in a share of the
// draws (--blackout-share, 1/4) all three lose power at once. After each crash the store's data
// directory is rebuilt from the shadow (every write not fsynced is gone,
// -shm files too), its durable state is checked offline (the raft log is
// never compacted past the KV engine's durably applied index, and no
// Region the log holds is missing from the KV engine), and the store
// restarts on it. At the end every key is read back and the history is
// checked for linearizability (no acknowledged write lost), the replicas
// must settle on one applied index per Region, and after a clean stop
// every store's kv.db must hold the same pairs. Prints progress on stderr
// and one JSON summary line on stdout; exit 1 on a violation, 2 when the
// cluster cannot start, 3 when this machine cannot build the shim (not
// Linux, no C compiler).
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import { mulberry32 } from '@flotilla/transport';
import { checkKvHistory, explainFailure } from '../linearizability';
import { compareReplicas, digestReplica, waitQuiescent } from './convergence';
import { inspectDurableState } from './durable-state';
import { launch, newProc, stop, type Proc } from './processes';
import { armKill, buildShim, readEvents, restoreFromShadow, shimEnv, type KillAt } from './shim';
import { keyName, newHistory, readEveryKey, startWorkers, type History } from './workload';

/** UsageError is bad command-line input: printed without a stack, exit 2. */
class UsageError extends Error {}

function args(argv: string[]) {
  const o = { crashes: 60, seed: Math.floor(Math.random() * 1e6), clients: 4, keys: 16, maxDurationS: 600, blackoutShare: 0.25 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => Number(argv[++i]);
    if (a === '--crashes') o.crashes = v();
    else if (a === '--seed') o.seed = v();
    else if (a === '--clients') o.clients = v();
    else if (a === '--keys') o.keys = v();
    else if (a === '--max-duration-s') o.maxDurationS = v();
    else if (a === '--blackout-share') o.blackoutShare = v();
    else if (a === '--help') {
      console.error(HELP);
      process.exit(0);
    } else if (a !== '--') throw new UsageError(`unknown argument ${a} (see --help)`);
  }
  if (!(o.crashes > 0) || !(o.clients > 0) || !(o.keys > 1) || !(o.maxDurationS > 0) || !(o.blackoutShare >= 0 && o.blackoutShare <= 1)) {
    throw new UsageError(`bad arguments: --crashes, --clients and --max-duration-s must be positive, --keys at least 2, --blackout-share in [0, 1]; got ${JSON.stringify(o)} (see --help)`);
  }
  return o;
}

const HELP = `pnpm powerloss [--crashes 60] [--seed S] [--clients 4] [--keys 16] [--max-duration-s 600] [--blackout-share 0.25]

Crashes three real stores (one at a time, or all at once with probability
--blackout-share) as at a power loss, under load, until --crashes crash
points or --max-duration-s; restarts each on what was fsynced; then checks
linearizability, the raft-log/KV invariant at every crash and convergence.
Needs Linux and a C compiler (cc, or $CC). Exit 0 ok, 1 violation, 2 the
cluster did not start, 3 cannot run here.

  e.g. pnpm powerloss --crashes 20 --seed 1`;

/**
 * TUNING makes the log GC run often and cut short, so KV syncs (which only
 * compaction forces) and snapshots to restarted stores happen many times a
 * run: that is the window the invariant guards.
 */
const TUNING = { raftLogGcThreshold: 20, raftLogGcCountLimit: 200, raftLogGcIntervalMs: 300, purgeLogIntervalMs: 500 };

/** StoreUnderShim is one store process with its data directory, the shim's shadow of it and the file that arms the shim's kill. */
interface StoreUnderShim extends Proc {
  dataDir: string;
  shadowDir: string;
  killFile: string;
  /** dying: the run is taking this life down (or armed its kill); any other exit is the store's own failure. */
  dying: boolean;
}

type CrashKind = 'random' | 'kill-before-fsync' | 'kill-after-fsync' | 'blackout';

/** CrashCounts: crash points by kind, and by where they fell between the two engines' syncs (see afterCrash). */
interface CrashCounts extends Record<CrashKind, number> {
  total: number;
  betweenLogFsyncAndKvSync: number;
  afterKvSyncBeforeLogFsync: number;
  noFsyncInLife: number;
  kvBehindLog: number;
}

/** Run is one power-loss run's shared state. */
interface Run {
  o: ReturnType<typeof args>;
  rng: () => number;
  dir: string;
  shim: string;
  placement: Proc;
  stores: StoreUnderShim[];
  history: History;
  crashes: CrashCounts;
  minSlack: number | undefined;
  violations: string[];
  /** unavailable: the watchdog saw no acknowledged operation for UNAVAILABLE_MS. */
  unavailable: boolean;
}

function say(run: Run, line: string): void {
  console.error(`[powerloss ${(run.history.now() / 1000).toFixed(1)}s] ${line}`);
}

/** PowerLossFailure is a finding that ends the run early: a store that does not come back, or breaks an invariant on disk. */
class PowerLossFailure extends Error {}

/** startStore launches one store under the shim (its kill disarmed) and waits until it serves; an exit the run did not cause is recorded as a violation. */
async function startStore(run: Run, s: StoreUnderShim): Promise<void> {
  armKill(s.killFile, undefined);
  s.dying = false;
  s.args = ['store', '--placement', String(run.placement.info!.address), '--data-dir', s.dataDir, '--listen', '127.0.0.1:0', '--profile', 'demo', '--tuning', join(run.dir, 'tuning.json')];
  try {
    await launch(s, shimEnv(run.shim, s.dataDir, s.shadowDir, { killFile: s.killFile }));
  } catch (e) {
    throw new PowerLossFailure(`${s.name} did not come back after a power loss: ${(e as Error).message}`);
  }
  void s.exit!.then(({ code, signal }) => {
    if (!s.dying) run.violations.push(`${s.name} exited by itself (${signal ?? `code ${code}`}); its stderr ended with:\n${s.stderrTail.join('\n')}`);
  });
}

/** takeDown marks the store's life as ended by the run, then SIGKILLs it. */
function takeDown(s: StoreUnderShim): Promise<void> {
  s.dying = true;
  return stop(s);
}

/**
 * afterCrash is the power coming back: classify the crash point from the
 * shim's events of the life that just ended, rebuild the data directory
 * from the shadow and check the durable state before the store restarts
 * on it. "Between a log fsync and a KV sync": in the life that ended, the
 * last fsync of raft.db or raft.db-wal came after the last completed KV
 * sync (a checkpoint: it fsyncs kv.db-wal, copies the pages back and
 * fsyncs kv.db last; a kv.db-wal fsync alone is SQLite syncing a reused
 * WAL's header), or the life had a log fsync and no KV sync: the log's
 * durable state was newer than the KV engine's.
 */
async function afterCrash(run: Run, s: StoreUnderShim, kind: CrashKind): Promise<void> {
  const events = readEvents(s.shadowDir);
  const lastOf = (match: (name: string) => boolean) => Math.max(0, ...events.filter((e) => e.kind === 'fsync' && match(e.name)).map((e) => e.seq));
  const [lastLog, lastKv] = [lastOf((n) => n.startsWith('raft.db')), lastOf((n) => n === 'kv.db')];
  const c = run.crashes;
  c.total++;
  c[kind]++;
  const where = lastLog > lastKv ? 'between a log fsync and a KV sync' : lastKv > lastLog ? 'after a KV sync, before the next log fsync' : 'no fsync in this life';
  if (lastLog > lastKv) c.betweenLogFsyncAndKvSync++;
  else if (lastKv > lastLog) c.afterKvSyncBeforeLogFsync++;
  else c.noFsyncInLife++;
  const untracked = events.filter((e) => e.kind === 'untracked').map((e) => e.name);
  if (untracked.length > 0) run.violations.push(`${s.name}: the shim met files it did not see created (${untracked.join(', ')}): the model missed a write path`);
  restoreFromShadow(s.shadowDir, s.dataDir);
  const report = await inspectDurableState(s.dataDir, `${s.dataDir}.inspect`);
  if (report.kvBehindLog) c.kvBehindLog++;
  if (report.minSlack !== undefined) run.minSlack = run.minSlack === undefined ? report.minSlack : Math.min(run.minSlack, report.minSlack);
  const at = events.find((e) => e.kind === 'kill-before' || e.kind === 'kill-after');
  say(run, `crash ${c.total}: ${s.name} ${kind}${at ? ` at ${at.name}` : ''}, ${where}; durable: ${report.regions.length} regions, KV behind log ${report.kvBehindLog}, min slack ${report.minSlack ?? '-'}`);
  for (const v of report.violations) run.violations.push(`${s.name} after crash ${c.total}: ${v}`);
  if (report.violations.length > 0) throw new PowerLossFailure(`${s.name}'s durable state after crash ${c.total} (${kind}) breaks an invariant: ${report.violations.join('; ')}`);
}

/**
 * drawKillAt picks where an armed store kills itself, counting from now,
 * just before that fsync counts or just after: the n-th fsync of raft.db*
 * (n <= 100), of kv.db-wal (a KV sync's first step, or a reused WAL's
 * header) or of kv.db (a KV sync's last step: after it, the log write that
 * waited for the sync is next).
 */
function drawKillAt(rng: () => number): KillAt {
  const when = rng() < 0.5 ? 'before' : 'after';
  const x = rng();
  if (x < 0.5) return { prefix: 'raft.db', n: 1 + Math.floor(rng() * 100), when };
  return { prefix: x < 0.7 ? 'kv.db-wal$' : 'kv.db$', n: 1 + Math.floor(rng() * 2), when };
}

/** ARMED_WAIT_MS bounds how long an armed store may take to reach its fsync before it gets a plain SIGKILL. */
const ARMED_WAIT_MS = 4000;

/**
 * crashOne takes one store down and brings it back: half the time a
 * SIGKILL at a random moment, else the shim's own kill at a drawn fsync
 * (a SIGKILL after ARMED_WAIT_MS when the store never got there).
 */
async function crashOne(run: Run, s: StoreUnderShim): Promise<void> {
  let kind: CrashKind = 'random';
  if (run.rng() < 0.5) {
    await sleep(300 + run.rng() * 2000);
    if (run.violations.length > 0) return; // it died by itself meanwhile: crashPoints reports it
    await takeDown(s);
  } else {
    s.dying = true; // its own kill is expected now; exitedByItself below tells the two apart
    armKill(s.killFile, drawKillAt(run.rng));
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([s.exit!.then(() => true), new Promise<boolean>((res) => (timer = setTimeout(() => res(false), ARMED_WAIT_MS)))]);
    clearTimeout(timer);
    const exit = await (exited ? s.exit! : stop(s).then(() => s.exit!));
    const fired = readEvents(s.shadowDir).find((e) => e.kind === 'kill-before' || e.kind === 'kill-after');
    if (exited && (exit.signal !== 'SIGKILL' || !fired)) throw new PowerLossFailure(`${s.name} exited by itself (${exit.signal ?? `code ${exit.code}`}); its stderr ended with:\n${s.stderrTail.join('\n')}`);
    if (fired) kind = fired.kind === 'kill-before' ? 'kill-before-fsync' : 'kill-after-fsync';
  }
  s.child = undefined;
  await afterCrash(run, s, kind);
  await sleep(100 + run.rng() * 700); // the power is off
  await startStore(run, s);
}

/** blackout: every store loses power at the same moment, then all come back. */
async function blackout(run: Run): Promise<void> {
  await sleep(300 + run.rng() * 2000);
  say(run, 'blackout: every store loses power at once');
  if (run.violations.length > 0) return;
  await Promise.all(run.stores.map((s) => takeDown(s)));
  for (const s of run.stores) await afterCrash(run, s, 'blackout');
  await sleep(100 + run.rng() * 700);
  await Promise.all(run.stores.map((s) => startStore(run, s)));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** REPLICATED_WAIT_MS bounds the wait for the first Region to have a voter on every store. */
const REPLICATED_WAIT_MS = 30_000;

/**
 * startCluster launches placement and the three stores, and waits until
 * the cluster takes a write and its Region has a voter on each store, so
 * that every acknowledged write is on two durable logs from the start.
 */
async function startCluster(run: Run): Promise<void> {
  await launch(run.placement);
  writeFileSync(join(run.dir, 'tuning.json'), JSON.stringify(TUNING));
  for (const s of run.stores) mkdirSync(s.dataDir, { recursive: true });
  await Promise.all(run.stores.map((s) => startStore(run, s)));
  const client = await FlotillaClient.connect({ placement: String(run.placement.info!.address), timeoutMs: 5000 });
  try {
    const end = Date.now() + REPLICATED_WAIT_MS;
    for (;;) {
      const ok = await client.put('powerloss-ready', 'y').then(
        () => client.regions(),
        () => [],
      );
      if (ok.length > 0 && ok.every((r) => r.region.peers.filter((p) => p.role === 'voter').length === run.stores.length)) return;
      if (Date.now() > end) throw new Error(`the cluster did not take a write with a voter on each of the ${run.stores.length} stores within ${REPLICATED_WAIT_MS / 1000} s`);
      await sleep(200);
    }
  } finally {
    client.close();
  }
}

/** finalChecks reads every key back, checks the history, lets the replicas settle, stops the stores and compares their kv.db. */
async function finalChecks(run: Run): Promise<{ unreadable: number; verdict: string; explanation?: string; quiescent: boolean; differences: string[] }> {
  const client = await FlotillaClient.connect({ placement: String(run.placement.info!.address), timeoutMs: 5000 });
  try {
    const unreadable = await readEveryKey(run.history, client, run.o.keys);
    const check = checkKvHistory(run.history.ops);
    const addressOf = new Map(run.stores.map((s) => [Number(s.info!.storeId), String(s.info!.address)]));
    const quiescent = (await waitQuiescent(client, addressOf, 60_000)) !== undefined;
    await Promise.all(run.stores.map((s) => stopWithin(s, 15_000)));
    const differences = compareReplicas(run.stores.map((s) => ({ name: s.name, digest: digestReplica(s.dataDir) })));
    const explanation = check.verdict === 'illegal' ? explainFailure(run.history.ops, check) : undefined;
    return { unreadable, verdict: check.verdict, ...(explanation ? { explanation } : {}), quiescent, differences };
  } finally {
    client.close();
  }
}

/** stopWithin stops a store cleanly (SIGTERM), or with SIGKILL past timeoutMs (its files still hold all it wrote: only power loss loses writes). */
async function stopWithin(s: StoreUnderShim, timeoutMs: number): Promise<void> {
  s.dying = true;
  const t = setTimeout(() => s.child?.kill('SIGKILL'), timeoutMs);
  await stop(s, 'SIGTERM');
  clearTimeout(t);
}

function newRun(o: ReturnType<typeof args>, shim: string): Run {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'flotilla-powerloss-')));
  const stores = [0, 1, 2].map((i): StoreUnderShim => ({ ...newProc(`store-${i}`, []), dataDir: join(dir, `store-${i}`), shadowDir: join(dir, `store-${i}.shadow`), killFile: join(dir, `store-${i}.kill-at`), dying: false }));
  const crashes: CrashCounts = { total: 0, random: 0, 'kill-before-fsync': 0, 'kill-after-fsync': 0, blackout: 0, betweenLogFsyncAndKvSync: 0, afterKvSyncBeforeLogFsync: 0, noFsyncInLife: 0, kvBehindLog: 0 };
  const placement = newProc('placement', ['placement', '--data-dir', join(dir, 'pd'), '--listen', '127.0.0.1:0']);
  return { o, rng: mulberry32(o.seed), dir, shim, placement, stores, history: newHistory(), crashes, minSlack: undefined, violations: [], unavailable: false };
}

/** UNAVAILABLE_MS: a cluster that acknowledges nothing for this long has lost availability (or data it needs). */
const UNAVAILABLE_MS = 60_000;

/**
 * crashPoints crashes the stores one at a time (a quorum stays up), with
 * a blackout of all three in --blackout-share of the draws, until the
 * crash target or the time limit; splits run beside it.
 */
async function crashPoints(run: Run): Promise<void> {
  const end = Date.now() + run.o.maxDurationS * 1000;
  let acked = run.history.counts.acked;
  let ackedAt = Date.now();
  const watchdog = setInterval(() => {
    if (run.history.counts.acked > acked) [acked, ackedAt] = [run.history.counts.acked, Date.now()];
    else if (Date.now() - ackedAt > UNAVAILABLE_MS) run.unavailable = true;
  }, 1000);
  const client = await FlotillaClient.connect({ placement: String(run.placement.info!.address), timeoutMs: 3000 });
  let crashing = true;
  const splits = (async () => {
    while (crashing) {
      await sleep(2000 + run.rng() * 3000);
      await client.split(keyName(1 + Math.floor(run.rng() * (run.o.keys - 1)))).catch(() => undefined);
    }
  })();
  try {
    while (run.crashes.total < run.o.crashes && Date.now() < end && !run.unavailable && run.violations.length === 0) {
      if (run.rng() < run.o.blackoutShare) await blackout(run);
      else await crashOne(run, run.stores[Math.floor(run.rng() * run.stores.length)]!);
    }
  } finally {
    crashing = false;
    clearInterval(watchdog);
    await splits;
    client.close();
  }
  if (run.violations.length > 0) throw new PowerLossFailure(run.violations.join('; '));
  if (run.unavailable) throw new PowerLossFailure(`no operation was acknowledged for ${UNAVAILABLE_MS / 1000} s: the cluster lost availability (or the data it needs)`);
}

async function main(): Promise<number> {
  const o = args(process.argv.slice(2));
  const shim = buildShim();
  if (!shim.ok) {
    console.error(`powerloss: cannot run here: ${shim.reason}`);
    return 3;
  }
  const run = newRun(o, shim.path);
  // Interrupted: take the children down with us (their data stays for a look).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const p of [...run.stores, run.placement]) p.child?.kill('SIGKILL');
      console.error(`powerloss: ${sig}; stopped every child; kept ${run.dir}`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
  let code = 2;
  try {
    await startCluster(run);
    say(run, `cluster up; seed ${o.seed}; crashing until ${o.crashes} crash points (at most ${o.maxDurationS} s)`);
    code = await crashAndCheck(run);
    return code;
  } finally {
    for (const s of run.stores) await takeDown(s);
    await stop(run.placement);
    const keep = process.env['POWERLOSS_KEEP'] === '1' || (code !== 0 && process.env['POWERLOSS_KEEP'] !== '0');
    if (!keep) rmSync(run.dir, { recursive: true, force: true });
    else console.error(`kept ${run.dir} (data directories, shadows, placement) for inspection`);
  }
}

/** crashAndCheck runs the crash points under load, then the final checks; returns the exit code. */
async function crashAndCheck(run: Run): Promise<number> {
  let working = true;
  const workers = startWorkers(run.history, String(run.placement.info!.address), run.o, () => working);
  try {
    await crashPoints(run);
  } catch (e) {
    if (!(e instanceof PowerLossFailure)) throw e;
    console.log(JSON.stringify({ ...summaryOf(run), verdict: 'failed', failure: e.message }));
    console.error(`FAIL: ${e.message}`);
    return 1;
  } finally {
    working = false;
    await workers;
  }
  return verdict(run, await finalChecks(run));
}

function summaryOf(run: Run): Record<string, unknown> {
  const { o, crashes, history, violations } = run;
  return {
    seed: o.seed,
    durationS: Math.round(history.now() / 1000),
    crashes: crashes.total,
    crashKinds: { random: crashes.random, killBeforeFsync: crashes['kill-before-fsync'], killAfterFsync: crashes['kill-after-fsync'], blackout: crashes.blackout },
    crashesBetweenLogFsyncAndKvSync: crashes.betweenLogFsyncAndKvSync,
    crashesAfterKvSyncBeforeLogFsync: crashes.afterKvSyncBeforeLogFsync,
    crashesWithNoFsyncInLife: crashes.noFsyncInLife,
    crashesKvBehindLog: crashes.kvBehindLog,
    minSlack: run.minSlack ?? null,
    invariantViolations: violations.length,
    ...history.counts,
  };
}

function verdict(run: Run, f: Awaited<ReturnType<typeof finalChecks>>): number {
  const { crashes, history, violations } = run;
  const summary = { ...summaryOf(run), unreadableKeys: f.unreadable, linearizability: f.verdict, quiescent: f.quiescent, replicaDifferences: f.differences.length };
  console.log(JSON.stringify(summary));
  const failures = [...violations, ...f.differences];
  if (f.verdict === 'illegal') failures.push(`VIOLATION (an acknowledged write lost or reordered): ${f.explanation}`);
  if (f.unreadable > 0) failures.push(`${f.unreadable} keys unreadable after recovery`);
  if (!f.quiescent) failures.push('the replicas never settled on one applied index per Region (60 s)');
  for (const x of failures) console.error(`FAIL: ${x}`);
  if (failures.length > 0) return 1;
  console.error(`verdict: ${f.verdict === 'ok' ? 'linearizable' : 'search budget exhausted (inconclusive)'}; ${crashes.total} crash points, ${history.counts.ops} ops, replicas converged`);
  return 0;
}

main().then(
  (c) => process.exit(c),
  (e) => {
    console.error(e instanceof UsageError ? `powerloss: ${e.message}` : e);
    process.exit(2);
  },
);
