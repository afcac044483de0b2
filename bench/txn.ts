// bench/txn.ts — transactions through the client (issue #17, Performance).
//
//   pnpm bench:txn [--quick] [--concurrency 64] [--seconds S] [--regions 16] [--keys N] [--rounds N] [--cases a,b] [--no-balance]
//
// Starts placement + 3 stores (production profile, default durability) as
// real child processes (LocalCluster, as bench:cluster does), pre-splits 16
// Regions over the loaded keys, spreads their leaders over the 3 stores
// (transfer-leader operators; --no-balance keeps them where the splits left
// them, all on one store), and measures, closed-loop from this process:
//   cross-region   4-key read-modify-write transactions whose keys span 2+
//                  Regions (2PC), uniform and zipfian key choice: committed
//                  txn/s, p50/p99 of a committed call, and the abort rate
//                  (attempts that ended in a conflict and ran again, over all attempts)
//   1pc            2-key transactions whose keys share one Region (1PC),
//                  beside raw puts of the same keys at the same concurrency
//   snapshot-get   single-key snapshot gets at a fresh ts, beside raw
//                  linearizable gets of the same key names (raw keyspace)
// A "ratio" case is measured side by side: the two halves alternate
// (txn, raw, txn, raw ...) in windows of --seconds, --rounds times, and the
// figures are the medians. One JSON line per case on stdout (the issue's
// shapes); progress on stderr. Benchmarks report; they do not fail.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient, runTxn, type TxnPhase, type TxnTrace } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';

const args = process.argv.slice(2);
if (args.includes('--help')) {
  process.stdout.write(
    'pnpm bench:txn [--quick] [--concurrency N] [--seconds S] [--regions N] [--keys N] [--rounds N] [--cases a,b] [--no-balance] [--trace] [--old-driver]\n' +
      '  cross-region 4-key transactions (uniform, zipfian), 1PC vs raw put, snapshot get vs raw get;\n' +
      '  3 stores, production profile; one JSON line per case. --quick: concurrency 64, short windows.\n' +
      '  --trace: per-phase client time of the cross-region transactions on stderr.\n' +
      '  --old-driver: the cross-region cases with the previous retry path (rollbacks awaited before the retry).\n',
  );
  process.exit(0);
}
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const CONCURRENCY = Number(argOf('--concurrency', '64'));
const WINDOW_MS = Number(argOf('--seconds', quick ? '4' : '8')) * 1000;
const ROUNDS = Number(argOf('--rounds', quick ? '2' : '3'));
const REGIONS = Number(argOf('--regions', '16'));
/**
 * KEYS: the keyspace (--keys N). With 64 transactions of 4 keys in flight a
 * uniform choice conflicts often in a small one: about 1 - (1 - 4/KEYS)^(64 * 4 * 0.7)
 * of attempts meet a key another wrote after their start_ts or holds locked
 * (~20 % at 4,000 keys, ~4 % at 20,000): --quick's 4,000 measure conflicts as
 * much as speed.
 */
const KEYS = Number(argOf('--keys', quick ? '4000' : '20000'));
/** CASES: --cases a,b runs only those (cross-region-uniform, cross-region-zipfian, 1pc, snapshot-get), for profiling one. */
/** OLD_DRIVER: --old-driver runs the cross-region cases with the driver's previous retry path (an aborted attempt's rollbacks waited for before the retry), to compare side by side. */
const OLD_DRIVER = args.includes('--old-driver');
const DRIVER_OPTS = OLD_DRIVER ? { rollbackInBackground: false } : {};
/** TRACE: --trace sums the client's time per transaction phase (TxnTrace) in the cross-region cases and prints it on stderr. */
const TRACE = args.includes('--trace');
const CASES = new Set(argOf('--cases', 'cross-region-uniform,cross-region-zipfian,1pc,snapshot-get').split(','));
const VALUE = 'v'.repeat(100);
const WARMUP_MS = 1000;

const progress = (s: string): boolean => process.stderr.write(`[bench:txn] ${s}\n`);
const keyOf = (i: number): string => `t/${String(i).padStart(8, '0')}`;

