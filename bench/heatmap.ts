// bench/heatmap.ts — the dashboard's key visualizer at scale (issue #20 item 2).
//
//   pnpm bench:heatmap [--quick] [--regions N[,N…]] [--columns C] [--sliced yes|no|both]
//
// In process, no I/O: a RegionTree of N Regions, a HeatmapRecorder
// (src/dashboard/heatmap.ts, defaults: 256 rows, 360 columns) on a virtual
// clock, and every Region reporting flow once per 10 s interval (one Region
// in 100 hot, the rest a trickle). Measures what the placement leader pays:
// per heartbeat (recordFlow), per column (recorded inside the heartbeat
// that finds it due: this blocks the event loop), and per
// GET /dashboard/heatmap (heatmapView plus JSON.stringify) with C columns
// recorded, and the heap those columns hold (after a gc: the script runs
// with --expose-gc; the accumulation of the two open intervals is in it).
// --sliced both (the default) alternates the recording in slices
// (HeatmapOptions.recordInSlices, the default) with the one pass before it,
// per N in one sitting: in slices the heartbeat only queues the column and
// the bench then turns the event loop until it is recorded; the longest
// slice (p99, max over all slices) is what blocks the event loop, next to
// the CPU per column. One JSON line per N and mode on stdout, a markdown
// table on stderr. It reports; it does not fail.
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { HeatmapRecorder, RegionTree, heatmapView } from '@flotilla/placement/internal';
import type { RegionInfo } from '@flotilla/placement';

const args = process.argv.slice(2);
if (args.includes('--help')) {
  process.stdout.write(
    'pnpm bench:heatmap [--quick] [--regions N[,N...]] [--columns C] [--sliced yes|no|both]\n' +
      '  key visualizer cost on the placement leader: N Regions (default 1000,10000,100000) each reporting every 10 s interval, C columns (default 360);\n' +
      '  --sliced: record columns in slices (yes), in one pass inside the heartbeat (no, the previous path) or alternate both (default).\n' +
      '  one JSON line per N and mode: {"bench":"heatmap","regions","sliced","rows_max","columns","record_us_per_heartbeat","column_ms_p50","column_ms_max","column_cpu_ms_p50",\n' +
      '  "slices_per_column","slice_ms_p99","slice_ms_max","slice_cpu_ms_p99","slice_cpu_ms_max","view_ms","view_json_bytes","pending_regions","heap_mb","load_avg_1m"}.\n' +
      '  --quick: 12 columns. Example: pnpm bench:heatmap --quick --regions 100000\n',
  );
  process.exit(0);
}
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const SIZES = argOf('--regions', '1000,10000,100000').split(',').map(Number);
const slicedArg = argOf('--sliced', 'both');
if (!['yes', 'no', 'both'].includes(slicedArg)) {
  process.stderr.write(`--sliced ${slicedArg}: must be yes, no or both\n`);
  process.exit(2);
}
const MODES = slicedArg === 'both' ? [true, false] : [slicedArg === 'yes'];
const COLUMNS = Number(argOf('--columns', quick ? '12' : '360'));
const INTERVAL_MS = 10_000;
const progress = (s: string): boolean => process.stderr.write(`[bench:heatmap] ${s}\n`);

const key = (i: number): Uint8Array => Buffer.from(`user:${String(i).padStart(9, '0')}`);
function treeOf(n: number): RegionTree {
  const tree = new RegionTree();
  const infos: RegionInfo[] = [];
  for (let i = 0; i < n; i++) {
    const region = { id: i + 1, startKey: i === 0 ? new Uint8Array() : key(i), endKey: i === n - 1 ? new Uint8Array() : key(i + 1), epoch: { version: 1, confVer: 1 }, peers: [{ id: n + i + 1, storeId: 1, role: 'voter' as const }] };
    infos.push({ region, leader: region.peers[0]!, approximateSizeBytes: 0, approximateKeys: 0, downPeers: [], pendingPeers: [] });
  }
  tree.load(infos);
  return tree;
}
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

