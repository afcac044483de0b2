// bench/watch.ts — watch performance (issue #18, Performance): latency, and what idle watchers cost a store.
//
//   pnpm bench:watch [--quick] [--case latency|idle-watchers|all] [--rate EVENTS_PER_S] [--seconds S]
//                    [--regions 16] [--keys-per-txn K] [--watchers N] [--clients C] [--tuning FILE]
//                    [--profile DIR] [--timeline] [--watch-old] [--idle-settle]
//
// Each case starts placement + 3 stores (production profile) as real child
// processes (LocalCluster, as bench:txn does) and prints one JSON line per
// measurement on stdout (progress and a table on stderr). A benchmark
// reports; it does not fail.
//
// latency: splits the prefix w/ into --regions Regions, opens one
// client.watch('w/') in this process and writes from another client:
// one-phase transactions of K new keys in one Region (K events each), paced
// open-loop at --rate events/s with at most 64 transactions in flight, for
// --seconds after a 2 s warm-up. Latency is from the commit's
// acknowledgement to the event's delivery by the watch (0 when the event
// came first). After the writers stop, the watch must reach a final
// timestamp; missed = committed writes it never delivered, duplicated =
// writes delivered more than once. --timeline also prints p50/p99 per second
// (stderr), to tell a steady cost from stalls (resubscriptions).
//
// idle-watchers: one Region (its leader's store is "the store"), --watchers
// watches (default 10,000) each on its own key, opened from --clients
// FlotillaClients in this process (each client shares one socket per store
// among its watches); then the store's CPU (% of one core) and RSS over a
// window while nothing changes, and again while a writer changes every key
// once a second (1PC transactions of 100 keys), with the delivery latency.
//
// Both report the load average (the machine is shared) and every child's
// CPU over the window. --tuning FILE hands a store tuning file to every store
// (e.g. {"watchResolvedTsIntervalMs":150,"watchMinPassGapMs":20}, to compare
// settings side by side); --profile DIR writes a CPU profile of every child.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlotillaClient, runTxn, type Watch, type WatchItem } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';
import { CpuWindow, loadAvg1m, rssMb } from './proc-stats';
import { leaders, LeaderMoves, MOVE_POLL_MS, settleLeaders } from './watch-leaders';

const args = process.argv.slice(2);
if (args.includes('--help')) {
  process.stdout.write(
    'pnpm bench:watch [--quick] [--case latency|idle-watchers|all] [--rate EVENTS_PER_S] [--seconds S] [--regions N] [--keys-per-txn K]\n' +
      '                 [--watchers N] [--clients C] [--tuning FILE] [--profile DIR] [--timeline]\n' +
      '  latency: commit acknowledgement to watch delivery, one prefix over N Regions (default 16), 3 stores;\n' +
      '    {"bench":"watch","case":"latency","events_per_s",...,"p50_ms","p99_ms","missed","duplicated",...}\n' +
      '  idle-watchers: N watchers (default 10,000) each on its own key on one store: the store\'s CPU and RSS idle and\n' +
      '    while every key changes once a second: {"bench":"watch","case":"idle-watchers","watchers",...,"store_cpu_pct","store_rss_mb"}\n' +
      '  --idle-settle: wait for the leaders to settle without writing (their moves then fall in the window: measures the stalls)\n' +
      '  --watch-old: the watch re-subscribes as before (placement scan with backoff; WatchOptions.fastResubscribe false)\n' +
      '  --quick: the latency case only, 10 s at 10,000 events/s (the line reports what was achieved). Default: all cases.\n' +
      '  e.g. pnpm bench:watch --case idle-watchers --watchers 2000 --seconds 5\n',
  );
  process.exit(0);
}
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const CASE = argOf('--case', quick ? 'latency' : 'all');
const RATE = Number(argOf('--rate', '10000'));
const SECONDS = Number(argOf('--seconds', quick ? '10' : '30'));
const REGIONS = Number(argOf('--regions', '16'));
const K = Number(argOf('--keys-per-txn', '10'));
const WATCHERS = Number(argOf('--watchers', '10000'));
const CLIENTS = Number(argOf('--clients', '10'));
const TUNING = argOf('--tuning', '');
const TIMELINE = args.includes('--timeline');
/** WATCH_OLD: --watch-old selects the client's previous re-subscribe path (WatchOptions.fastResubscribe false) to compare side by side. */
const WATCH_OLD = args.includes('--watch-old');
/** IDLE_SETTLE: --idle-settle waits for the leaders without writing (as before): the balancer's moves then fall in the window, to measure their stalls. */
const IDLE_SETTLE = args.includes('--idle-settle');
const MAX_IN_FLIGHT = 64;
const WARMUP_MS = 2000;
/** PROFILE_DIR: --profile DIR writes a V8 CPU profile of every child (placement and stores) there. */
const PROFILE_DIR = argOf('--profile', '');

