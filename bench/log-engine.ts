// bench/log-engine: durable throughput of the SQLite raft log engine and the
// KV engine, read as ratios of the disk's own fsync rate.
//
//   pnpm bench:log-engine [--quick] [--only write|read|kv]
//
// Log writes: each write is one LogBatch of B entries (128-byte payloads)
// spread round-robin over R Regions, plus each touched Region's hard state —
// the shape of one poll round's Readies — committed with default durability
// (synchronous=FULL, one fsync per write). B in {1, 16, 256}, R in
// {1, 64, 1024}, for the synchronous writer and for the writer thread (two
// writes in flight, as a poll loop that keeps stepping while round N is
// written). The raw disk ceiling (4 KiB pwrite + fdatasync in a loop) is
// measured in the same run, in 100 ms slices interleaved with the engine's,
// so each result reads as a ratio even on a disk shared with other work:
// fsync_ratio = raw fsyncs/s / engine writes/s (1.0 = a write costs one raw fsync).
//
// Reads: cached entries(lo, lo+64) on a Region whose recent entries are in
// the cache, with and without a maxSize limit; the same range from SQLite.
// KV: batches of 256 puts (128-byte values) plus the apply state, sequential
// and random keys.
//
// user_cpu_us_per_entry is the process's user CPU time (all threads) per
// entry during the engine's slices: the CPU-bound ceiling, independent of
// disk contention (system time is left out: it is mostly the kernel's fsync).
//
// Each case runs REPS times; the JSON line carries the medians. Output: one
// JSON line per case on stdout, a markdown table on stderr. Benchmarks
// report; they do not fail.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Entry } from '@flotilla/raft-core';
import { KvEngine, KvWriteBatch } from '@flotilla/kv-engine';
import { LogBatch, LogEngine } from '@flotilla/log-engine';

const quick = process.argv.includes('--quick');
/** --only write|read|kv runs one group of cases (e.g. to repeat the KV cases while the disk is quiet). */
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg >= 0 ? process.argv[onlyArg + 1] : undefined;
const REPS = quick ? 1 : 3;
const CASE_MS = quick ? 300 : 1600;
const SLICE_MS = 100;
const WARMUP_MS = quick ? 100 : 300;
const PAYLOAD = new Uint8Array(128).fill(0x5a);
const BATCHES = [1, 16, 256];
const REGION_COUNTS = [1, 64, 1024];

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-bench-log-'));
const rows: Record<string, string | number>[] = [];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function emit(row: Record<string, string | number>): void {
  rows.push(row);
  process.stdout.write(JSON.stringify(row) + '\n');
}

function progress(msg: string): void {
  process.stderr.write(`# ${msg}\n`);
}

// ------------------------------------------------------------- raw fsync

const rawFile = path.join(root, 'raw.bin');
const rawFd = fs.openSync(rawFile, 'w+');
const rawBuf = Buffer.alloc(4096, 1);
fs.writeSync(rawFd, Buffer.alloc(1024 * 1024));
fs.fdatasyncSync(rawFd);
let rawPos = 0;

/** rawSlice runs 4 KiB write + fdatasync for ms, over a preallocated 1 MiB region; returns the count. */
function rawSlice(ms: number): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) {
    fs.writeSync(rawFd, rawBuf, 0, 4096, rawPos);
    fs.fdatasyncSync(rawFd);
    rawPos = (rawPos + 4096) % (1024 * 1024);
    n++;
  }
  return n;
}

// ------------------------------------------------------------- log writes

class Workload {
  private readonly next: number[];
  private cursor = 0;
  private readonly batch = new LogBatch();
  private readonly perRegion = new Map<number, Entry[]>();

  constructor(
    readonly batchSize: number,
    readonly regions: number,
  ) {
    this.next = new Array(regions).fill(1);
  }

  /** build fills the (reused) batch with the next write. */
  build(): LogBatch {
    const b = this.batch;
    b.clear();
    this.perRegion.clear();
    for (let i = 0; i < this.batchSize; i++) {
      const r = this.cursor;
      this.cursor = (this.cursor + 1) % this.regions;
      let list = this.perRegion.get(r);
      if (list === undefined) this.perRegion.set(r, (list = []));
      list.push({ entryType: 0, term: 1, index: this.next[r]!++, data: PAYLOAD });
    }
    for (const [r, list] of this.perRegion) {
      b.append(r + 1, list).setHardState(r + 1, { term: 1, vote: 1, commit: list[list.length - 1]!.index });
    }
    return b;
  }
}

interface Rep {
  entriesPerS: number;
  writesPerS: number;
  rawPerS: number;
  mainBusyPct: number;
  /** cpuUsPerEntry: process user CPU (all threads) per entry during the engine's slices. */
  cpuUsPerEntry: number;
  /** writesPerCommit: > 1 when the writer thread grouped queued writes into one transaction. */
  writesPerCommit: number;
}