const rows: Record<string, number>[] = [];
for (const n of SIZES) for (const sliced of MODES) {
  const tree = treeOf(n);
  let now = 0;
  // Every slice's wall time (in one pass there are none: the whole column is one block, column_ms).
  const sliceMs: number[] = [];
  // And its CPU time: from the previous slice's end (or the heartbeat that queued the column) to this one's, an event-loop turn included.
  const sliceCpuMs: number[] = [];
  let sliceCpuFrom = process.cpuUsage();
  const onSlice = (_units: number, ms: number): void => {
    sliceMs.push(ms);
    const used = process.cpuUsage(sliceCpuFrom);
    sliceCpuMs.push((used.user + used.system) / 1000);
    sliceCpuFrom = process.cpuUsage();
  };
  const rec = new HeatmapRecorder(tree, () => now, { recordInSlices: sliced, onSlice });
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const columnMs: number[] = [];
  // CPU time of the same calls: on a loaded machine the wall time is mostly waiting for a core.
  const columnCpuMs: number[] = [];
  let recordMs = 0;
  let beats = 0;
  // Each interval every Region reports once, spread over the interval; the report that finds a column due pays for it.
  for (let c = 0; c < COLUMNS + 2; c++) {
    for (let i = 0; i < n; i++) {
      // Region 0 reports first in each interval, so its report is the one that records the column due.
      now = c * INTERVAL_MS + Math.floor((i * (INTERVAL_MS - 1)) / n);
      const info = tree.at(i)!;
      const hot = i % 100 === 7;
      info.flow = { readKeysPerSec: hot ? 500 : 1, readBytesPerSec: hot ? 50_000 : 100, writeKeysPerSec: hot ? 200 : 0.5, writeBytesPerSec: hot ? 40_000 : 50 };
      const t = performance.now();
      const cpu = i === 0 ? process.cpuUsage() : undefined;
      if (cpu !== undefined) sliceCpuFrom = cpu;
      rec.recordFlow(info, c === 0 ? undefined : now - INTERVAL_MS, now);
      // In slices the heartbeat only queued the column: the event loop records it before the next heartbeat here.
      if (i === 0 && rec.recording > 0) await rec.idle();
      const dt = performance.now() - t;
      if (i === 0 && c >= 2) {
        columnMs.push(dt);
        const used = process.cpuUsage(cpu);
        columnCpuMs.push((used.user + used.system) / 1000);
      } else recordMs += dt;
      beats++;
    }
    if (c % 10 === 0) progress(`regions ${n} sliced ${sliced}: interval ${c}/${COLUMNS + 2}`);
  }
  const cols = rec.columns();
  gc?.();
  const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
  const t = performance.now();
  const view = heatmapView(cols, 'write_bytes', { intervalMs: rec.intervalMs, maxColumns: rec.maxColumns, maxRows: rec.maxRows, sinceMs: rec.sinceMs });
  const json = JSON.stringify(view);
  const viewMs = performance.now() - t;
  const row = {
    bench: 'heatmap',
    regions: n,
    sliced: sliced ? 'yes' : 'no',
    rows_max: Math.max(...cols.map((c) => c.starts.length)),
    columns: cols.length,
    record_us_per_heartbeat: round((recordMs * 1000) / (beats - columnMs.length)),
    column_ms_p50: round(quantile(columnMs, 0.5)),
    column_ms_max: round(Math.max(...columnMs)),
    column_cpu_ms_p50: round(quantile(columnCpuMs, 0.5)),
    // The longest the event loop was held by recording: a slice, or in one pass the whole column.
    slices_per_column: sliced ? round(sliceMs.length / columnMs.length, 1) : 1,
    slice_ms_p99: round(sliced ? quantile(sliceMs, 0.99) : quantile(columnMs, 0.99)),
    slice_ms_max: round(sliced ? Math.max(...sliceMs) : Math.max(...columnMs)),
    slice_cpu_ms_p99: round(sliced ? quantile(sliceCpuMs, 0.99) : quantile(columnCpuMs, 0.99)),
    slice_cpu_ms_max: round(sliced ? Math.max(...sliceCpuMs) : Math.max(...columnCpuMs)),
    view_ms: round(viewMs),
    view_json_bytes: json.length,
    // The recorder's whole heap: the columns plus the two intervals not yet recorded (one entry per Region that reported).
    pending_regions: rec.pendingRegions,
    heap_mb: round(heapMb, 1),
    load_avg_1m: round(loadavg()[0]!),
  };
  rows.push(row as unknown as Record<string, number>);
  process.stdout.write(JSON.stringify(row) + '\n');
}
const head = Object.keys(rows[0]!).filter((k) => k !== 'bench');
process.stderr.write(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|\n`);
for (const r of rows) process.stderr.write(`| ${head.map((k) => r[k]).join(' | ')} |\n`);
