// watch.ts: the watch workload of `pnpm chaos --workload watch`. Writers run
// transactions (1-3 keys, sometimes a delete) over the keys k000/x ..
// k<N>/x, which the run splits into several Regions (and the split nemesis
// splits further, the merge row below merges back), while three watchers
// run through every fault:
//
//   all        prefix 'k', opened before the first write (from "now")
//   from-old   prefix 'k', opened a few seconds in with fromRevision = the
//              first watcher's start: a catch-up from an old revision
//   part       [key(1), key(N/2)): a few Regions, opened a second in
//
// Each watcher is its own FlotillaClient and re-subscribes through the
// client's own logic. At the end (network healed, every store up) the run
// takes a timestamp T, waits until each watch's revision passes it, and
// checks each watcher with watch-check.ts against the writers' records.
import { ClientError, FlotillaClient, runTxn, TxnAbortedError, type Watch, type WatchItem } from '@flotilla/client';
import { fromUtf8, type Logger } from '@flotilla/proto';
import { mulberry32 } from '@flotilla/transport';
import type { ChaosFault } from './nemesis';
import { pdAddrs } from './cluster';
import { sleep } from './procs';
import { key, log, note, type Chaos } from './run';
import { checkWatch, type DeliveredChange, type WatchCheck, type WatchMutation, type WatchSpec, type WatchWrite } from './watch-check';

/** TXN_OPTIONS: a writer's budget per transaction (a stalled store or a partition must not hang it for long). */
const TXN_OPTIONS = { timeoutMs: 10_000, maxRetries: 10 } as const;
/**
 * CATCH_UP_MS bounds the wait, after recovery, for every watch to pass the
 * final timestamp; a watch still behind fails the run. A lock a writer left
 * behind (it gave up after prewrite, or died after its primary committed)
 * must not hold a watch past it: the store names the lock, the watch
 * resolves it after its resolveLocksAfterMs (5 s) once the primary allows
 * (the writers' lock TTL is 3 s), with backoff up to 10 s while a store is
 * still coming back (docs/watch-and-leases.md). 30 s is that with room for a
 * loaded machine; before the fix such a watch stayed stuck for good.
 */
const CATCH_UP_MS = 30_000;

/** Watcher is one running watch and what it yielded. */
interface Watcher {
  name: string;
  start: string;
  end: string;
  watch: Watch | undefined;
  client: FlotillaClient | undefined;
  changes: DeliveredChange[];
  /** failure: the watch could not be opened, or its iterator threw (it should ride through every fault). */
  failure: string | undefined;
  done: Promise<void>;
  /** trail: the watch client's last debug lines (feeds ended, resubscribes), printed when the check fails. */
  trail: string[];
}

/** TRAIL_LINES bounds a watcher's kept debug lines. */
const TRAIL_LINES = 300;

