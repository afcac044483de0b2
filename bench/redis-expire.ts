// bench/redis-expire.ts — what key expiry costs on the Redis front (--keyspace txn).
//
//   pnpm bench:redis-expire [--quick] [--requests N] [--rounds R] [--cases set,set-ex,expire] [--attach batch|single|both]
//
// Starts placement + 3 stores (LocalCluster, production profile, free
// ports, temp dir) and `flotilla redis --keyspace txn` as a child process,
// then runs redis-benchmark (-c 50 -P 16, random keys of -r N/5) with
// three commands, alternating, R rounds (default 3, --quick 1):
//   set      SET key:__rand_int__ xxx           (the group-committed blind write)
//   set-ex   SET key:__rand_int__ xxx EX 600    (a transaction with a shared lease)
//   expire   EXPIRE key:__rand_int__ 600        (read, attach, rewrite with the lease; the keys exist)
// Every key written with an expiry is attached to its lease by placement
// (a placement log entry), which is most of what set-ex costs over set.
// Each row has the leases the front granted during it (placement's lease
// count before and after: keys with deadlines in one 100 ms window share
// one) and the front's error replies. One JSON line per case on stdout, a
// markdown table on stderr with the medians; the load average is in every
// row (the machine is shared). --attach picks the front's expiring-write
// path: batch (default: blind SET EX writes group-committed, concurrent
// attaches coalesced into one leaseAttachBatch request and log entry),
// single (the path before: each expiring write its own transaction, one
// leaseAttach request per key; FLOTILLA_REDIS_LEASE_ATTACH=single and
// FLOTILLA_REDIS_EXPIRY_GROUP=off), or both:
// one front of each on the same cluster, every case run on each in turn,
// alternating. Needs redis-tools.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';
import { errorReplies, startRedisFront, type RedisFront } from './redis-front';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const REQUESTS = Number(argOf('--requests', quick ? '3000' : '10000'));
const ROUNDS = Number(argOf('--rounds', quick ? '1' : '3'));
const ATTACH = argOf('--attach', 'batch');
if (!['batch', 'single', 'both'].includes(ATTACH)) throw new Error(`--attach: expected batch, single or both, got ${ATTACH}`);
const MODES: ('batch' | 'single')[] = ATTACH === 'both' ? ['single', 'batch'] : [ATTACH as 'batch' | 'single'];
const CLIENTS = 50;
const PIPELINE = 16;
/** KEYSPACE: redis-benchmark's -r; a fifth of the requests, so the set case leaves nearly every key existing (e^-5 missing) for expire. */
const KEYSPACE = Math.max(1, Math.floor(REQUESTS / 5));

const ALL_CASES: Record<string, string[]> = {
  set: ['SET', 'key:__rand_int__', 'xxx'],
  'set-ex': ['SET', 'key:__rand_int__', 'xxx', 'EX', '600'],
  expire: ['EXPIRE', 'key:__rand_int__', '600'],
};
/** CASES: --cases a,b picks some of them (default all), in the order given. */
const CASES: Record<string, string[]> = Object.fromEntries(
  argOf('--cases', Object.keys(ALL_CASES).join(','))
    .split(',')
    .map((c) => {
      const argv = ALL_CASES[c];
      if (argv === undefined) throw new Error(`--cases: unknown case ${c} (known: ${Object.keys(ALL_CASES).join(', ')})`);
      return [c, argv] as const;
    }),
);

const progress = (s: string): boolean => process.stderr.write(`[bench:redis-expire] ${s}\n`);

interface Row {
  bench: 'redis-expire';
  case: string;
  attach: 'batch' | 'single';
  round: number;
  requests: number;
  concurrency: number;
  pipeline: number;
  ops_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  leases_granted: number;
  load_avg_1m: number;
}

function need(bin: string): string {
  const p = ['/usr/bin', '/usr/local/bin'].map((d) => join(d, bin)).find((x) => existsSync(x));
  if (!p) {
    process.stderr.write(`bench:redis-expire needs ${bin} (Debian redis-tools: apt-get install redis-tools)\n`);
    process.exit(2);
  }
  return p;
}