/** cpuUs is user CPU only: under a contended disk the kernel burns system time inside fsync itself. */
function cpuUs(): number {
  return process.cpuUsage().user;
}

async function logRep(mode: 'sync' | 'worker', batchSize: number, regions: number): Promise<Rep> {
  const dir = fs.mkdtempSync(path.join(root, 'case-'));
  const engine = LogEngine.open({ path: path.join(dir, 'raft.db'), writer: mode });
  const w = new Workload(batchSize, regions);
  // Warm up: create every Region's row, fill the page cache, let the JIT settle.
  for (let i = 0; i < Math.ceil(regions / batchSize); i++) await engine.writeAsync(w.build());
  const warmEnd = performance.now() + WARMUP_MS;
  while (performance.now() < warmEnd) await engine.writeAsync(w.build());
  let writes = 0;
  let engineMs = 0;
  let raws = 0;
  let rawMs = 0;
  let busyMs = 0;
  let cpu = 0;
  const totalEnd = performance.now() + CASE_MS * 2;
  while (performance.now() < totalEnd) {
    const t0 = performance.now();
    const c0 = cpuUs();
    const elu0 = performance.eventLoopUtilization();
    const end = t0 + SLICE_MS;
    if (mode === 'sync') {
      while (performance.now() < end) {
        engine.write(w.build());
        writes++;
      }
    } else {
      const inflight: Promise<void>[] = [];
      while (performance.now() < end) {
        inflight.push(engine.writeAsync(w.build()));
        writes++;
        if (inflight.length >= 2) await inflight.shift();
      }
      await Promise.all(inflight);
    }
    const elu = performance.eventLoopUtilization(elu0);
    cpu += cpuUs() - c0;
    const t1 = performance.now();
    engineMs += t1 - t0;
    busyMs += mode === 'sync' ? t1 - t0 : elu.active;
    raws += rawSlice(SLICE_MS);
    rawMs += performance.now() - t1;
  }
  const st = engine.stats();
  await engine.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    writesPerCommit: st.writes / Math.max(1, st.commits),
    entriesPerS: (writes * batchSize) / (engineMs / 1000),
    writesPerS: writes / (engineMs / 1000),
    rawPerS: raws / (rawMs / 1000),
    mainBusyPct: (100 * busyMs) / engineMs,
    cpuUsPerEntry: cpu / (writes * batchSize),
  };
}

async function logWrites(): Promise<void> {
  const modes: ('sync' | 'worker')[] = ['sync', 'worker'];
  for (const mode of modes) {
    for (const regions of REGION_COUNTS) {
      for (const batch of BATCHES) {
        if (quick && mode === 'worker' && !(batch === 256 || (batch === 1 && regions === 1))) continue;
        progress(`log write ${mode} batch=${batch} regions=${regions}`);
        const reps: Rep[] = [];
        for (let i = 0; i < REPS; i++) reps.push(await logRep(mode, batch, regions));
        const ratio = median(reps.map((r) => r.rawPerS / r.writesPerS));
        emit({
          bench: 'log-engine',
          case: 'write',
          writer: mode,
          batch,
          regions,
          entries_per_s: Math.round(median(reps.map((r) => r.entriesPerS))),
          writes_per_s: Math.round(median(reps.map((r) => r.writesPerS))),
          raw_fsync_per_s: Math.round(median(reps.map((r) => r.rawPerS))),
          fsync_ratio: Number(ratio.toFixed(3)),
          main_thread_busy_pct: Math.round(median(reps.map((r) => r.mainBusyPct))),
          user_cpu_us_per_entry: Number(median(reps.map((r) => r.cpuUsPerEntry)).toFixed(3)),
          writes_per_commit: Number(median(reps.map((r) => r.writesPerCommit)).toFixed(2)),
          reps: REPS,
        });
      }
    }
  }
}

// ------------------------------------------------------------- reads