/** trailLogger keeps a watch client's log lines (with the run's clock) in trail, for a failure report. */
function trailLogger(run: Chaos, trail: string[]): Logger {
  const keep = (level: string) => (obj: object, msg?: string): void => {
    trail.push(`${(run.now() / 1000).toFixed(2)}s ${level} ${msg ?? ''} ${JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    if (trail.length > TRAIL_LINES) trail.shift();
  };
  return { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
}

/** RunningWatchChaos is the watch workload while the faults run. */
export interface RunningWatchChaos {
  /** finished resolves once the writers stopped (after running() turned false). */
  finished: Promise<void>;
  finish(): Promise<WatchVerdict>;
}

/** WatchVerdict: the per-watcher checks, a JSON summary and whether the run held. */
export interface WatchVerdict {
  ok: boolean;
  summary: Record<string, unknown>;
  explanation: string;
  checks: WatchCheck[];
}

/** presplit cuts the watched keys into Regions at every other key (best effort). */
async function presplit(run: Chaos, client: FlotillaClient): Promise<number> {
  for (let i = 2; i < run.o.keys; i += 2) {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await client.split(key(i));
        break;
      } catch {
        await sleep(200);
      }
    }
  }
  return (await client.regions().catch(() => [])).filter((r) => fromUtf8(r.region.startKey).startsWith('k')).length;
}

/** openWatcher opens one watch (retrying while the faults make it fail, as long as the run goes on) and drains it into changes. */
function openWatcher(run: Chaos, name: string, start: string, end: string, fromRevision: () => bigint | undefined, running: () => boolean): Watcher {
  const w: Watcher = { name, start, end, watch: undefined, client: undefined, changes: [], failure: undefined, done: Promise.resolve(), trail: [] };
  w.done = (async () => {
    const pdAddr = pdAddrs(run);
    for (let attempt = 0; w.watch === undefined; attempt++) {
      try {
        w.client ??= await FlotillaClient.connect({ placement: pdAddr, timeoutMs: 5000, logger: trailLogger(run, w.trail) });
        const from = fromRevision();
        w.watch = await w.client.watch(end === '' ? start : { start, end }, from === undefined ? {} : { fromRevision: from });
      } catch (e) {
        if (!running() && attempt > 20) {
          w.failure = `could not open: ${(e as Error).message}`;
          return;
        }
        await sleep(250);
      }
    }
    log(run, `watch ${name} open from revision ${w.watch.startRevision}`);
    try {
      for await (const item of w.watch as AsyncIterable<WatchItem>) {
        if (item.type === 'progress') continue;
        w.changes.push({ revision: item.revision, key: fromUtf8(item.key), type: item.type, ...(item.value ? { value: fromUtf8(item.value) } : {}) });
      }
    } catch (e) {
      w.failure = `the watch failed: ${(e as Error).message}`;
    }
  })();
  return w;
}

/** writer runs transactions of 1-3 distinct keys (a delete in one of five with two or more) until running() turns false. */
async function writer(run: Chaos, client: FlotillaClient, id: number, writes: WatchWrite[], counts: Record<'txns' | 'ok' | 'info' | 'fail', number>, running: () => boolean): Promise<void> {
  const r = mulberry32(run.o.seed * 31 + id);
  const t = client.txnTransport();
  for (let seq = 0; running(); seq++) {
    const n = 1 + Math.floor(r() * 3);
    const keys = [...new Set(Array.from({ length: n }, () => `${key(Math.floor(r() * run.o.keys))}/${'abc'[Math.floor(r() * 3)]}`))];
    const txnId = `w${id}.${seq}`;
    const del = keys.length > 1 && r() < 0.2;
    const mutations: WatchMutation[] = keys.map((k, i) => (del && i === keys.length - 1 ? { key: k, type: 'delete' } : { key: k, type: 'put', value: txnId }));
    counts.txns++;
    try {
      const o = await runTxn(
        t,
        (tx) => {
          for (const m of mutations) m.type === 'put' ? tx.put(m.key, m.value!) : tx.delete(m.key);
        },
        TXN_OPTIONS,
      );
      counts.ok++;
      writes.push({ id: txnId, status: 'ok', commitTs: o.commitTs, mutations });
    } catch (e) {
      if (e instanceof TxnAbortedError) counts.fail++;
      else {
        // Undetermined, a timeout or a lost connection during the commit: it may have committed.
        counts.info++;
        writes.push({ id: txnId, status: 'info', mutations });
      }
    }
    await sleep(10 + Math.floor(r() * 20));
  }
}

/** startWatchChaos splits the keys, opens the watchers and starts the writers (run.o.clients of them, on one FlotillaClient). */
export async function startWatchChaos(run: Chaos, client: FlotillaClient, running: () => boolean): Promise<RunningWatchChaos> {
  const regions = await presplit(run, client);
  log(run, `watch: ${run.o.keys} keys over ${regions} Regions, ${run.o.clients} writers, 3 watchers`);
  const writes: WatchWrite[] = [];
  const counts = { txns: 0, ok: 0, info: 0, fail: 0 };
  const all = openWatcher(run, 'all', 'k', '', () => undefined, running);
  await waitOpen(all);
  const old = all.watch?.startRevision;
  const writers = Promise.all(Array.from({ length: run.o.clients }, (_, id) => writer(run, client, id, writes, counts, running)));
  const watchers = [all];
  const later = (async () => {
    await sleep(1000);
    watchers.push(openWatcher(run, 'part', key(1), key(Math.max(2, Math.floor(run.o.keys / 2))), () => undefined, running));
    await sleep(Math.min(5000, Math.max(1000, run.o.durationS * 200)));
    watchers.push(openWatcher(run, 'from-old', 'k', '', () => old, running));
  })();
  const counted = setInterval(() => {
    if (counts.ok > run.counts.acked) {
      const at = run.now();
      run.stall.longestMs = Math.max(run.stall.longestMs, at - run.stall.lastAckMs);
      run.stall.lastAckMs = at;
    }
    run.counts.ops = counts.txns;
    run.counts.acked = counts.ok;
    run.counts.unknown = counts.info;
  }, 100);
  run.stall.lastAckMs = run.now();
  const finished = (async () => {
    await writers;
    await later;
    clearInterval(counted);
  })();
  return { finished, finish: () => finishWatchChaos(run, client, watchers, writes, counts) };
}

/** waitOpen waits (at most 30 s) for a watcher's watch to open or fail. */
async function waitOpen(w: Watcher): Promise<void> {
  for (let i = 0; i < 300 && w.watch === undefined && w.failure === undefined; i++) await sleep(100);
}

/** finalTimestamp takes a timestamp after recovery (placement may still be electing or reconnecting). */
async function finalTimestamp(client: FlotillaClient): Promise<bigint> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await client.timestamp();
    } catch (e) {
      if (attempt > 60) throw e;
      await sleep(500);
    }
  }
}

/** waitPast waits (until deadline) for every watch to pass ts or fail. */
async function waitPast(watchers: readonly Watcher[], ts: bigint, deadline: number): Promise<void> {
  for (const w of watchers) while (w.watch && !w.failure && w.watch.revision < ts && Date.now() < deadline) await sleep(100);
}

/**
 * finishWatchChaos waits for every watch to pass a timestamp taken after
 * recovery (within CATCH_UP_MS, or the watch fails: nobody reads the keys
 * for it, so a lock left behind in its range must be resolved by the watch
 * itself), closes them and checks each. passMs in the summary is how long
 * each took.
 */
async function finishWatchChaos(run: Chaos, client: FlotillaClient, watchers: Watcher[], writes: WatchWrite[], counts: Record<string, number>): Promise<WatchVerdict> {
  const until = await finalTimestamp(client);
  const waitFrom = Date.now();
  const passMs = new Map<Watcher, number>();
  await Promise.all(
    watchers.map(async (w) => {
      await waitPast([w], until, waitFrom + CATCH_UP_MS);
      passMs.set(w, Date.now() - waitFrom);
    }),
  );
  for (const w of watchers) {
    if (w.watch && !w.failure && w.watch.revision < until) w.failure = `stuck: its revision ${w.watch.revision} did not pass ${until} within ${CATCH_UP_MS / 1000} s after recovery (a lock left behind in its range should have been resolved by the watch)`;
  }
  const checks: WatchCheck[] = [];
  const explanation: string[] = [];
  const perWatcher: Record<string, unknown>[] = [];
  for (const w of watchers) {
    const resubscribes = w.watch?.stats.resubscribes ?? 0;
    const locksResolved = w.watch?.stats.locksResolved ?? 0;
    w.watch?.close();
    await w.done;
    w.client?.close();
    if (!w.watch) {
      explanation.push(`watcher ${w.name}: ${w.failure ?? 'never opened'}`);
      continue;
    }
    // A stuck watch is checked up to where it got (everything at or below its revision was delivered).
    const reached = w.watch.revision < until ? w.watch.revision : until;
    const spec: WatchSpec = { name: w.name, start: w.start, end: w.end, fromRevision: w.watch.startRevision, until: reached };
    const c = checkWatch(spec, writes, w.changes);
    checks.push(c);
    if (w.failure) explanation.push(`watcher ${w.name}: ${w.failure}`);
    for (const p of c.problems) explanation.push(`watcher ${w.name}: ${p}`);
    if (w.failure || c.problems.length > 0) explanation.push(diagnose(run, w, c, writes));
    perWatcher.push({ name: w.name, range: w.end === '' ? `${w.start}*` : `[${w.start}, ${w.end})`, changes: c.delivered, acked: c.acked, undeterminedSeen: c.undeterminedSeen, undeterminedAbsent: c.undeterminedAbsent, resubscribes, locksResolved, passMs: passMs.get(w), ok: c.problems.length === 0 && !w.failure });
  }
  const ok = explanation.length === 0 && checks.length === watchers.length;
  const eventsChecked = checks.reduce((a, c) => a + c.delivered, 0);
  return { ok, checks, explanation: explanation.join('\n'), summary: { workload: 'watch', ...counts, watchers: perWatcher, eventsChecked } };
}

/** diagnose describes a failed watcher for the report: when its missed commits were made (run clock), and its client's last log lines. */
function diagnose(run: Chaos, w: Watcher, c: WatchCheck, writes: readonly WatchWrite[]): string {
  const wallStartMs = Date.now() - run.now();
  const at = (ts: bigint): string => `${((Number(ts >> 18n) - wallStartMs) / 1000).toFixed(2)}s`;
  const missed = c.problems.filter((p) => p.startsWith('missed')).length;
  const delivered = w.changes.map((d) => d.revision);
  const acked = writes.filter((x) => x.status === 'ok' && x.commitTs !== undefined).map((x) => x.commitTs!);
  const lines = [
    `watcher ${w.name} [${w.start}, ${w.end || 'end'}): started at revision ${w.watch?.startRevision} (${w.watch ? at(w.watch.startRevision) : '-'}), ${w.changes.length} changes delivered (${delivered.length ? `${at(delivered[0]!)} .. ${at(delivered.at(-1)!)}` : 'none'}), ${missed} problems start with "missed"; acknowledged commits ${acked.length ? `${at(acked.reduce((a, b) => (a < b ? a : b)))} .. ${at(acked.reduce((a, b) => (a > b ? a : b)))}` : 'none'}`,
  ];
  for (const p of c.problems.slice(0, 5)) {
    const m = /at (\d+) \[/.exec(p);
    if (m) lines.push(`  ${p.slice(0, 60)}... committed at run time ${at(BigInt(m[1]!))}`);
  }
  lines.push(`  its client's last ${w.trail.length} log lines:`, ...w.trail.map((l) => `    ${l}`));
  return lines.join('\n');
}

/** mergeRegions merges a random Region of the watched keys into its left neighbour (the watch must ride through merges too). */
async function mergeRegions(run: Chaos, _s: unknown, client: FlotillaClient): Promise<void> {
  try {
    const regions = (await client.regions()).map((r) => r.region).filter((r) => fromUtf8(r.startKey).startsWith('k'));
    regions.sort((a, b) => (fromUtf8(a.startKey) < fromUtf8(b.startKey) ? -1 : 1));
    if (regions.length < 2) return;
    const i = 1 + Math.floor(run.rng() * (regions.length - 1));
    const source = fromUtf8(regions[i]!.startKey);
    const target = fromUtf8(regions[i - 1]!.startKey);
    note(run, 'merge', `${source} into ${target}`);
    await client.merge(source, target).catch((e: unknown) => note(run, 'merge-failed', e instanceof ClientError ? e.code : String(e)));
  } catch {
    // placement unreachable: skip this fault.
  }
}

/** WATCH_FAULTS: the watch workload's own row beside the process faults: merges, so feeds end and re-subscribe across them too. */
export const WATCH_FAULTS: readonly ChaosFault[] = [{ name: 'merge', weight: 20, run: mergeRegions }];
