import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Region } from '@flotilla/proto';
import { KvEngine, KvWriteBatch, StorageCorruptError } from '../src/index';

// Integrity at start (issue #15 item 3) on real damaged copies: garbage
// written over pages of a real kv.db. Before the check, a damaged data page
// opened fine and the first write that reached it died with SQLITE_CORRUPT.

const engines: KvEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

function region(id: number, start: string, end: string): Region {
  return { id, startKey: Buffer.from(start), endKey: Buffer.from(end), epoch: { confVer: 1, version: 1 }, peers: [{ id: id * 10, storeId: 1, role: 'voter' }] };
}

/** kvWithData writes 20,000 keys (a few hundred pages) and the states of three Regions, then closes. */
function kvWithData(): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-kv-')), 'kv.db');
  const e = KvEngine.open({ path: file });
  for (let j = 0; j < 20; j++) {
    const w = new KvWriteBatch();
    for (let i = 0; i < 1000; i++) w.put(Buffer.from(`key${String(j * 1000 + i).padStart(6, '0')}`), Buffer.alloc(100, i & 0xff));
    e.write(w);
  }
  const w = new KvWriteBatch();
  for (const [id, s, x] of [[1, '', 'key05'], [2, 'key05', 'key15'], [3, 'key15', '']] as const) {
    w.setRegionState(id, { region: region(id, s, x), state: 'normal' });
    w.setApplyState(id, { appliedIndex: 10, truncatedIndex: 5, truncatedTerm: 1 });
  }
  e.write(w);
  e.close();
  return file;
}

function leafPages(file: string, table: string): number[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path").pluck().all(table) as number[];
  } finally {
    db.close();
  }
}

function damagePage(file: string, pageno: number): void {
  const garbage = Buffer.alloc(4096);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 97 + pageno * 5 + 1) & 0xff;
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, garbage, 0, garbage.length, (pageno - 1) * 4096);
  } finally {
    fs.closeSync(fd);
  }
}

describe('KvEngine integrity check on open', () => {
  it('refuses a kv.db with a damaged data page, naming the file, and leaves the file untouched', () => {
    const file = kvWithData();
    const leaves = leafPages(file, 'kv');
    expect(leaves.length).toBeGreaterThan(50);
    damagePage(file, leaves[Math.floor(leaves.length / 2)]!);
    const before = fs.readFileSync(file);
    let err: unknown;
    try {
      engines.push(KvEngine.open({ path: file }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StorageCorruptError);
    expect((err as StorageCorruptError).path).toBe(file);
    expect((err as Error).message).toMatch(/kv\.db: database file is corrupted \(/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
  });

  it('checks an undamaged kv.db whole below the bound, and says so', () => {
    const file = kvWithData();
    const e = KvEngine.open({ path: file });
    engines.push(e);
    expect(e.integrity).toMatchObject({ file, mode: 'full' });
    expect(e.get(Buffer.from('key010000'))?.length).toBe(100);
  });

  it('past the bound checks the state tables whole: a damaged region_state page is refused', () => {
    const file = kvWithData();
    damagePage(file, leafPages(file, 'region_state')[0]!);
    expect(() => engines.push(KvEngine.open({ path: file, integrityFullMaxBytes: 0 }))).toThrow(StorageCorruptError);
  });

  it('a damaged last page of kv is found by the bounded check too (it reads both edges)', () => {
    const file = kvWithData();
    const leaves = leafPages(file, 'kv');
    damagePage(file, leaves[leaves.length - 1]!);
    expect(() => engines.push(KvEngine.open({ path: file, integrityFullMaxBytes: 0 }))).toThrow(/kv\.db: database file is corrupted/);
  });
});
