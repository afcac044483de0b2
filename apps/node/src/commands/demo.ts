import { resolve } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import type { PlacementClient } from '@flotilla/placement/client';
import { compareKeys } from '@flotilla/proto';
import { intFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { runningCluster, type LocalCluster } from '../local-cluster';
import { fetchRegions, regionTable, type RegionRow } from './info';
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

/** loadFlags: the load flags both demos take; only the defaults differ. */
function loadFlags(keys: string, valueBytes: string): CommandSpec['flags'] {
  return [
    { name: 'keys', type: 'string', placeholder: 'N', description: 'number of keys to load', default: keys, schema: intFlag(1, 1_000_000) },
    { name: 'value-bytes', type: 'string', placeholder: 'N', description: 'size of each value', default: valueBytes, schema: intFlag(1, 65_536) },
    { name: 'batch', type: 'string', placeholder: 'N', description: 'keys per batchPut', default: '100', schema: intFlag(1, 10_000) },
    { name: 'concurrency', type: 'string', placeholder: 'N', description: 'batches in flight', default: '4', schema: intFlag(1, 64) },
    { name: 'settle-ms', type: 'string', placeholder: 'MS', description: 'after loading, wait up to this long for splits to finish (until the Region count is stable for 3 s)', default: '20000', schema: intFlag(0, 600_000) },
  ];
}

const splitSpec: CommandSpec = {
  path: ['demo', 'split'],
  summary: 'Demo: load keys into a local cluster and watch Regions split; verify every key reads back.',
  description:
    'Starts placement + stores with --profile demo (tiny split thresholds) in --data-dir unless a cluster is already running there, loads --keys keys through the client (a progress bar on a terminal, progress lines otherwise) while showing the Region count, prints the Region table, verifies every key and a full ordered scan, then stops the cluster it started. Exit status 0 when every check passes, 1 otherwise.',
  positionals: [],
  flags: [
    ...clusterFlags({ dataDir: './data-demo', profile: 'demo', basePort: 20260 }),
    ...loadFlags('20000', '64'),
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

/** DemoSession is what both demos share: a cluster (started here or found running), a client, placement, and the checks. */
class DemoSession {
  interrupted = false;
  regions = 0;
  readonly failures: string[] = [];
  private readonly onSignal = (): void => {
    this.interrupted = true;
  };

  private constructor(
    readonly ctx: CommandContext,
    readonly placement: string,
    readonly client: FlotillaClient,
    readonly pc: PlacementClient,
    private readonly cluster: LocalCluster | undefined,
  ) {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  static async open(ctx: CommandContext): Promise<DemoSession> {
    const v = ctx.parsed.values;
    const dataDir = resolve(v['dataDir'] as string);
    let cluster: LocalCluster | undefined;
    let placement: string;
    const existing = await runningCluster(dataDir);
    if (existing) {
      placement = existing.placement.address;
      ctx.io.stdout.write(`Using the cluster already running in ${dataDir} (placement ${placement}).\n`);
    } else {
      ctx.io.stdout.write(`Starting a local cluster: placement + ${v['stores'] as number} stores, profile ${v['profile'] as string}, data in ${dataDir} ...\n`);
      cluster = await startLocal(ctx);
      placement = cluster.placement.address;
      ctx.io.stdout.write('\n' + endpointsTable(cluster) + '\n');
    }
    try {
      const client = await FlotillaClient.connect({ placement, timeoutMs: 30_000, logger: ctx.logger });
      const { PlacementClient } = await import('@flotilla/placement/client');
      const pc = new PlacementClient({ addresses: [placement], logger: ctx.logger });
      return new DemoSession(ctx, placement, client, pc, cluster);
    } catch (err) {
      await cluster?.stop();
      throw err;
    }
  }

  out(s: string): void {
    this.ctx.io.stdout.write(s);
  }

  async pollRegions(): Promise<number> {
    try {
      this.regions = (await this.pc.getClusterInfo()).regionCount;
    } catch (err) {
      this.ctx.logger.debug({ err: (err as Error).message }, 'region count poll failed');
    }
    return this.regions;
  }

  /** load writes keys 0..total-1 with batchPut, showing progress and the Region count. Returns false when interrupted. */
  async load(total: number, valueBytes: number, batch: number, concurrency: number): Promise<boolean> {
    const startRegions = await this.pollRegions();
    this.out(`Loading ${total} keys (${valueBytes}-byte values) in batches of ${batch}, ${concurrency} in flight; regions at start: ${startRegions}\n`);
    const progress = new Progress(this.ctx.io.stderr, total);
    let done = 0;
    let next = 0;
    const poller = setInterval(() => void this.pollRegions().then((n) => progress.update(done, n)), 500);
    const t0 = Date.now();
    try {
      const worker = async (): Promise<void> => {
        while (next < total && !this.interrupted) {
          const from = next;
          const to = Math.min(total, from + batch);
          next = to;
          const pairs: [string, string][] = [];
          for (let i = from; i < to; i++) pairs.push([keyOf(i), valueOf(i, valueBytes)]);
          await this.client.batchPut(pairs);
          done += to - from;
          progress.update(done, this.regions);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    } finally {
      clearInterval(poller);
      progress.finish();
    }
    if (this.interrupted) return false;
    const loadMs = Date.now() - t0;
    this.out(`Loaded ${total} keys in ${(loadMs / 1000).toFixed(1)} s (${Math.round(total / Math.max(0.001, loadMs / 1000))} keys/s).\n`);
    return true;
  }

  /** settle prints the Region count as it changes until it is stable for stableMs (or settleMs passes). */
  async settle(settleMs: number, stableMs = 3000): Promise<void> {
    const deadline = Date.now() + settleMs;
    let stableSince = Date.now();
    let last = await this.pollRegions();
    this.out(`Regions: ${last}\n`);
    while (settleMs > 0 && Date.now() < deadline && Date.now() - stableSince < stableMs && !this.interrupted) {
      await new Promise((r) => setTimeout(r, 500));
      const n = await this.pollRegions();
      if (n !== last) {
        this.out(`Regions: ${n}\n`);
        last = n;
        stableSince = Date.now();
      }
    }
  }

  async regionRows(): Promise<RegionRow[]> {
    return fetchRegions(this.placement, 10_000);
  }

  /**
   * verify checks that every key of `indices` reads back with its value and
   * that one scan of the demo range returns them all in key order. With
   * exact, the scan must return nothing else (keys the demo deleted).
   */
  async verify(indices: number[], valueBytes: number, rows: RegionRow[], exact = false): Promise<void> {
    let mismatched = 0;
    let missing = 0;
    for (let from = 0; from < indices.length && !this.interrupted; from += 1000) {
      const chunk = indices.slice(from, from + 1000);
      const values = await this.client.batchGet(chunk.map(keyOf));
      values.forEach((val, j) => {
        const want = valueOf(chunk[j]!, valueBytes);
        if (val === null) missing++;
        else if (Buffer.from(val).toString('utf8') !== want) mismatched++;
      });
    }
    const n = indices.length;
    if (missing + mismatched === 0) this.out(`verified: ${n}/${n} keys read back with the values written\n`);
    else this.failures.push(`${missing} keys missing and ${mismatched} with a wrong value out of ${n}`);

    const pairs = await this.client.scan(KEY_PREFIX, KEY_PREFIX_END, n + 1_000_000);
    let ordered = true;
    for (let i = 1; i < pairs.length; i++) if (compareKeys(pairs[i - 1]!.key, pairs[i]!.key) >= 0) ordered = false;
    const seen = new Set(pairs.map((p) => Buffer.from(p.key).toString('utf8')));
    const expected = new Set(indices.map(keyOf));
    let absent = 0;
    for (const k of expected) if (!seen.has(k)) absent++;
    const extra = exact ? [...seen].filter((k) => !expected.has(k)).length : 0;
    const crossed = rows.filter((r) => inDemoRange(r.startKey)).length;
    if (ordered && absent === 0 && extra === 0) {
      this.out(`verified: one scan returned ${pairs.length} keys in order, crossing ${crossed} Region boundar${crossed === 1 ? 'y' : 'ies'}\n`);
    } else {
      this.failures.push(`scan: ${ordered ? 'ordered' : 'OUT OF ORDER'}, ${absent} of ${n} keys absent${exact ? `, ${extra} deleted keys still present` : ''}`);
    }
  }

  /** close stops what open started and turns the failures into the exit status (after an exception, only cleans up). */
  async close(failed = false): Promise<number> {
    this.client.close();
    this.pc.close();
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    if (this.cluster) {
      this.out('Stopping the cluster ...\n');
      await this.cluster.stop();
    }
    if (failed) return EXIT.failure;
    if (this.interrupted) {
      this.ctx.io.stderr.write('Interrupted.\n');
      return EXIT.failure;
    }
    if (this.failures.length > 0) {
      for (const f of this.failures) this.ctx.io.stderr.write(`verification FAILED: ${f}\n`);
      return EXIT.failure;
    }
    this.out('Demo passed.\n');
    return EXIT.ok;
  }
}

const KEY_PREFIX_END = 'demo/key.';
/** inDemoRange: a rendered Region start key strictly inside the demo's key range. */
const inDemoRange = (startKey: string): boolean => startKey > KEY_PREFIX && startKey < KEY_PREFIX_END;

async function runSplitDemo(ctx: CommandContext): Promise<number> {
  const v = ctx.parsed.values;
  const total = v['keys'] as number;
  const valueBytes = v['valueBytes'] as number;
  const demo = await DemoSession.open(ctx);
  try {
    if (await demo.load(total, valueBytes, v['batch'] as number, v['concurrency'] as number)) {
      // Splits run in the background (split check, then a Raft admin command): wait for the count to settle.
      await demo.settle(v['settleMs'] as number);
      const rows = await demo.regionRows();
      demo.out('\n' + regionTable(rows) + `${rows.length} region${rows.length === 1 ? '' : 's'}\n\n`);
      await demo.verify(Array.from({ length: total }, (_, i) => i), valueBytes, rows);
    }
  } catch (err) {
    await demo.close(true);
    throw err;
  }
  return demo.close();
}

export const demoSplitCommand: Command = { spec: splitSpec, run: runSplitDemo };

const mergeSpec: CommandSpec = {
  path: ['demo', 'merge'],
  summary: 'Demo: load keys until Regions split, delete most of them, merge the Regions back one by one; verify the rest.',
  description:
    'Starts placement + stores with --profile demo in --data-dir unless a cluster is already running there, loads --keys keys so the demo range splits into several Regions, deletes all but every 20th key, then merges those Regions right to left (each merge is PrepareMerge on the source, CommitMerge on the target) until one Region holds the whole range, printing the count as it shrinks. Ends with the Region table and the same checks as demo split; stops the cluster it started. Exit status 0 when every check passes, 1 otherwise.',
  positionals: [],
  flags: [
    ...clusterFlags({ dataDir: './data-demo', profile: 'demo', basePort: 20260 }),
    ...loadFlags('5000', '200'),
  ],
  examples: ['flotilla demo merge', 'flotilla demo merge --keys 10000 --data-dir /tmp/flotilla-demo'],
};

/** KEEP_EVERY: the merge demo keeps one key in this many before merging. */
const KEEP_EVERY = 20;

async function runMergeDemo(ctx: CommandContext): Promise<number> {
  const v = ctx.parsed.values;
  const total = v['keys'] as number;
  const valueBytes = v['valueBytes'] as number;
  const demo = await DemoSession.open(ctx);
  try {
    if (await demo.load(total, valueBytes, v['batch'] as number, v['concurrency'] as number)) {
      await demo.settle(v['settleMs'] as number);
      // Merging pays off for small Regions (TiKV merges when size and keys fall under a threshold);
      // merging full ones only makes a Region the split checker cuts again. Keep one key in KEEP_EVERY.
      const survivors = Array.from({ length: Math.ceil(total / KEEP_EVERY) }, (_, i) => i * KEEP_EVERY);
      demo.out(`Deleting the demo range, then writing back ${survivors.length} of the ${total} keys (every ${KEEP_EVERY}th), so the Regions are small enough to merge.\n`);
      await demo.client.deleteRange(KEY_PREFIX, KEY_PREFIX_END);
      for (let i = 0; i < survivors.length; i += 500) {
        await demo.client.batchPut(survivors.slice(i, i + 500).map((k) => [keyOf(k), valueOf(k, valueBytes)] as [string, string]));
      }
      const before = await demo.regionRows();
      // The start keys of the Regions inside the demo range, left to right: each is one merge away.
      const boundaries = before.filter((r) => inDemoRange(r.startKey)).map((r) => r.startKey);
      demo.out(`\n${boundaries.length + 1} Regions hold the demo range; merging them right to left.\n`);
      const started = Date.now();
      for (let i = boundaries.length - 1; i >= 0 && !demo.interrupted; i--) {
        // Merge [b_i, ...) into the Region on its left, found through a key inside it.
        const target = i > 0 ? boundaries[i - 1]! : KEY_PREFIX;
        const t0 = Date.now();
        const r = await demo.client.merge(boundaries[i]!, target);
        demo.out(`  merged region ${r.sourceRegionId} into region ${r.targetRegionId} in ${Date.now() - t0} ms; ${i + 1} Region${i === 0 ? '' : 's'} left in the demo range\n`);
      }
      demo.out(`Merged ${boundaries.length} Regions in ${((Date.now() - started) / 1000).toFixed(1)} s.\n`);
      // Placement learns merges from heartbeats; wait (bounded) until its table shows one Region over the range.
      const deadline = Date.now() + 15_000;
      let rows = await demo.regionRows();
      while (rows.some((r) => inDemoRange(r.startKey)) && Date.now() < deadline && !demo.interrupted) {
        await new Promise((res) => setTimeout(res, 500));
        rows = await demo.regionRows();
      }
      demo.out('\n' + regionTable(rows) + `${rows.length} region${rows.length === 1 ? '' : 's'}\n\n`);
      const left = rows.filter((r) => inDemoRange(r.startKey)).length;
      if (left > 0) demo.failures.push(`placement still shows ${left + 1} Regions in the demo range after the merges`);
      await demo.verify(survivors, valueBytes, rows, true);
    }
  } catch (err) {
    await demo.close(true);
    throw err;
  }
  return demo.close();
}

export const demoMergeCommand: Command = { spec: mergeSpec, run: runMergeDemo };
