import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entry } from '@flotilla/raft-core';
import { LogBatch, LogEngine, openDatabase } from '../src/index';
import { LOG_ENGINE_NAME, LOG_FORMAT_VERSION, LOG_SCHEMA } from '../src/schema';
import { VACUUM_SLACK_MIN_BYTES } from '../src/vacuum';
import { tempDir } from './helpers';

// The raft log's file stays proportional to the live (unpurged) log
// (issue #19 item 7): free pages go back to the file system in bounded
// steps after purges (vacuum.ts). Workload as the store drives the engine:
// every round appends to every Region, compacts behind the applied index,
// and a background tick purges at most PURGE_ROWS rows.

const REGIONS = 16;
const KEEP = 500;
const PAYLOAD = 400;
const PER_ROUND = 32;
const PURGE_ROWS = 10_000;
/**
 * FLOOR_BYTES: what the file may hold beyond 2 × the live log: the free-page
 * slack vacuumStep keeps for the next writes (4 MiB), the staging rows of one
 * fold (256 writes, ~0.9 MB here) and the small tables and B-tree interior.
 */
const FLOOR_BYTES = VACUUM_SLACK_MIN_BYTES + 4 * 1024 * 1024;
const LIVE_BYTES = REGIONS * KEEP * (PAYLOAD + 16);

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function size(file: string): number {
  return fs.statSync(file).size;
}

/** dbBytes is the database's size as of its last commit (the main file reaches it at the next WAL checkpoint). */
function dbBytes(engine: LogEngine): number {
  const u = engine.diskUsage();
  return u.pages * u.pageSize;
}

/** Writer appends PER_ROUND entries per Region per round; compact keeps the last KEEP of each Region. */
class Writer {
  readonly last = new Array<number>(REGIONS + 1).fill(0);
  private readonly payload = Buffer.alloc(PAYLOAD, 0x5a);
  constructor(private readonly engine: LogEngine) {}

  round(compact: boolean): void {
    const b = new LogBatch();
    for (let r = 1; r <= REGIONS; r++) {
      const es: Entry[] = [];
      for (let i = 0; i < PER_ROUND; i++) es.push({ entryType: 0, term: 1, index: ++this.last[r]!, data: this.payload });
      b.append(r, es);
      if (compact && this.last[r]! > KEEP) b.compact(r, this.last[r]! - KEEP, 1);
    }
    this.engine.write(b);
  }

  liveBytes(): number {
    let n = 0;
    for (let r = 1; r <= REGIONS; r++) n += (this.engine.lastIndex(r) - this.engine.firstIndex(r) + 1) * (PAYLOAD + 16);
    return n;
  }
}

/** settle runs purge ticks until a tick neither deletes rows nor shrinks the file (bounded). */
function settle(engine: LogEngine): number {
  for (let i = 0; i < 500; i++) {
    const before = dbBytes(engine);
    if (engine.purge(PURGE_ROWS) === 0 && dbBytes(engine) === before) return i;
  }
  throw new Error('purge ticks did not settle in 500 calls');
}

describe('log footprint', () => {
  it('a backlog of 10x the live log, once compacted and purged, is given back; steady writes stay within 2x live + floor', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const file = path.join(dir, 'raft.db');
    const engine = LogEngine.open({ path: file, durability: 'relaxed' });
    const w = new Writer(engine);
    const roundsFor10x = Math.ceil((10 * KEEP) / PER_ROUND);

    // A backlog: compaction held back (a lagging follower) while 10x the live size is written.
    for (let i = 0; i < roundsFor10x; i++) w.round(false);
    const peak = dbBytes(engine);
    expect(peak).toBeGreaterThan(10 * LIVE_BYTES);
    w.round(true);
    const ticks = settle(engine);
    expect(w.liveBytes()).toBeLessThanOrEqual(LIVE_BYTES + REGIONS * PER_ROUND * (PAYLOAD + 16));
    const afterBacklog = dbBytes(engine);
    expect(afterBacklog).toBeLessThanOrEqual(2 * w.liveBytes() + FLOOR_BYTES);

    // Steady state: another 3x through, compacting every round and purging every 8 rounds.
    let worst = 0;
    for (let i = 0; i < Math.ceil((3 * roundsFor10x) / 10); i++) {
      w.round(true);
      if (i % 8 === 7) {
        engine.purge(PURGE_ROWS);
        worst = Math.max(worst, dbBytes(engine) - 2 * w.liveBytes());
      }
    }
    expect(worst).toBeLessThanOrEqual(FLOOR_BYTES);
    const wal = engine.diskUsage().walBytes;
    await engine.close();
    // Closed (checkpointed): the main file is what SQLite counted.
    expect(size(file)).toBeLessThanOrEqual(2 * w.liveBytes() + FLOOR_BYTES);
    console.log(
      `log footprint: live ${w.liveBytes()} B, peak ${peak} B, after backlog ${afterBacklog} B (${ticks} purge ticks), ` +
        `steady worst excess over 2x live ${worst} B (floor ${FLOOR_BYTES}), wal ${wal} B, closed file ${size(file)} B`,
    );
  });

  it('a file made without auto-vacuum is converted on open when small enough, and left alone past the bound', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const file = path.join(dir, 'raft.db');
    const engine = LogEngine.open({ path: file, durability: 'relaxed' });
    const w = new Writer(engine);
    for (let i = 0; i < 50; i++) w.round(false);
    await engine.close();
    // What an older build left: the same tables, auto_vacuum = NONE.
    const raw = new Database(file);
    raw.pragma('auto_vacuum = NONE');
    raw.exec('VACUUM');
    expect(raw.pragma('auto_vacuum', { simple: true })).toBe(0);
    raw.close();

    const spec = { file, engine: LOG_ENGINE_NAME, formatVersion: LOG_FORMAT_VERSION, schema: LOG_SCHEMA, durability: 'relaxed' as const };
    let report: unknown;
    const kept = openDatabase({ ...spec, check: { fullMaxBytes: 1 << 30, bulkTables: ['entries'] }, convertMaxLiveBytes: 4096, onChecked: (r) => (report = r.autoVacuum) });
    expect(report).toMatchObject({ mode: 'none', converted: false });
    expect((report as { reason: string }).reason).toMatch(/exceed the 4096-byte bound/);
    expect(kept.pragma('auto_vacuum', { simple: true })).toBe(0);
    kept.close();

    const reopened = LogEngine.open({ path: file, durability: 'relaxed' });
    expect(reopened.integrity?.autoVacuum).toMatchObject({ mode: 'incremental', converted: true });
    expect(reopened.lastIndex(1)).toBe(50 * PER_ROUND);
    expect(reopened.entries(1, 1, 3).map((e) => e.index)).toEqual([1, 2]);
    await reopened.close();
    const check = new Database(file, { readonly: true });
    expect(check.pragma('auto_vacuum', { simple: true })).toBe(2);
    check.close();
  });
});