async function reads(): Promise<void> {
  const N = 20_000;
  const RANGE = 64;
  for (const source of ['cache', 'cache-maxsize', 'sqlite'] as const) {
    progress(`log read ${source}`);
    const reps: number[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const dir = fs.mkdtempSync(path.join(root, 'read-'));
      const engine = LogEngine.open({ path: path.join(dir, 'raft.db'), cacheBytes: source === 'sqlite' ? 1 : 64 * 1024 * 1024, foldRows: 1 });
      const w = new Workload(256, 1);
      for (let i = 0; i < N / 256; i++) engine.write(w.build());
      const last = engine.lastIndex(1);
      const maxSize = source === 'cache-maxsize' ? 1024 * 1024 : undefined;
      let n = 0;
      let lo = 1;
      const t0 = performance.now();
      const end = t0 + CASE_MS;
      while (performance.now() < end) {
        for (let k = 0; k < 1000; k++) {
          n += engine.entries(1, lo, lo + RANGE, maxSize).length;
          lo += 97;
          if (lo + RANGE > last) lo = 1 + (lo % 61);
        }
      }
      reps.push(n / ((performance.now() - t0) / 1000));
      const st = engine.stats();
      if (source !== 'sqlite' && st.entriesFromSqlite > 0) progress(`warning: ${st.entriesFromSqlite} entries came from SQLite in a cached run`);
      await engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    emit({ bench: 'log-engine', case: 'read', source, range: RANGE, entries_per_s: Math.round(median(reps)), reps: REPS });
  }
}

// ------------------------------------------------------------- KV engine

async function kv(): Promise<void> {
  for (const keys of ['sequential', 'random'] as const) {
    progress(`kv apply ${keys}`);
    const reps: { puts: number; raw: number; cpuUsPerPut: number }[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const dir = fs.mkdtempSync(path.join(root, 'kv-'));
      const engine = KvEngine.open({ path: path.join(dir, 'kv.db') });
      engine.write(
        new KvWriteBatch().setRegionState(1, {
          region: { id: 1, startKey: new Uint8Array(0), endKey: new Uint8Array(0), epoch: { confVer: 1, version: 1 }, peers: [] },
          state: 'normal',
        }),
      );
      let seq = 0;
      let applied = 0;
      let x = 12345 + rep;
      const value = Buffer.alloc(128, 0x61);
      const b = new KvWriteBatch();
      const build = () => {
        b.clear();
        for (let i = 0; i < 256; i++) {
          let key: Buffer;
          if (keys === 'sequential') key = Buffer.from(`user${String(seq++).padStart(12, '0')}`);
          else {
            x = (x * 1103515245 + 12345) % 2147483648;
            key = Buffer.from(`user${String(x).padStart(12, '0')}`);
          }
          b.put(key, value);
        }
        b.setApplyState(1, { appliedIndex: ++applied, truncatedIndex: 0, truncatedTerm: 0 });
        return b;
      };
      for (let i = 0; i < 20; i++) engine.write(build());
      let puts = 0;
      let ms = 0;
      let raws = 0;
      let rawMs = 0;
      let cpu = 0;
      const totalEnd = performance.now() + CASE_MS * 2;
      while (performance.now() < totalEnd) {
        const t0 = performance.now();
        const c0 = cpuUs();
        const end = t0 + SLICE_MS;
        while (performance.now() < end) {
          engine.write(build());
          puts += 256;
        }
        cpu += cpuUs() - c0;
        const t1 = performance.now();
        ms += t1 - t0;
        raws += rawSlice(SLICE_MS);
        rawMs += performance.now() - t1;
      }
      reps.push({ puts: puts / (ms / 1000), raw: raws / (rawMs / 1000), cpuUsPerPut: cpu / puts });
      engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    emit({
      bench: 'kv-engine',
      case: 'apply',
      keys,
      batch: 256,
      value_bytes: 128,
      puts_per_s: Math.round(median(reps.map((r) => r.puts))),
      raw_fsync_per_s: Math.round(median(reps.map((r) => r.raw))),
      user_cpu_us_per_put: Number(median(reps.map((r) => r.cpuUsPerPut)).toFixed(3)),
      reps: REPS,
    });
  }
}

function table(): void {
  const lines: string[] = [];
  lines.push('| bench | case | writer/source/keys | batch | regions | entries or puts /s | writes/s | raw fsync/s | fsync ratio | main busy % | user CPU µs/entry |');
  lines.push('|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    lines.push(
      `| ${r.bench} | ${r.case} | ${r.writer ?? r.source ?? r.keys} | ${r.batch ?? r.range ?? ''} | ${r.regions ?? ''} | ${r.entries_per_s ?? r.puts_per_s} | ${r.writes_per_s ?? ''} | ${r.raw_fsync_per_s ?? ''} | ${r.fsync_ratio ?? ''} | ${r.main_thread_busy_pct ?? ''} | ${r.user_cpu_us_per_entry ?? r.user_cpu_us_per_put ?? ''} |`,
    );
  }
  process.stderr.write('\n' + lines.join('\n') + '\n');
}

try {
  if (only === undefined || only === 'write') await logWrites();
  if (only === undefined || only === 'read') await reads();
  if (only === undefined || only === 'kv') await kv();
  table();
} finally {
  fs.closeSync(rawFd);
  fs.rmSync(root, { recursive: true, force: true });
}
