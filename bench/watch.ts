// bench/watch.ts — watch latency (issue #18, Performance).
//
//   pnpm bench:watch [--quick] [--rate EVENTS_PER_S] [--seconds S] [--regions 16] [--keys-per-txn K]
//
// Starts placement + 3 stores (production profile) as real child
// processes (LocalCluster, as bench:txn does), splits the prefix w/ into
// --regions Regions, opens one client.watch('w/') in this process and
// writes from another client: one-phase transactions of K new keys in one
// Region (K events each), paced open-loop at --rate events/s with at most
// 64 transactions in flight, for --seconds after a 2 s warm-up. Latency is
// from the commit's acknowledgement to the event's delivery by the watch
// (0 when the event came first). After the writers stop, the watch must
// reach a final timestamp; missed = committed writes it never delivered,
// duplicated = writes delivered more than once. One JSON line on stdout;
// progress on stderr. A benchmark reports; it does not fail.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient, runTxn, type WatchItem } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';

const args = process.argv.slice(2);
if (args.includes('--help')) {
  process.stdout.write(
    'pnpm bench:watch [--quick] [--rate EVENTS_PER_S] [--seconds S] [--regions N] [--keys-per-txn K]\n' +
      '  latency from commit acknowledgement to watch delivery, one prefix over N Regions (default 16), 3 stores;\n' +
      '  one JSON line: {"bench":"watch","case":"latency","events_per_s",...,"p50_ms","p99_ms","missed","duplicated"}.\n' +
      '  --quick: 10 s at 10,000 events/s (target; the line reports what was achieved).\n',
  );
  process.exit(0);
}
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const RATE = Number(argOf('--rate', '10000'));
const SECONDS = Number(argOf('--seconds', quick ? '10' : '30'));
const REGIONS = Number(argOf('--regions', '16'));
const K = Number(argOf('--keys-per-txn', '10'));
const MAX_IN_FLIGHT = 64;
const WARMUP_MS = 2000;

const progress = (s: string): boolean => process.stderr.write(`[bench:watch] ${s}\n`);
const region = (r: number): string => `w/${String(r).padStart(2, '0')}`;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-watch-'));
  progress(`starting placement + 3 stores (production profile) in ${dir}`);
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger: makeLogger('warn', 'bench-watch') });
  const writer = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
  const watcher = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
  try {
    for (const deadline = Date.now() + 180_000; ; await new Promise((r) => setTimeout(r, 500))) {
      const rs = await writer.regions();
      if (rs.length === 1 && rs[0]!.region.peers.filter((p) => p.role === 'voter').length === 3) break;
      if (Date.now() > deadline) throw new Error('Region 1 is not replicated to 3 stores after 180 s');
    }
    for (let r = 1; r < REGIONS; r++) await writer.split(region(r));
    await writer.split('w0');
    // Splitting leaves every leader on one store and placement then balances them: wait for that to settle
    // (leader counts within one of each other), so the run measures the feeds rather than their resubscriptions.
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      const counts = new Map<number, number>();
      for (const r of await writer.regions()) if (r.leader) counts.set(r.leader.storeId, (counts.get(r.leader.storeId) ?? 0) + 1);
      const c = [...counts.values()];
      if (c.length === 3 && Math.max(...c) - Math.min(...c) <= 1) break;
    }
    progress(`${(await writer.regions()).length} Regions, leaders balanced; watching w/`);

    // ack: commit acknowledgement time per "key@revision"; seen: delivery count and time per "key@revision".
    const ack = new Map<string, number>();
    const seen = new Map<string, { n: number; atMs: number }>();
    const w = await watcher.watch('w/');
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
    const txnsPerTick = (RATE / K) / 100;
    let owed = 0;
    while (performance.now() < end) {
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
          .then((r) => {
            const at = performance.now();
            for (const k of keys) {
              const id = `${k}@${r.commitTs}`;
              ack.set(id, at);
              if (!warm) measured.push(id);
            }
          }, () => failed++)
          .finally(() => inFlight--);
      }
      if (owed > MAX_IN_FLIGHT) owed = MAX_IN_FLIGHT; // do not bank what the cluster could not take
      await new Promise((r) => setTimeout(r, 10));
    }
    while (inFlight > 0) await new Promise((r) => setTimeout(r, 10));
    const final = await writer.timestamp();
    for (const deadline = Date.now() + 30_000; w.revision < final && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    w.close();
    await reader;
    const latencies: number[] = [];
    let missed = 0;
    for (const id of measured) {
      const s = seen.get(id);
      if (!s) missed++;
      else latencies.push(Math.max(0, s.atMs - ack.get(id)!));
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
      p50_ms: Number(percentile(latencies, 50).toFixed(1)),
      p99_ms: Number(percentile(latencies, 99).toFixed(1)),
      missed,
      duplicated,
      failed_txns: failed,
      resubscribes: w.stats.resubscribes,
    };
    process.stdout.write(JSON.stringify(line) + '\n');
    progress(`| events/s ${line.events_per_s} (target ${RATE}) | p50 ${line.p50_ms} ms | p99 ${line.p99_ms} ms | missed ${missed} | duplicated ${duplicated} |`);
  } finally {
    writer.close();
    watcher.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`[bench:watch] failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
