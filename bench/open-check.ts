// bench/open-check: what the integrity check costs when an engine opens an
// existing database (issue #15 item 3; docs/storage.md "Integrity check on
// open").
//
//   pnpm bench:open-check [--quick] [--mb N]
//
// Builds one kv.db and one raft.db of about N MB (default 100, --quick 20),
// then opens each with the whole quick_check (integrityFullMaxBytes above
// the size) and with the bounded check (integrityFullMaxBytes 0), warm (the
// file in the page cache) and cold (the file's cached pages dropped with
// `dd iflag=nocache count=0`, i.e. posix_fadvise DONTNEED; rows say
// cold:"n/a" when that is not available). Each case runs REPS times; the
// JSON line carries the median open time. Output: one JSON line per case on
// stdout, a markdown table on stderr. Benchmarks report; they do not fail.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { KvEngine, KvWriteBatch } from '@flotilla/kv-engine';
import { LogBatch, LogEngine } from '@flotilla/log-engine';

const quick = process.argv.includes('--quick');
const mbArg = process.argv.indexOf('--mb');
const MB = mbArg >= 0 ? Number(process.argv[mbArg + 1]) : quick ? 20 : 100;
const REPS = quick ? 1 : 3;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-bench-open-'));
const rows: Record<string, string | number>[] = [];

function fileMb(file: string): number {
  let n = 0;
  for (const f of [file, `${file}-wal`]) if (fs.existsSync(f)) n += fs.statSync(f).size;
  return n / 1024 / 1024;
}

function buildKv(file: string): void {
  const e = KvEngine.open({ path: file, durability: 'relaxed' });
  const value = Buffer.alloc(200, 0x5a);
  // The main file's size (what a reopen after close checks), not the WAL's.
  for (let n = 0; fs.statSync(file).size / 1024 / 1024 < MB; ) {
    const w = new KvWriteBatch();
    for (let i = 0; i < 5000; i++, n++) w.put(Buffer.from(`user${String((n * 2654435761) % 4294967296).padStart(10, '0')}`), value);
    e.write(w);
    if (n % 50_000 === 0) e.flush();
    if (n % 100_000 === 0) process.stderr.write(`kv.db ${fileMb(file).toFixed(0)} MB\r`);
  }
  e.close();
}

async function buildLog(file: string): Promise<void> {
  const e = LogEngine.open({ path: file, durability: 'relaxed', foldRows: 64 });
  const data = Buffer.alloc(200, 0x5a);
  const next = new Map<number, number>();
  for (let round = 0; fs.statSync(file).size / 1024 / 1024 < MB; round++) {
    const b = new LogBatch();
    for (let r = 1; r <= 64; r++) {
      const lo = next.get(r) ?? 1;
      b.append(r, Array.from({ length: 64 }, (_, i) => ({ entryType: 0, term: 1, index: lo + i, data })));
      next.set(r, lo + 64);
    }
    e.write(b);
    if (round % 200 === 0) process.stderr.write(`raft.db ${fileMb(file).toFixed(0)} MB\r`);
  }
  await e.close();
}

/** dropCache asks the kernel to forget the file's cached pages; false when dd cannot. */
function dropCache(file: string): boolean {
  try {
    for (const f of [file, `${file}-wal`]) if (fs.existsSync(f)) execFileSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
    return true;
  } catch {
    return false;
  }
}

async function openMs(engine: 'kv' | 'log', file: string, fullMaxBytes: number): Promise<{ ms: number; mode: string }> {
  const t0 = performance.now();
  if (engine === 'kv') {
    const e = KvEngine.open({ path: file, integrityFullMaxBytes: fullMaxBytes });
    const ms = performance.now() - t0;
    const mode = e.integrity?.mode ?? '?';
    e.close();
    return { ms, mode };
  }
  const e = LogEngine.open({ path: file, integrityFullMaxBytes: fullMaxBytes });
  const ms = performance.now() - t0;
  const mode = e.integrity?.mode ?? '?';
  await e.close();
  return { ms, mode };
}

async function measure(engine: 'kv' | 'log', file: string): Promise<void> {
  for (const check of ['full', 'bounded'] as const) {
    for (const cache of ['warm', 'cold'] as const) {
      const times: number[] = [];
      let mode = '';
      let cold: string | number = cache;
      for (let rep = 0; rep < REPS; rep++) {
        if (cache === 'warm') await openMs(engine, file, Number.MAX_SAFE_INTEGER);
        else if (!dropCache(file)) cold = 'n/a';
        const r = await openMs(engine, file, check === 'full' ? Number.MAX_SAFE_INTEGER : 0);
        times.push(r.ms);
        mode = r.mode;
      }
      times.sort((a, b) => a - b);
      const row = { bench: 'open-check', engine, db_mb: Math.round(fileMb(file)), check: mode, cache: cold, open_ms: Math.round(times[Math.floor(times.length / 2)]!) };
      rows.push(row);
      process.stdout.write(JSON.stringify(row) + '\n');
    }
  }
}

const kvFile = path.join(root, 'kv.db');
const logFile = path.join(root, 'raft.db');
buildKv(kvFile);
await measure('kv', kvFile);
await buildLog(logFile);
await measure('log', logFile);
process.stderr.write(`\n| engine | db MB | check | cache | open ms |\n|---|---|---|---|---|\n`);
for (const r of rows) process.stderr.write(`| ${r.engine} | ${r.db_mb} | ${r.check} | ${r.cache} | ${r.open_ms} |\n`);
fs.rmSync(root, { recursive: true, force: true });