/** rng: xorshift32, seeded. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** zipf draws 0..n-1 with YCSB's zipfian constant 0.99 (rejection-free inverse CDF over a precomputed table). */
function zipfTable(n: number, theta = 0.99): Float64Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / Math.pow(i + 1, theta);
  for (let i = 0; i < n; i++) cdf[i]! /= sum;
  return cdf;
}
function zipfDraw(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid]! < u) lo = mid + 1;
    else hi = mid;
  }
  // Scatter the hot ranks over the keyspace (and so over the Regions), as YCSB's scrambled zipfian does.
  return (lo * 2_654_435_761) % cdf.length;
}

const percentile = (sorted: number[], p: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Window {
  perS: number;
  p50: number;
  p99: number;
  errors: number;
  /** extra: attempts beyond the first (conflict retries), summed over committed calls. */
  retries: number;
}

/** window keeps `clients` calls in flight for WINDOW_MS after a warm-up; op returns the attempts it took (1 = no retry). */
async function window(clients: number, op: (r: () => number) => Promise<number>, seed: number): Promise<Window> {
  const lat: number[] = [];
  let errors = 0;
  let retries = 0;
  const warmEnd = Date.now() + WARMUP_MS;
  const end = warmEnd + WINDOW_MS;
  const worker = async (w: number): Promise<void> => {
    const r = rng(seed * 7919 + w);
    while (Date.now() < end) {
      const t0 = performance.now();
      let attempts: number;
      try {
        attempts = await op(r);
      } catch {
        if (Date.now() >= warmEnd) errors++;
        continue;
      }
      if (Date.now() >= warmEnd) {
        lat.push(performance.now() - t0);
        retries += attempts - 1;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
  lat.sort((a, b) => a - b);
  return { perS: lat.length / (WINDOW_MS / 1000), p50: percentile(lat, 50), p99: percentile(lat, 99), errors, retries };
}

const round2 = (x: number): number => Number(x.toFixed(2));
const emit = (row: object): boolean => process.stdout.write(JSON.stringify(row) + '\n');

/** distinctKeys draws n distinct key indexes with draw(). */
function distinctKeys(n: number, draw: () => number): number[] {
  const out = new Set<number>();
  while (out.size < n) out.add(draw());
  return [...out];
}

async function crossRegion(client: FlotillaClient, dist: 'uniform' | 'zipfian'): Promise<void> {
  const cdf = zipfTable(KEYS);
  const per = KEYS / REGIONS;
  const t = client.txnTransport();
  const ws: Window[] = [];
  const phases = new Map<TxnPhase, { n: number; ms: number }>();
  const trace: TxnTrace | undefined = TRACE
    ? (phase, ms) => {
        const p = phases.get(phase) ?? { n: 0, ms: 0 };
        p.n++;
        p.ms += ms;
        phases.set(phase, p);
      }
    : undefined;
  for (let round = 0; round < ROUNDS; round++) {
    progress(`cross-region ${dist} round ${round + 1}/${ROUNDS}`);
    ws.push(
      await window(
        CONCURRENCY,
        async (r) => {
          const draw = dist === 'uniform' ? () => Math.floor(r() * KEYS) : () => zipfDraw(cdf, r());
          let keys = distinctKeys(4, draw);
          // Keys must span 2+ Regions (pre-split evenly every `per` keys): redraw the last key elsewhere if not.
          while (new Set(keys.map((k) => Math.floor(k / per))).size < 2) keys = [...keys.slice(0, 3), (keys[3]! + Math.floor(per)) % KEYS];
          const out = await runTxn(t, async (tx) => {
            await tx.batchGet(keys.map(keyOf));
            for (const k of keys) tx.put(keyOf(k), VALUE);
          }, { maxRetries: 20, timeoutMs: 30_000, ...DRIVER_OPTS, ...(trace ? { trace } : {}) });
          return out.attempts;
        },
        round + (dist === 'uniform' ? 1 : 101),
      ),
    );
  }
  const attempts = ws.reduce((s, w) => s + w.perS * (WINDOW_MS / 1000) + w.retries, 0);
  const retries = ws.reduce((s, w) => s + w.retries, 0);
  if (TRACE) {
    // Per committed call (warm-up included in the sums, so a little high): how many times each phase ran and its mean.
    const calls = Math.max(1, ws.reduce((s, w) => s + w.perS * (WINDOW_MS / 1000), 0));
    const rows = [...phases].map(([p, v]) => `${p.padEnd(14)} ${(v.n / calls).toFixed(2).padStart(6)}/txn  mean ${(v.ms / v.n).toFixed(1).padStart(7)} ms  ${(v.ms / calls).toFixed(1).padStart(7)} ms/txn`);
    progress(`trace ${dist} (${Math.round(calls)} committed calls):\n  ${rows.join('\n  ')}`);
  }
  emit({ bench: 'txn', case: 'cross-region', keys: 4, concurrency: CONCURRENCY, dist, regions: REGIONS, key_count: KEYS, driver: OLD_DRIVER ? 'old' : 'new', txn_per_s: Math.round(median(ws.map((w) => w.perS))), p50_ms: round2(median(ws.map((w) => w.p50))), p99_ms: round2(median(ws.map((w) => w.p99))), abort_pct: round2((100 * retries) / Math.max(1, attempts)), errors: ws.reduce((s, w) => s + w.errors, 0), rounds: ROUNDS });
}

/** sideBySide alternates the txn and raw halves of a case, ROUNDS times each, and reports medians. */
async function sideBySide(name: string, txnOp: (r: () => number) => Promise<number>, rawOp: (r: () => number) => Promise<number>): Promise<{ txn: Window[]; raw: Window[] }> {
  const txn: Window[] = [];
  const raw: Window[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    progress(`${name} round ${round + 1}/${ROUNDS}: transactional`);
    txn.push(await window(CONCURRENCY, txnOp, 300 + round));
    progress(`${name} round ${round + 1}/${ROUNDS}: raw`);
    raw.push(await window(CONCURRENCY, rawOp, 400 + round));
  }
  return { txn, raw };
}

async function onePc(client: FlotillaClient): Promise<void> {
  const per = Math.floor(KEYS / REGIONS);
  const t = client.txnTransport();
  // Two keys of one Region: a random Region, two random keys inside it.
  const pair = (r: () => number): [number, number] => {
    const base = Math.floor(r() * REGIONS) * per + 1;
    const a = base + Math.floor(r() * (per - 2));
    return [a, a === base + per - 3 ? a - 1 : a + 1];
  };
  const { txn, raw } = await sideBySide(
    '1pc',
    async (r) => {
      const [a, b] = pair(r);
      return (await runTxn(t, (tx) => { tx.put(keyOf(a), VALUE); tx.put(keyOf(b), VALUE); }, { maxRetries: 20, timeoutMs: 30_000 })).attempts;
    },
    async (r) => {
      await client.put(keyOf(pair(r)[0]), VALUE);
      return 1;
    },
  );
  const t1 = median(txn.map((w) => w.perS));
  const r1 = median(raw.map((w) => w.perS));
  emit({ bench: 'txn', case: '1pc', keys: 2, concurrency: CONCURRENCY, txn_per_s: Math.round(t1), p50_ms: round2(median(txn.map((w) => w.p50))), p99_ms: round2(median(txn.map((w) => w.p99))), raw_put_per_s: Math.round(r1), ratio: round2(t1 / Math.max(1, r1)), rounds: ROUNDS });
}

async function snapshotGet(client: FlotillaClient): Promise<void> {
  const { txn, raw } = await sideBySide(
    'snapshot-get',
    async (r) => {
      const snap = await client.snapshot();
      await snap.get(keyOf(Math.floor(r() * KEYS)));
      return 1;
    },
    async (r) => {
      await client.get(keyOf(Math.floor(r() * KEYS)));
      return 1;
    },
  );
  const t1 = median(txn.map((w) => w.perS));
  const r1 = median(raw.map((w) => w.perS));
  emit({ bench: 'txn', case: 'snapshot-get', concurrency: CONCURRENCY, ops_per_s: Math.round(t1), p99_ms: round2(median(txn.map((w) => w.p99))), raw_get_per_s: Math.round(r1), raw_p99_ms: round2(median(raw.map((w) => w.p99))), ratio: round2(t1 / Math.max(1, r1)), rounds: ROUNDS });
}

async function load(client: FlotillaClient): Promise<void> {
  progress(`loading ${KEYS} transactional and ${KEYS} raw keys`);
  const t = client.txnTransport();
  for (let i = 0; i < KEYS; i += 250) {
    const ks = Array.from({ length: Math.min(250, KEYS - i) }, (_, j) => keyOf(i + j));
    await runTxn(t, (tx) => ks.forEach((k) => tx.put(k, VALUE)), { timeoutMs: 60_000 });
    await client.batchPut(ks.map((k) => [k, VALUE] as [string, string]));
  }
}

/** leadersPerStore counts Region leaders by store, as placement knows them. */
async function leadersPerStore(client: FlotillaClient): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of await client.regions()) if (r.leader) out[r.leader.storeId] = (out[r.leader.storeId] ?? 0) + 1;
  return out;
}

/**
 * balanceLeaders spreads the Region leaders over the stores (Region i to the
 * i-th store in turn) through placement's transfer-leader operators, as a
 * long-running cluster's leader balancing would: the Regions a split makes
 * all start with the one leader, and a single store's one thread then
 * serves every command. Bounded wait; it reports what it got.
 */
async function balanceLeaders(client: FlotillaClient, placement: string): Promise<void> {
  const rs = await client.regions();
  const stores = [...new Set(rs.flatMap((r) => r.region.peers.filter((p) => p.role === 'voter').map((p) => p.storeId)))].sort((a, b) => a - b);
  const want = new Map<number, number>();
  rs.forEach((r, i) => want.set(r.region.id, stores[i % stores.length]!));
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 1000))) {
    const now = await client.regions();
    const off = now.filter((r) => r.leader?.storeId !== want.get(r.region.id));
    if (off.length === 0) break;
    let refused = '';
    for (const r of off) {
      const res = await fetch(`http://${placement}/operators`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'transfer-leader', regionId: r.region.id, storeId: want.get(r.region.id) }) }).catch((e: Error) => e);
      if (res instanceof Error) refused = res.message;
      else if (!res.ok) {
        const body = await res.text();
        // One operator per Region: an earlier request's still running.
        if (!body.includes('already has operator')) refused = `HTTP ${res.status} ${body}`;
      }
    }
    if (refused) progress(`transfer-leader: ${refused.slice(0, 200)}`);
  }
  progress(`leaders per store after balancing: ${JSON.stringify(await leadersPerStore(client))}`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-txn-'));
  progress(`starting placement + 3 stores (production profile) in ${dir}`);
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger: makeLogger('warn', 'bench-txn') });
  const client = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
  try {
    for (const deadline = Date.now() + 180_000; ; await new Promise((r) => setTimeout(r, 500))) {
      const rs = await client.regions();
      if (rs.length === 1 && rs[0]!.region.peers.filter((p) => p.role === 'voter').length === 3) break;
      if (Date.now() > deadline) throw new Error('Region 1 is not replicated to 3 stores after 180 s');
    }
    // Split first, every KEYS/REGIONS keys; a Region's range holds both keyspaces (they never alias), so
    // the raw key t/… and the transactional key t/… live in the same Region: raw and txn cases hit the same Regions.
    for (let k = 1; k < REGIONS; k++) await client.split(keyOf(Math.floor((k * KEYS) / REGIONS)));
    progress(`${(await client.regions()).length} Regions; leaders per store ${JSON.stringify(await leadersPerStore(client))}`);
    await load(client);
    if (!args.includes('--no-balance')) await balanceLeaders(client, cluster.placement.address);
    if (CASES.has('cross-region-uniform')) await crossRegion(client, 'uniform');
    if (CASES.has('cross-region-zipfian')) await crossRegion(client, 'zipfian');
    if (CASES.has('1pc')) await onePc(client);
    if (CASES.has('snapshot-get')) await snapshotGet(client);
  } finally {
    client.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:txn failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
