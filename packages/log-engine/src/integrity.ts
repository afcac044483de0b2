import fs from 'node:fs';
import type Database from 'better-sqlite3';
import { StorageCorruptError } from './errors';
import type { AutoVacuumReport } from './vacuum';

// integrity: the check openDatabase runs on an existing file before an
// engine trusts it. A damaged page must stop the open with a message
// naming the file, not surface later as SQLITE_CORRUPT in the middle of a
// write. PRAGMA quick_check reads every page (B-tree structure, cell
// bounds, free list; not index-vs-table contents, which integrity_check
// adds and these engines do not need: their tables have no secondary
// indexes). Its cost is one read of the file, so it is bounded by size.

/** IntegrityCheck says how hard openDatabase looks at an existing file. */
export interface IntegrityCheck {
  /**
   * fullMaxBytes: a file (with its WAL) up to this size gets a whole
   * PRAGMA quick_check. A larger one gets the bounded check: every table
   * but the bulk ones in full, the bulk ones at their two edges. Damage
   * deeper in a bulk table is then found by the read or write that
   * touches it (a StorageFaultError of kind 'corrupt').
   */
  fullMaxBytes: number;
  /** bulkTables: the tables a bounded check reads only the edges of (the KV data, the log entries). */
  bulkTables: readonly string[];
}

/**
 * DEFAULT_INTEGRITY_FULL_MAX_BYTES: 128 MiB. quick_check on opening a
 * 100 MB database, measured on the shared 2-core test machine under load
 * (`pnpm bench:open-check`, docs/storage.md): 0.3-1.0 s with the file in the
 * page cache, 3.3-3.8 s cold. So the whole check costs a store at most about
 * 1.3 s warm / 5 s cold per database on start there (less on a fast SSD);
 * past the bound the check is bounded (milliseconds).
 */
export const DEFAULT_INTEGRITY_FULL_MAX_BYTES = 128 * 1024 * 1024;

/** IntegrityReport says what the check on opening did (hosts log it). */
export interface IntegrityReport {
  file: string;
  /** mode: 'full' quick_check, 'bounded' (see IntegrityCheck), or 'new' (a database just created: nothing to check). */
  mode: 'full' | 'bounded' | 'new';
  /** bytes: the size of the file and its WAL when checked. */
  bytes: number;
  ms: number;
  /** autoVacuum: whether the file runs with incremental auto-vacuum, and whether this open converted it (vacuum.ts). */
  autoVacuum?: AutoVacuumReport;
}

/** MAX_PROBLEMS bounds what a failed check reports (quick_check stops after as many). */
const MAX_PROBLEMS = 10;

/**
 * checkIntegrity checks an existing database: every table the schema
 * creates is there, then quick_check (whole or bounded, see
 * IntegrityCheck). Damage is a StorageCorruptError naming the file; SQLite
 * errors while checking (a page too broken to parse) reach the caller as
 * SQLITE_CORRUPT, which openDatabase turns into the same error.
 */
export function checkIntegrity(db: Database.Database, file: string, schema: string, check: IntegrityCheck): IntegrityReport {
  const t0 = performance.now();
  const tables = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
  const missing = schemaTables(schema).filter((t) => !tables.has(t));
  if (missing.length > 0) throw new StorageCorruptError(file, missing.map((t) => `table ${t} is missing`));
  const bytes = fileBytes(file);
  const mode = bytes <= check.fullMaxBytes ? 'full' : 'bounded';
  const problems: string[] = [];
  if (mode === 'full') {
    problems.push(...quickCheck(db, `quick_check(${MAX_PROBLEMS})`));
  } else {
    for (const t of tables) {
      if (check.bulkTables.includes(t)) readEdges(db, t);
      else problems.push(...quickCheck(db, `quick_check("${t}")`));
      if (problems.length >= MAX_PROBLEMS) break;
    }
  }
  if (problems.length > 0) throw new StorageCorruptError(file, problems.slice(0, MAX_PROBLEMS));
  return { file, mode, bytes, ms: Math.round(performance.now() - t0) };
}

function quickCheck(db: Database.Database, pragma: string): string[] {
  const rows = db.pragma(pragma, { simple: false }) as Record<string, unknown>[];
  const out = rows.map((r) => String(Object.values(r)[0]));
  return out.length === 1 && out[0] === 'ok' ? [] : out;
}

/** readEdges reads a table's first and last row in key order: its root and the pages down both edges. */
function readEdges(db: Database.Database, table: string): void {
  const cols = (db.pragma(`table_info("${table}")`) as { name: string; pk: number }[]).filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
  const key = cols.length > 0 ? cols.map((c) => `"${c.name}"`) : ['rowid'];
  db.prepare(`SELECT * FROM "${table}" ORDER BY ${key.join(', ')} LIMIT 1`).all();
  db.prepare(`SELECT * FROM "${table}" ORDER BY ${key.map((k) => `${k} DESC`).join(', ')} LIMIT 1`).all();
}

/** schemaTables lists the tables a schema creates (our schemas are plain CREATE TABLE statements). */
export function schemaTables(schema: string): string[] {
  return [...schema.matchAll(/CREATE TABLE\s+(?:IF NOT EXISTS\s+)?"?(\w+)"?/gi)].map((m) => m[1]!);
}

function fileBytes(file: string): number {
  let n = 0;
  for (const f of [file, `${file}-wal`]) {
    try {
      n += fs.statSync(f).size;
    } catch {
      // no WAL (a clean close removes it)
    }
  }
  return n;
}
