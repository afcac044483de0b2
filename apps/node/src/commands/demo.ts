import { resolve } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import { compareKeys } from '@flotilla/proto';
import { intFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { runningCluster, type LocalCluster } from '../local-cluster';
import { fetchRegions, regionTable } from './info';
import { clusterFlags, endpointsTable, startLocal } from './up';

// `flotilla demo split`: watch Regions split under load. Starts a local
// cluster with tiny split thresholds (unless one is already running in the
// directory), loads keys through the client while showing the Region count
// grow, prints the Region table, then verifies that every key reads back
// and that one scan returns them all in order across Region boundaries.

const KEY_PREFIX = 'demo/key-';
const keyOf = (i: number): string => `${KEY_PREFIX}${String(i).padStart(8, '0')}`;
function valueOf(i: number, bytes: number): string {
  const head = `value-${i}-`;
  return head.length >= bytes ? head : head + 'x'.repeat(bytes - head.length);
}

const splitSpec: CommandSpec = {
  path: ['demo', 'split'],
  summary: 'Demo: load keys into a local cluster and watch Regions split; verify every key reads back.',
  description:
    'Starts placement + stores with --profile demo (tiny split thresholds) in --data-dir unless a cluster is already running there, loads --keys keys through the client (a progress bar on a terminal, progress lines otherwise) while showing the Region count, prints the Region table, verifies every key and a full ordered scan, then stops the cluster it started. Exit status 0 when every check passes, 1 otherwise.',
  positionals: [],
  flags: [
    ...clusterFlags({ dataDir: './data-demo', profile: 'demo', basePort: 20260 }),
    { name: 'keys', type: 'string', placeholder: 'N', description: 'number of keys to load', default: '20000', schema: intFlag(1, 1_000_000) },
    { name: 'value-bytes', type: 'string', placeholder: 'N', description: 'size of each value', default: '64', schema: intFlag(1, 65_536) },
    { name: 'batch', type: 'string', placeholder: 'N', description: 'keys per batchPut', default: '100', schema: intFlag(1, 10_000) },
    { name: 'concurrency', type: 'string', placeholder: 'N', description: 'batches in flight', default: '4', schema: intFlag(1, 64) },
    { name: 'settle-ms', type: 'string', placeholder: 'MS', description: 'after loading, wait up to this long for splits to finish (until the Region count is stable for 3 s)', default: '20000', schema: intFlag(0, 600_000) },
  ],
  examples: ['flotilla demo', 'flotilla demo split --keys 50000 --data-dir /tmp/flotilla-demo'],
};

/** Progress draws a bar on a terminal and prints a line per 10% (and per Region count change) otherwise. */
class Progress {
  private lastDecile = -1;
  private lastRegions = -1;
  private readonly t0 = Date.now();
  constructor(
    private readonly out: CommandContext['io']['stderr'],
    private readonly total: number,
  ) {}

  update(done: number, regions: number): void {
    const pct = Math.floor((done / this.total) * 100);
    const rate = Math.round(done / Math.max(0.001, (Date.now() - this.t0) / 1000));
    if (this.out.isTTY) {
      const width = 30;
      const filled = Math.round((done / this.total) * width);
      this.out.write(`\r  loading [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(pct).padStart(3)}%  ${done}/${this.total} keys  ${rate} keys/s  regions: ${regions}   `);
      return;
    }
    const decile = Math.floor(pct / 10);
    if (decile !== this.lastDecile || regions !== this.lastRegions) {
      this.lastDecile = decile;
      this.lastRegions = regions;
      this.out.write(`  loaded ${done}/${this.total} keys (${pct}%), ${rate} keys/s, regions: ${regions}\n`);
    }
  }

  finish(): void {
    if (this.out.isTTY) this.out.write('\n');
  }
}

async function runSplitDemo(ctx: CommandContext): Promise<number> {
  const v = ctx.parsed.values;
  const out = (s: string): boolean => ctx.io.stdout.write(s);
  const dataDir = resolve(v['dataDir'] as string);
  const total = v['keys'] as number;
  const valueBytes = v['valueBytes'] as number;
  const batch = v['batch'] as number;
  const concurrency = v['concurrency'] as number;

  let cluster: LocalCluster | undefined;
  let placement: string;
  const existing = await runningCluster(dataDir);
  if (existing) {
    placement = existing.placement.address;
    out(`Using the cluster already running in ${dataDir} (placement ${placement}).\n`);
  } else {
    out(`Starting a local cluster: placement + ${v['stores'] as number} stores, profile ${v['profile'] as string}, data in ${dataDir} ...\n`);
    cluster = await startLocal(ctx);
    placement = cluster.placement.address;
    out('\n' + endpointsTable(cluster) + '\n');
  }
  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const client = await FlotillaClient.connect({ placement, timeoutMs: 30_000, logger: ctx.logger });
  const { PlacementClient } = await import('@flotilla/placement');
  const pc = new PlacementClient({ addresses: [placement], logger: ctx.logger });
  let regions = 0;
  const pollRegions = async (): Promise<number> => {
    try {
      regions = (await pc.getClusterInfo()).regionCount;
    } catch (err) {
      ctx.logger.debug({ err: (err as Error).message }, 'region count poll failed');
    }
    return regions;
  };
  const failures: string[] = [];
  try {
    const startRegions = await pollRegions();
    out(`Loading ${total} keys (${valueBytes}-byte values) in batches of ${batch}, ${concurrency} in flight; regions at start: ${startRegions}\n`);
    const progress = new Progress(ctx.io.stderr, total);
    let done = 0;
    let next = 0;
    const poller = setInterval(() => void pollRegions().then((n) => progress.update(done, n)), 500);
    const t0 = Date.now();
    try {
      const worker = async (): Promise<void> => {
        while (next < total && !interrupted) {
          const from = next;
          const to = Math.min(total, from + batch);
          next = to;
          const pairs: [string, string][] = [];
          for (let i = from; i < to; i++) pairs.push([keyOf(i), valueOf(i, valueBytes)]);
          await client.batchPut(pairs);
          done += to - from;
          progress.update(done, regions);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    } finally {
      clearInterval(poller);
      progress.finish();
    }
    if (interrupted) {
      out('Interrupted.\n');
      return EXIT.failure;
    }
    const loadMs = Date.now() - t0;
    out(`Loaded ${total} keys in ${(loadMs / 1000).toFixed(1)} s (${Math.round(total / Math.max(0.001, loadMs / 1000))} keys/s).\n`);

    // Splits run in the background (split check, then a Raft admin command): wait for the count to settle.
    const settleMs = v['settleMs'] as number;
    const settleDeadline = Date.now() + settleMs;
    let stableSince = Date.now();
    let last = await pollRegions();
    out(`Regions: ${last}\n`);
    while (settleMs > 0 && Date.now() < settleDeadline && Date.now() - stableSince < 3000 && !interrupted) {
      await new Promise((r) => setTimeout(r, 500));
      const n = await pollRegions();
      if (n !== last) {
        out(`Regions: ${n}\n`);
        last = n;
        stableSince = Date.now();
      }
    }

    const rows = await fetchRegions(placement, 10_000);
    out('\n' + regionTable(rows) + `${rows.length} regions\n\n`);

    // Verification 1: every key reads back with the value written.
    let mismatched = 0;
    let missing = 0;
    for (let from = 0; from < total && !interrupted; from += 1000) {
      const keys: string[] = [];
      for (let i = from; i < Math.min(total, from + 1000); i++) keys.push(keyOf(i));
      const values = await client.batchGet(keys);
      values.forEach((val, j) => {
        const want = valueOf(from + j, valueBytes);
        if (val === null) missing++;
        else if (Buffer.from(val).toString('utf8') !== want) mismatched++;
      });
    }
    if (missing + mismatched === 0) out(`verified: ${total}/${total} keys read back with the values written\n`);
    else failures.push(`${missing} keys missing and ${mismatched} with a wrong value out of ${total}`);

    // Verification 2: one scan over the demo prefix returns every key, in order, across Region boundaries.
    const pairs = await client.scan(KEY_PREFIX, 'demo/key.', total + 1_000_000);
    let ordered = true;
    for (let i = 1; i < pairs.length; i++) if (compareKeys(pairs[i - 1]!.key, pairs[i]!.key) >= 0) ordered = false;
    const seen = new Set(pairs.map((p) => Buffer.from(p.key).toString('utf8')));
    let absent = 0;
    for (let i = 0; i < total; i++) if (!seen.has(keyOf(i))) absent++;
    const crossed = rows.filter((r) => r.startKey.startsWith(KEY_PREFIX)).length;
    if (ordered && absent === 0) out(`verified: one scan returned ${pairs.length} keys in order, crossing ${crossed} Region boundaries\n`);
    else failures.push(`scan: ${ordered ? 'ordered' : 'OUT OF ORDER'}, ${absent} of ${total} keys absent`);
  } finally {
    client.close();
    pc.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (cluster) {
      out('Stopping the cluster ...\n');
      await cluster.stop();
    }
  }
  if (failures.length > 0) {
    for (const f of failures) ctx.io.stderr.write(`verification FAILED: ${f}\n`);
    return EXIT.failure;
  }
  out('Demo passed.\n');
  return EXIT.ok;
}

export const demoSplitCommand: Command = { spec: splitSpec, run: runSplitDemo };
