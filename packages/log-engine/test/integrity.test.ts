import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { LogBatch, LogEngine, StorageCorruptError, StorageFaultError, storageFaultKind } from '../src/index';
import { ents, tempDir } from './helpers';

// Integrity at start (issue #15 item 3) and faults at run time (item 4),
// on real database files: pages are damaged by writing garbage over them
// on disk, a full disk is SQLite's own SQLITE_FULL (max_page_count).

const open: LogEngine[] = [];
afterEach(async () => {
  for (const e of open.splice(0)) await e.close().catch(() => {});
});

/** pagesOf lists the pages of one table (dbstat), in B-tree order. */
function pagesOf(file: string, table: string, type?: 'leaf' | 'internal'): number[] {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare(`SELECT pageno, pagetype FROM dbstat WHERE name = ? ORDER BY path`).all(table) as { pageno: number; pagetype: string }[];
    return rows.filter((r) => type === undefined || r.pagetype === type).map((r) => r.pageno);
  } finally {
    db.close();
  }
}

/** damagePage writes 4 KiB of garbage over page `pageno` (1-based) of a closed database file. */
function damagePage(file: string, pageno: number): void {
  const garbage = Buffer.alloc(4096);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 131 + pageno * 7 + 13) & 0xff;
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, garbage, 0, garbage.length, (pageno - 1) * 4096);
  } finally {
    fs.closeSync(fd);
  }
}

/** logWithEntries writes Regions 1..3 with 2,000 entries each (a few hundred pages) and closes the engine. */
async function logWithEntries(dir: string): Promise<string> {
  const file = path.join(dir, 'raft.db');
  const e = LogEngine.open({ path: file, foldRows: 1 });
  for (let r = 1; r <= 3; r++) {
    for (let i = 1; i <= 2000; i += 500) e.write(new LogBatch().append(r, ents(i, i + 499, 1)).setHardState(r, { term: 1, vote: 1, commit: i + 499 }));
  }
  await e.close();
  return file;
}

describe('LogEngine integrity check on open', () => {
  it('refuses a file with a damaged entries page, naming the file, and leaves it untouched (it used to open)', async () => {
    const file = await logWithEntries(tempDir());
    const leaves = pagesOf(file, 'entries', 'leaf');
    expect(leaves.length).toBeGreaterThan(20);
    damagePage(file, leaves[Math.floor(leaves.length / 2)]!);
    const before = fs.readFileSync(file);
    let err: unknown;
    try {
      open.push(LogEngine.open({ path: file }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StorageCorruptError);
    const c = err as StorageCorruptError;
    expect(c.path).toBe(file);
    expect(c.message).toMatch(/raft\.db: database file is corrupted \(/);
    expect(c.problems.length).toBeGreaterThan(0);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('opens an undamaged file and says what it checked', async () => {
    const file = await logWithEntries(tempDir());
    const e = LogEngine.open({ path: file });
    open.push(e);
    expect(e.integrity).toMatchObject({ file, mode: 'full' });
    expect(e.integrity!.bytes).toBeGreaterThan(100_000);
    const fresh = LogEngine.open({ path: path.join(tempDir(), 'raft.db') });
    open.push(fresh);
    expect(fresh.integrity?.mode).toBe('new');
  });

  it('past the size bound checks the small tables whole: a damaged raft_state page is refused', async () => {
    const file = await logWithEntries(tempDir());
    damagePage(file, pagesOf(file, 'raft_state')[0]!);
    expect(() => open.push(LogEngine.open({ path: file, integrityFullMaxBytes: 0 }))).toThrow(StorageCorruptError);
  });

  it('past the size bound a damaged page deep in entries opens, and the read that meets it is a typed corrupt fault naming the file', async () => {
    const file = await logWithEntries(tempDir());
    // The middle leaf holds Region 2's middle entries: neither edge of the
    // table nor the last entry of a Region (which opening reads).
    const leaves = pagesOf(file, 'entries', 'leaf');
    damagePage(file, leaves[Math.floor(leaves.length / 2)]!);
    const e = LogEngine.open({ path: file, integrityFullMaxBytes: 0 });
    open.push(e);
    expect(e.integrity?.mode).toBe('bounded');
    let err: unknown;
    try {
      for (let r = 1; r <= 3; r++) e.entries(r, 1, 2001);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(StorageFaultError);
    expect((err as StorageFaultError).kind).toBe('corrupt');
    expect((err as StorageFaultError).path).toBe(file);
  });
});

describe('LogEngine on a full disk', () => {
  it('a write that meets SQLITE_FULL is a typed disk-full fault; nothing of it is written, the engine refuses more, and a reopen has every acknowledged write', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'raft.db');
    const e = LogEngine.open({ path: file, foldRows: 1 });
    open.push(e);
    e.write(new LogBatch().append(1, ents(1, 100, 1)).setHardState(1, { term: 1, vote: 1, commit: 100 }));
    // SQLite's own limit on the database size: the same SQLITE_FULL a full disk gives.
    const db = (e as unknown as { db: Database.Database }).db;
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const big = ents(101, 400, 1).map((x) => ({ ...x, data: Buffer.alloc(2000, 7) }));
    let err: unknown;
    try {
      e.write(new LogBatch().append(1, big).setHardState(1, { term: 1, vote: 1, commit: 400 }));
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(StorageFaultError);
    expect(err as StorageFaultError).toMatchObject({ kind: 'disk-full', code: 'SQLITE_FULL', path: file });
    expect((err as Error).message).toMatch(/raft\.db: log write failed: the disk is full/);
    expect(e.lastIndex(1)).toBe(100);
    // Poisoned: a later write is refused with the same kind, before touching the disk.
    expect(() => e.write(new LogBatch().append(1, ents(101, 101, 1)))).toThrow(StorageFaultError);
    expect(storageFaultKind(new Error('x', { cause: err }))).toBe('disk-full');
    await e.close();
    open.length = 0;
    const again = LogEngine.open({ path: file });
    open.push(again);
    expect(again.lastIndex(1)).toBe(100);
    expect(again.raftState(1).hardState.commit).toBe(100);
    again.write(new LogBatch().append(1, big));
    expect(again.lastIndex(1)).toBe(400);
  });
});
