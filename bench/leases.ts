// bench/leases.ts — many leases kept alive by one client (issue #18, Performance).
//
//   pnpm bench:leases [--quick] [--leases N] [--ttl-ms MS] [--seconds S]
//
// Starts placement + 3 stores as real child processes (LocalCluster; the
// placement command's own lease reaper), grants N leases (default 10,000,
// TTL 5 s; 64 grants in flight, each also writes its guard key), keeping
// each alive from this process from its grant on (every TTL/3), then
// measures for --seconds. Reports the
// keepalive latency (p50/p99), leases lost (LeaseNotFound), and placement's
// CPU over the window (/proc/PID/stat, % of one core), with the load
// average. One JSON line on stdout in bench:watch's shape ({"bench":"watch",
// "case":"leases",...}); progress on stderr. It reports; it does not fail.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';

const args = process.argv.slice(2);
if (args.includes('--help')) {
  process.stdout.write(
    'pnpm bench:leases [--quick] [--leases N] [--ttl-ms MS] [--seconds S]\n' +
      '  N leases (default 10000, TTL 5000 ms) kept alive by one client for S seconds (default 30) on placement + 3 stores;\n' +
      '  one JSON line: {"bench":"watch","case":"leases","leases","ttl_ms","keepalives","keepalive_p50_ms","keepalive_p99_ms","lost","placement_cpu_pct","load_avg_1m"}.\n' +
      '  --quick: 1000 leases for 10 s.\n',
  );
  process.exit(0);
}
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const LEASES = Number(argOf('--leases', quick ? '1000' : '10000'));
const TTL_MS = Number(argOf('--ttl-ms', '5000'));
const SECONDS = Number(argOf('--seconds', quick ? '10' : '30'));
const GRANTS_IN_FLIGHT = 64;

const progress = (s: string): boolean => process.stderr.write(`[bench:leases] ${s}\n`);

/** cpuSeconds: user + system CPU of a process so far (/proc/PID/stat, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** grantAll grants LEASES leases (GRANTS_IN_FLIGHT at a time) and starts keeping each alive as soon as it is granted (every interval ms). */
async function grantAll(c: FlotillaClient, interval: number, refresh: (id: number) => Promise<void>, timers: NodeJS.Timeout[]): Promise<number[]> {
  const ids: number[] = [];
  let next = 0;
  const startedAt = performance.now();
  await Promise.all(
    Array.from({ length: GRANTS_IN_FLIGHT }, async () => {
      while (next < LEASES) {
        next++;
        const { id } = await c.lease.grant(TTL_MS);
        ids.push(id);
        timers.push(setInterval(() => void refresh(id), interval));
        if (ids.length % 1000 === 0) progress(`${ids.length} leases granted (${Math.round(ids.length / ((performance.now() - startedAt) / 1000))}/s)`);
      }
    }),
  );
  return ids;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-leases-'));
  progress(`starting placement + 3 stores in ${dir}`);
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger: makeLogger('warn', 'bench-leases') });
  const client = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
  const timers: NodeJS.Timeout[] = [];
  try {
    const interval = Math.floor(TTL_MS / 3);
    const latencies: number[] = [];
    let lost = 0;
    const failed = new Map<string, number>();
    let measuring = false;
    const refresh = async (id: number): Promise<void> => {
      const t0 = performance.now();
      try {
        await client.lease.keepAliveOnce(id);
        if (measuring) latencies.push(performance.now() - t0);
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'Error';
        if (code === 'LeaseNotFound') lost++;
        else failed.set(code, (failed.get(code) ?? 0) + 1);
      }
    };
    const ids = await grantAll(client, interval, refresh, timers);
    progress(`${ids.length} leases granted; keeping them alive for ${SECONDS} s`);
    // One interval to settle (every lease refreshed once), then the measured window.
    await new Promise((r) => setTimeout(r, interval));
    const pid = cluster.placement.proc.pid!;
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    measuring = false;
    const cpuPct = ((cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000)) * 100;
    const sorted = latencies.sort((a, b) => a - b);
    const line = {
      bench: 'watch',
      case: 'leases',
      leases: ids.length,
      ttl_ms: TTL_MS,
      seconds: SECONDS,
      keepalives: sorted.length,
      keepalives_per_s: Math.round(sorted.length / SECONDS),
      keepalive_p50_ms: Number(percentile(sorted, 50).toFixed(2)),
      keepalive_p99_ms: Number(percentile(sorted, 99).toFixed(2)),
      lost,
      failed: Object.fromEntries(failed),
      placement_cpu_pct: Number(cpuPct.toFixed(1)),
      load_avg_1m: Number(loadavg()[0]!.toFixed(2)),
    };
    process.stdout.write(JSON.stringify(line) + '\n');
    progress(`| leases | ttl ms | keepalives/s | p50 ms | p99 ms | lost | placement CPU % | load |`);
    progress(`| ${line.leases} | ${TTL_MS} | ${line.keepalives_per_s} | ${line.keepalive_p50_ms} | ${line.keepalive_p99_ms} | ${lost} | ${line.placement_cpu_pct} | ${line.load_avg_1m} |`);
  } finally {
    for (const t of timers) clearTimeout(t);
    client.close();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench:leases] failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
