import type Database from 'better-sqlite3';

// vacuum: keeping a database file's size proportional to what it holds.
//
// SQLite reuses a freed page for the next allocation, but it never gives
// one back to the file system unless auto-vacuum is on: a raft log that
// once held a large backlog (a purge falling behind, a follower holding
// compaction back) keeps that size forever, and so does kv.db after a
// Region moves away. Both engines' databases therefore run with
// auto_vacuum = INCREMENTAL: a commit never moves pages by itself (no cost
// on the write path), and the host's background work calls vacuumStep,
// which truncates at most a few hundred free pages per call, and only when
// the free pages exceed a slack kept for the next writes (so the file does
// not shrink and regrow at every fold of the log's staging rows).
//
// A file created before this change has auto_vacuum = NONE and needs one
// VACUUM (a rewrite of its live pages) to switch. openDatabase does it on
// open when the live content is at most CONVERT_MAX_LIVE_BYTES (VACUUM's
// cost is its live pages, not the file: a 138 MB log with 10 MB live
// converts in a fraction of a second); a larger file stays as it is (its
// free pages are still reused) and the open report says so.

/** CONVERT_MAX_LIVE_BYTES: an existing file is converted on open when its live (non-free) pages total at most this. */
export const CONVERT_MAX_LIVE_BYTES = 64 * 1024 * 1024;
/** VACUUM_STEP_PAGES: at most this many free pages are given back per vacuumStep call. */
export const VACUUM_STEP_PAGES = 512;
/** VACUUM_SLACK_MIN_BYTES: free pages up to max(this, a quarter of the used pages) are kept for the next writes. */
export const VACUUM_SLACK_MIN_BYTES = 4 * 1024 * 1024;

/** AutoVacuumReport says what openDatabase found and did about auto-vacuum (hosts log it). */
export interface AutoVacuumReport {
  /** mode: 'incremental' (on), or 'none' (a file too large to convert on open, or a conversion that failed). */
  mode: 'incremental' | 'none';
  /** converted: this open rewrote the file (VACUUM) to turn auto-vacuum on. */
  converted: boolean;
  /** bytesBefore / bytesAfter: the main file's size around a conversion (equal when none ran). */
  bytesBefore: number;
  bytesAfter: number;
  ms: number;
  /** reason: why the file stays without auto-vacuum. */
  reason?: string;
}

/** PageCounts is what a file is made of, in pages. */
export interface PageCounts {
  pageSize: number;
  pages: number;
  free: number;
}

export function pageCounts(db: Database.Database): PageCounts {
  return {
    pageSize: db.pragma('page_size', { simple: true }) as number,
    pages: db.pragma('page_count', { simple: true }) as number,
    free: db.pragma('freelist_count', { simple: true }) as number,
  };
}

/** requestIncremental asks for auto_vacuum = INCREMENTAL: it takes effect at once on a database with no tables yet, else at the next VACUUM. */
export function requestIncremental(db: Database.Database): void {
  db.pragma('auto_vacuum = INCREMENTAL');
}

/**
 * ensureIncremental converts an existing file without auto-vacuum (one
 * VACUUM) when its live content is small enough. A failed VACUUM (a full
 * disk: it needs room for a copy of the live pages) rolls back and leaves
 * the file as it was, which is still a working database: reported, not thrown.
 */
export function ensureIncremental(db: Database.Database, maxLiveBytes = CONVERT_MAX_LIVE_BYTES): AutoVacuumReport {
  const t0 = performance.now();
  const before = pageCounts(db);
  const bytesBefore = before.pages * before.pageSize;
  const mode = db.pragma('auto_vacuum', { simple: true }) as number;
  const report = (r: Partial<AutoVacuumReport>): AutoVacuumReport => ({
    mode: 'none', converted: false, bytesBefore, bytesAfter: bytesBefore, ms: Math.round(performance.now() - t0), ...r,
  });
  if (mode === 2) return report({ mode: 'incremental' });
  const live = (before.pages - before.free) * before.pageSize;
  if (live > maxLiveBytes) {
    return report({ reason: `${live} live bytes exceed the ${maxLiveBytes}-byte bound for converting on open; free pages are reused but not given back` });
  }
  try {
    requestIncremental(db);
    db.exec('VACUUM');
  } catch (err) {
    return report({ reason: `VACUUM failed: ${(err as Error).message}` });
  }
  const after = pageCounts(db);
  return report({ mode: 'incremental', converted: true, bytesAfter: after.pages * after.pageSize });
}

/**
 * vacuumStep gives free pages back to the file system, at most `maxPages`
 * per call (one short write transaction, one fsync with synchronous=FULL),
 * and only when the free pages exceed the slack (VACUUM_SLACK_MIN_BYTES or
 * a quarter of the used pages, whichever is more); it then truncates down
 * to half the slack. With the slack, a file holds at most
 * 1.25 × its used pages + 4 MiB between steps. Returns the pages given back
 * (0 on a file without auto-vacuum). Run it on the writing connection.
 */
export function vacuumStep(db: Database.Database, maxPages = VACUUM_STEP_PAGES): number {
  if ((db.pragma('auto_vacuum', { simple: true }) as number) !== 2) return 0;
  const c = pageCounts(db);
  const used = c.pages - c.free;
  const slack = Math.max(Math.ceil(VACUUM_SLACK_MIN_BYTES / c.pageSize), Math.ceil(used / 4));
  if (c.free <= slack) return 0;
  const n = Math.min(maxPages, c.free - Math.floor(slack / 2));
  // .all() steps the pragma to completion: each step frees one page.
  db.pragma(`incremental_vacuum(${n})`);
  return c.free - (db.pragma('freelist_count', { simple: true }) as number);
}