const round2 = (n: number): number => Math.round(n * 100) / 100;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** startFront: a txn front on the old (single attaches, no expiry group) or the new path. */
function startFront(placement: string, attach: 'batch' | 'single'): Promise<RedisFront> {
  return startRedisFront(placement, ['--keyspace', 'txn'], { ...process.env, FLOTILLA_REDIS_LEASE_ATTACH: attach, FLOTILLA_REDIS_EXPIRY_GROUP: attach === 'single' ? 'off' : 'on' });
}

async function runCase(bin: string, cli: string, port: number, client: FlotillaClient, name: string, attach: 'batch' | 'single', roundNo: number): Promise<Row> {
  const before = errorReplies(cli, port);
  const leasesBefore = (await client.lease.list()).length;
  progress(`round ${roundNo}: ${name} (attach ${attach}): redis-benchmark -n ${REQUESTS} -c ${CLIENTS} -P ${PIPELINE} -r ${KEYSPACE} ${CASES[name]!.join(' ')}`);
  const csv = execFileSync(bin, ['-p', String(port), '-n', String(REQUESTS), '-c', String(CLIENTS), '-P', String(PIPELINE), '-r', String(KEYSPACE), '-q', '--csv', ...CASES[name]!], { encoding: 'utf8', maxBuffer: 1 << 20 });
  const errors = errorReplies(cli, port) - before;
  const leasesAfter = (await client.lease.list()).length;
  const f = JSON.parse(`[${csv.trim().split('\n').slice(1)[0]}]`) as string[];
  return {
    bench: 'redis-expire',
    case: name,
    attach,
    round: roundNo,
    requests: REQUESTS,
    concurrency: CLIENTS,
    pipeline: PIPELINE,
    ops_per_s: Math.round(Number(f[1])),
    p50_ms: Number(f[4]),
    p99_ms: Number(f[6]),
    errors,
    // Leases live 600 s, longer than the run: none expires meanwhile, so the count's growth is what this case granted.
    leases_granted: leasesAfter - leasesBefore,
    load_avg_1m: round2(loadavg()[0]!),
  };
}

async function main(): Promise<void> {
  const bench = need('redis-benchmark');
  const cli = need('redis-cli');
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-redis-expire-'));
  const logger = makeLogger('warn', 'bench-redis-expire');
  progress(`starting placement + 3 stores in ${dir}`);
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger });
  const fronts = new Map<'batch' | 'single', { port: number; stop: () => void }>();
  let client: FlotillaClient | undefined;
  const rows: Row[] = [];
  try {
    for (const mode of MODES) fronts.set(mode, await startFront(cluster.placement.address, mode));
    client = await FlotillaClient.connect({ placement: cluster.placement.address });
    for (let r = 1; r <= ROUNDS; r++) {
      for (const name of Object.keys(CASES)) {
        // Alternate the order per round, so neither mode always runs on the keys the other just wrote.
        for (const mode of r % 2 === 1 ? MODES : [...MODES].reverse()) {
          const row = await runCase(bench, cli, fronts.get(mode)!.port, client, name, mode, r);
          rows.push(row);
          console.log(JSON.stringify(row));
        }
      }
    }
  } finally {
    client?.close();
    for (const f of fronts.values()) f.stop();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const head = '| case | attach | runs ops/s | median ops/s | median p99 ms | leases granted per run | errors | load 1m |';
  const lines = Object.keys(CASES).flatMap((name) => MODES.map((mode) => {
    const rs = rows.filter((r) => r.case === name && r.attach === mode);
    return `| ${name} | ${mode} | ${rs.map((r) => r.ops_per_s).join(' / ')} | ${median(rs.map((r) => r.ops_per_s))} | ${median(rs.map((r) => r.p99_ms))} | ${rs.map((r) => r.leases_granted).join(' / ')} | ${rs.reduce((a, r) => a + r.errors, 0)} | ${rs.map((r) => r.load_avg_1m).join(' / ')} |`;
  }));
  process.stderr.write(`\n${head}\n|${'---|'.repeat(8)}\n${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:redis-expire failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