const progress = (s: string): boolean => process.stderr.write(`[bench:watch] ${s}\n`);
const region = (r: number): string => `w/${String(r).padStart(2, '0')}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const ms1 = (x: number): number => Number(x.toFixed(1));

/** withCluster runs one case on a fresh placement + 3 stores, removed afterwards. */
async function withCluster<T>(name: string, run: (cluster: LocalCluster) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `bench-watch-${name}-`));
  progress(`${name}: starting placement + 3 stores (production profile${TUNING ? `, tuning ${TUNING}` : ''}) in ${dir}`);
  const cluster = await LocalCluster.start({
    dataDir: dir,
    stores: 3,
    profile: 'production',
    basePort: 0,
    logLevel: 'warn',
    logger: makeLogger('warn', 'bench-watch'),
    ...(TUNING ? { tuningPath: resolve(TUNING) } : {}),
  });
  cluster.onUnexpectedExit = (p, code, signal) => progress(`${p.name} exited during the run (code ${code}, signal ${signal}); its log: ${p.log}`);
  let ok = false;
  try {
    const r = await run(cluster);
    ok = true;
    return r;
  } finally {
    await cluster.stop();
    if (ok) rmSync(dir, { recursive: true, force: true });
    else progress(`kept ${dir} (logs) after the failure`);
  }
}

/** replicated waits until Region 1 has 3 voters (placement adds them after the stores join). */
async function replicated(c: FlotillaClient): Promise<void> {
  for (const deadline = Date.now() + 180_000; ; await sleep(500)) {
    const rs = await c.regions();
    if (rs.length === 1 && rs[0]!.region.peers.filter((p) => p.role === 'voter').length === 3) return;
    if (Date.now() > deadline) throw new Error('Region 1 is not replicated to 3 stores after 180 s');
  }
}

/** childCpu: a CPU window over placement and the stores (pids in cluster order). */
function childPids(cluster: LocalCluster): { names: string[]; pids: number[] } {
  const ps = [cluster.placement, ...cluster.stores];
  return { names: ps.map((p) => p.name), pids: ps.map((p) => p.proc.pid!) };
}

/** SETTLE_BOUND_MS: how long the latency case waits for the leaders to settle before its window. */
const SETTLE_BOUND_MS = IDLE_SETTLE ? 60_000 : 90_000;

async function latencyCase(): Promise<void> {
  await withCluster('latency', async (cluster) => {
    const writer = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
    const watcher = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
    try {
      await replicated(writer);
      for (let r = 1; r < REGIONS; r++) await writer.split(region(r));
      await writer.split('w0');
      // Splitting leaves every leader on one store and placement then balances them: wait (bounded) for that to settle
      // (leader counts within one of each other, and no leader moved for SETTLE_MS), so the run measures the feeds in
      // steady state rather than the balancer's moves; leader moves that still happen in the window are reported.
      const settle = await settleLeaders(writer, IDLE_SETTLE ? [] : Array.from({ length: REGIONS }, (_, r) => `${region(r)}/~settle`), SETTLE_BOUND_MS);
      progress(`${settle.regions} Regions, leaders balanced${settle.settled ? '' : ` (NOT settled within ${SETTLE_BOUND_MS / 1000} s)`} (leaders ${settle.counts}), ${settle.moves} polls saw a leader move while settling; watching w/`);

      // ack: commit acknowledgement time per "key@revision"; seen: delivery count and time per "key@revision".
      const ack = new Map<string, number>();
      const seen = new Map<string, { n: number; atMs: number }>();
      const w = await watcher.watch('w/', WATCH_OLD ? { fastResubscribe: false } : {});
      const reader = (async () => {
        for await (const e of w as AsyncIterable<WatchItem>) {
          if (e.type === 'progress') continue;
          const id = `${Buffer.from(e.key).toString()}@${e.revision}`;
          const s = seen.get(id);
          if (s) s.n++;
          else seen.set(id, { n: 1, atMs: performance.now() });
        }
      })().catch((e: unknown) => progress(`watch ended: ${(e as Error).message}`));

      let inFlight = 0;
      let seq = 0;
      let failed = 0;
      const measured: string[] = [];
      const start = performance.now();
      const end = start + WARMUP_MS + SECONDS * 1000;
      const txnsPerTick = RATE / K / 100;
      const resubscribesAt: number[] = [];
      let lastResubscribes = w.stats.resubscribes;
      let owed = 0;
      let cpu: CpuWindow | undefined;
      const { names, pids } = childPids(cluster);
      const self = new CpuWindow([process.pid]);
      const moves = new LeaderMoves(writer, await leaders(writer));
      while (performance.now() < end) {
        if (performance.now() >= start + WARMUP_MS) moves.start();
        if (cpu === undefined && performance.now() >= start + WARMUP_MS) cpu = new CpuWindow(pids);
        owed += txnsPerTick;
        while (owed >= 1 && inFlight < MAX_IN_FLIGHT) {
          owed--;
          const n = seq++;
          const keys = Array.from({ length: K }, (_, j) => `${region(n % REGIONS)}/${n}-${j}`);
          const warm = performance.now() < start + WARMUP_MS;
          inFlight++;
          runTxn(writer.txnTransport(), (tx) => {
            for (const k of keys) tx.put(k, 'v');
          })
            .then(
              (r) => {
                const at = performance.now();
                for (const k of keys) {
                  const id = `${k}@${r.commitTs}`;
                  ack.set(id, at);
                  if (!warm) measured.push(id);
                }
              },
              () => failed++,
            )
            .finally(() => inFlight--);
        }
        if (owed > MAX_IN_FLIGHT) owed = MAX_IN_FLIGHT; // do not bank what the cluster could not take
        if (w.stats.resubscribes !== lastResubscribes) {
          lastResubscribes = w.stats.resubscribes;
          resubscribesAt.push(performance.now() - start);
        }
        await sleep(10);
      }
      const cpuPct = cpu?.pct() ?? [];
      const selfPct = self.pct()[0]!;
      const leaderMoves = await moves.stop();
      const stalls = w.leaderMoveStalls;
      const stallP = (f: (x: (typeof stalls)[number]) => number, p: number): number => ms1(percentile(stalls.map(f).sort((a, b) => a - b), p));
      const load = loadAvg1m();
      while (inFlight > 0) await sleep(10);
      const final = await writer.timestamp();
      for (const deadline = Date.now() + 30_000; w.revision < final && Date.now() < deadline; ) await sleep(20);
      w.close();
      await reader;
      const latencies: number[] = [];
      const perSecond = new Map<number, number[]>();
      let missed = 0;
      for (const id of measured) {
        const s = seen.get(id);
        if (!s) missed++;
        else {
          const a = ack.get(id)!;
          const l = Math.max(0, s.atMs - a);
          latencies.push(l);
          const sec = Math.floor((a - start) / 1000);
          let list = perSecond.get(sec);
          if (list === undefined) perSecond.set(sec, (list = []));
          list.push(l);
        }
      }
      let duplicated = 0;
      for (const s of seen.values()) if (s.n > 1) duplicated += s.n - 1;
      latencies.sort((a, b) => a - b);
      const line = {
        bench: 'watch',
        case: 'latency',
        target_events_per_s: RATE,
        events_per_s: Math.round(measured.length / SECONDS),
        regions: REGIONS,
        keys_per_txn: K,
        p50_ms: ms1(percentile(latencies, 50)),
        p99_ms: ms1(percentile(latencies, 99)),
        max_ms: ms1(latencies[latencies.length - 1] ?? 0),
        missed,
        duplicated,
        failed_txns: failed,
        resubscribes: w.stats.resubscribes,
        resubscribe_reasons: w.stats.resubscribeReasons,
        leader_moves_in_window: leaderMoves.length,
        // Each NotLeader end as the watch saw it (warm-up included): to the new feed's subscribe, to its first progress.
        stalls: stalls.length,
        stall_to_subscribe_ms_p50: stallP((x) => x.toSubscribeMs, 50),
        stall_to_progress_ms_p50: stallP((x) => x.toProgressMs, 50),
        stall_to_progress_ms_max: stallP((x) => x.toProgressMs, 100),
        leaders_settled: settle.settled,
        ...(WATCH_OLD ? { watch_old: true } : {}),
        ...Object.fromEntries(names.map((n, i) => [`${n.replace('-', '_')}_cpu_pct`, cpuPct[i]])),
        bench_cpu_pct: selfPct,
        load_avg_1m: load,
        ...(TUNING ? { tuning: TUNING } : {}),
      };
      process.stdout.write(JSON.stringify(line) + '\n');
      if (TIMELINE) {
        const rows = [...perSecond.entries()].sort((a, b) => a[0] - b[0]).map(([sec, l]) => {
          l.sort((a, b) => a - b);
          return `| ${sec} | ${l.length} | ${ms1(percentile(l, 50))} | ${ms1(percentile(l, 99))} |`;
        });
        process.stderr.write(['| second | events | p50 ms | p99 ms |', '|---|---|---|---|', ...rows, `resubscribes at ms: ${resubscribesAt.map((t) => Math.round(t)).join(', ')}`, `leader moves at ms (polled every ${MOVE_POLL_MS} ms): ${leaderMoves.map((m) => `${Math.round(m.atMs - start)} r${m.regionId}`).join(', ')}`, `stalls (NotLeader end to subscribe / to first progress, ms): ${stalls.map((x) => `${ms1(x.toSubscribeMs)}/${ms1(x.toProgressMs)}`).join(', ')}`, ''].join('\n'));
      }
      progress(`| events/s ${line.events_per_s} (target ${RATE}) | p50 ${line.p50_ms} ms | p99 ${line.p99_ms} ms | missed ${missed} | duplicated ${duplicated} | load ${load} |`);
    } finally {
      writer.close();
      watcher.close();
    }
  });
}

async function idleWatchersCase(): Promise<void> {
  await withCluster('idle-watchers', async (cluster) => {
    const writer = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 })));
    const watches: Watch[] = [];
    try {
      await replicated(writer);
      const [r1] = await writer.regions();
      const leaderStoreId = r1!.leader!.storeId;
      const store = cluster.stores.find((s) => s.storeId === leaderStoreId) ?? cluster.stores[0]!;
      const keyOf = (i: number): string => `i/${String(i).padStart(6, '0')}`;
      progress(`opening ${WATCHERS} watches, one key each, from ${CLIENTS} clients; the Region's leader is ${store.name}`);
      // deliveredAt / ackOf: when each "key@revision" was delivered / its commit acknowledged (latency once both are known).
      const deliveredAt = new Map<string, number>();
      const ackOf = new Map<string, number>();
      let events = 0;
      const t0 = performance.now();
      for (let i = 0; i < WATCHERS; i += 200) {
        await Promise.all(
          Array.from({ length: Math.min(200, WATCHERS - i) }, async (_, j) => {
            const key = keyOf(i + j);
            const w = await clients[(i + j) % CLIENTS]!.watch({ start: key, end: `${key}\0` });
            watches.push(w);
            void (async () => {
              for await (const e of w as AsyncIterable<WatchItem>) {
                if (e.type === 'progress') continue;
                events++;
                deliveredAt.set(`${key}@${e.revision}`, performance.now());
              }
            })().catch((e: unknown) => progress(`watch ${key} ended: ${(e as Error).message}`));
          }),
        );
      }
      progress(`${WATCHERS} watches open in ${Math.round(performance.now() - t0)} ms; letting them settle`);
      await sleep(3000);
      const { names, pids } = childPids(cluster);
      const storeIndex = names.indexOf(store.name);
      const windowS = quick ? 5 : SECONDS === 30 ? 10 : SECONDS;

      const idle = new CpuWindow(pids);
      await sleep(windowS * 1000);
      const idlePct = idle.pct();
      const idleLine = {
        bench: 'watch',
        case: 'idle-watchers',
        watchers: WATCHERS,
        clients: CLIENTS,
        keys_changed_per_s: 0,
        store_cpu_pct: idlePct[storeIndex],
        store_rss_mb: rssMb(store.proc.pid!),
        ...Object.fromEntries(names.map((n, i) => [`${n.replace('-', '_')}_cpu_pct`, idlePct[i]])),
        window_s: windowS,
        load_avg_1m: loadAvg1m(),
        ...(TUNING ? { tuning: TUNING } : {}),
      };
      process.stdout.write(JSON.stringify(idleLine) + '\n');
      progress(`idle: ${store.name} ${idleLine.store_cpu_pct} % of a core, RSS ${idleLine.store_rss_mb} MB (load ${idleLine.load_avg_1m})`);

      // Every key changes once a second: WATCHERS / 100 transactions of 100 keys per second, spread over the second.
      const batch = 100;
      const latencies: number[] = [];
      let failed = 0;
      let acked = 0;
      const changing = new CpuWindow(pids);
      const end = performance.now() + windowS * 1000;
      const pending: Promise<void>[] = [];
      for (let round = 0; performance.now() < end; round++) {
        const roundStart = performance.now();
        for (let i = 0; i < WATCHERS; i += batch) {
          const keys = Array.from({ length: Math.min(batch, WATCHERS - i) }, (_, j) => keyOf(i + j));
          pending.push(
            runTxn(writer.txnTransport(), (tx) => {
              for (const k of keys) tx.put(k, String(round));
            }).then(
              (r) => {
                acked += keys.length;
                const at = performance.now();
                // Latency is taken when the delivery is seen later (below): remember the ack per key and revision.
                for (const k of keys) ackOf.set(`${k}@${r.commitTs}`, at);
              },
              () => {
                failed++;
              },
            ),
          );
          const due = roundStart + ((i + batch) / WATCHERS) * 1000;
          const wait = due - performance.now();
          if (wait > 0) await sleep(wait);
        }
      }
      await Promise.all(pending);
      const changingPct = changing.pct();
      const changingRss = rssMb(store.proc.pid!);
      const load = loadAvg1m();
      const final = await writer.timestamp();
      for (const deadline = Date.now() + 30_000; watches.some((w) => w.revision < final) && Date.now() < deadline; ) await sleep(50);
      let missed = 0;
      for (const [id, a] of ackOf) {
        const d = deliveredAt.get(id);
        if (d === undefined) missed++;
        else latencies.push(Math.max(0, d - a));
      }
      latencies.sort((a, b) => a - b);
      const line = {
        bench: 'watch',
        case: 'idle-watchers',
        watchers: WATCHERS,
        clients: CLIENTS,
        keys_changed_per_s: Math.round(acked / windowS),
        store_cpu_pct: changingPct[storeIndex],
        store_rss_mb: changingRss,
        events_delivered: events,
        p50_ms: ms1(percentile(latencies, 50)),
        p99_ms: ms1(percentile(latencies, 99)),
        missed,
        failed_txns: failed,
        ...Object.fromEntries(names.map((n, i) => [`${n.replace('-', '_')}_cpu_pct`, changingPct[i]])),
        window_s: windowS,
        load_avg_1m: load,
        ...(TUNING ? { tuning: TUNING } : {}),
      };
      process.stdout.write(JSON.stringify(line) + '\n');
      progress(`changing: ${line.keys_changed_per_s} keys/s, ${store.name} ${line.store_cpu_pct} % of a core, RSS ${line.store_rss_mb} MB, delivery p50 ${line.p50_ms} ms p99 ${line.p99_ms} ms, missed ${missed} (load ${load})`);
    } finally {
      for (const w of watches) w.close();
      for (const c of clients) c.close();
      writer.close();
    }
  });
}
async function main(): Promise<void> {
  if (PROFILE_DIR) {
    // Children inherit the environment (--cpu-prof is not allowed in NODE_OPTIONS): each profiles itself through the
    // inspector and writes <command>-<pid>.cpuprofile when it exits (SIGTERM ends them with process.exit).
    const hook = fileURLToPath(new URL('./cpu-profile-hook.mjs', import.meta.url));
    process.env['NODE_OPTIONS'] = `${process.env['NODE_OPTIONS'] ?? ''} --import ${hook}`.trim();
    process.env['FLOTILLA_CPU_PROF_DIR'] = resolve(PROFILE_DIR);
    progress(`CPU profiles of the children go to ${PROFILE_DIR}`);
  }
  if (CASE !== 'latency' && CASE !== 'idle-watchers' && CASE !== 'all') throw new Error(`--case must be latency, idle-watchers or all, got ${CASE}`);
  if (CASE === 'latency' || CASE === 'all') await latencyCase();
  if (CASE === 'idle-watchers' || CASE === 'all') await idleWatchersCase();
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench:watch] failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
