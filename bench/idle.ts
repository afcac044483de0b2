// bench/idle.ts — what idle Regions cost a store.
//
//   pnpm bench:idle [--quick] [--regions N]
//
// Starts placement + 3 store processes (the `flotilla up` machinery) in a
// temp dir, splits the key space into N Regions (default 10,000; --quick
// 1,000) with BatchSplit requests to the first Region's leader, waits until
// every Region has a leader and the stores have gone quiet (hibernated),
// then samples each store process's CPU (utime+stime from /proc) and RSS
// over a window. One JSON line per store on stdout
// ({"bench":"cluster","op":"idle","regions":…,"store_cpu_pct":…,"store_rss_mb":…}),
// a markdown table on stderr. Benchmarks report; they do not fail.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { LocalCluster, makeLogger } from '@flotilla/node';
import { PlacementClient } from '@flotilla/placement';
import { decode, encode, utf8, type ClientResponse, type Region } from '@flotilla/proto';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const REGIONS = Number(argOf('--regions', quick ? '1000' : '10000'));
const WINDOW_MS = quick ? 5_000 : 20_000;
const progress = (s: string): boolean => process.stderr.write(`[bench:idle] ${s}\n`);
const keyOf = (i: number) => utf8(`idle/${String(i).padStart(8, '0')}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** call sends one client request to a store and waits for its answer. */
async function call(address: string, req: object): Promise<ClientResponse> {
  const ws = new WebSocket(`ws://${address}/client`);
  try {
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    return await new Promise<ClientResponse>((res, rej) => {
      ws.once('message', (d: Buffer) => res(decode(d) as ClientResponse));
      ws.once('error', rej);
      ws.send(encode({ id: 1, ...req }));
    });
  } finally {
    ws.close();
  }
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime, in clock ticks (100/s)
}
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-idle-'));
  const logger = makeLogger('warn');
  progress(`starting placement + 3 stores in ${dir}`);
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger });
  const pd = new PlacementClient({ addresses: [cluster.placement.address] });
  try {
    // Wait for Region 1 to have three voters (the replica checker adds them).
    let first: Region | undefined;
    for (const deadline = Date.now() + 150_000; Date.now() < deadline; await sleep(200)) {
      const r = await pd.getRegion(new Uint8Array());
      if (r && r.region.peers.filter((p) => p.role === 'voter').length === 3 && r.leader) {
        first = r.region;
        break;
      }
    }
    if (!first) throw new Error('Region 1 never reached three voters');
    progress(`splitting into ${REGIONS} Regions`);
    const keys = Array.from({ length: REGIONS - 1 }, (_, i) => keyOf(i + 1));
    let region = first;
    let leaderStore = (await pd.getRegion(new Uint8Array()))!.leader!.storeId;
    let done = 0;
    while (done < keys.length) {
      const end = region.endKey;
      const todo = keys.filter((k) => end.length === 0 || Buffer.compare(Buffer.from(k), Buffer.from(end)) < 0);
      if (todo.length === 0) break;
      const store = await pd.getStore(leaderStore);
      const r = await call(store!.address, { header: { regionId: region.id, regionEpoch: region.epoch }, op: 'split', splitKeys: todo.slice(-64) });
      if (r.ok) {
        region = r.regions![0]!;
        done = keys.length - todo.length + Math.min(64, todo.length);
        if (done % 1024 < 64) progress(`  ${done + 1} Regions`);
      } else if (r.error.type === 'NotLeader' && r.error.leader) {
        leaderStore = r.error.leader.storeId;
      } else if (r.error.type === 'EpochNotMatch' && r.error.currentRegions[0]) {
        region = r.error.currentRegions[0];
      } else {
        await sleep(100);
      }
    }
    progress('waiting for the stores to go quiet (hibernation)');
    const stores = cluster.stores.map((s) => ({ address: s.address, pid: s.proc.pid! }));
    for (const deadline = Date.now() + 180_000; Date.now() < deadline; await sleep(1000)) {
      const st = await Promise.all(stores.map(async (s) => (await (await fetch(`http://${s.address}/status`)).json()) as { regions: number; leaders: number; hibernated: number }));
      const leaders = st.reduce((a, x) => a + x.leaders, 0);
      const hib = st.reduce((a, x) => a + x.hibernated, 0);
      progress(`  leaders ${leaders}/${REGIONS}, hibernated ${hib}/${REGIONS * 3}`);
      if (leaders === REGIONS && hib >= REGIONS * 3 * 0.99) break;
    }
    progress(`sampling CPU and RSS for ${WINDOW_MS} ms`);
    const before = stores.map((s) => cpuTicks(s.pid));
    const t0 = Date.now();
    await sleep(WINDOW_MS);
    const elapsedS = (Date.now() - t0) / 1000;
    const rows = stores.map((s, i) => ({
      bench: 'cluster',
      op: 'idle',
      store: i + 1,
      regions: REGIONS,
      store_cpu_pct: Math.round(((cpuTicks(s.pid) - before[i]!) / 100 / elapsedS) * 1000) / 10,
      store_rss_mb: rssMb(s.pid),
    }));
    for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
    const lines = rows.map((r) => `| ${r.store} | ${r.regions} | ${r.store_cpu_pct} | ${r.store_rss_mb} |`);
    process.stderr.write(['', '| store | regions | cpu % of one core | rss MB |', '|---|---|---|---|', ...lines, ''].join('\n'));
  } finally {
    pd.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:idle failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
