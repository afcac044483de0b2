import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Region } from '@flotilla/proto';
import { KvEngine, KvWriteBatch } from '../src/index';

// kv.db gives the pages of a large delete (a Region moved away, a range
// deleted) back to the file system in bounded steps (issue #19 item 7): the
// engine runs the log engine's vacuumStep with its stats, every
// statsPersistIntervalMs, and reclaimSpace() is the same step on demand.

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const b = (s: string) => Buffer.from(s);
const region = (id: number): Region => ({ id, startKey: b(''), endKey: b(''), epoch: { confVer: 1, version: 1 }, peers: [{ id: 10, storeId: 1, role: 'voter' }] });
/** FLOOR_BYTES: the free-page slack vacuumStep keeps (4 MiB) plus the small tables and B-tree interior. */
const FLOOR_BYTES = 6 * 1024 * 1024;

/** dbBytes reads the database's size in pages through a second connection (the engine's is not exclusive). */
function dbBytes(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return (db.pragma('page_count', { simple: true }) as number) * (db.pragma('page_size', { simple: true }) as number);
  } finally {
    db.close();
  }
}

describe('kv footprint', () => {
  it('after deleting most keys, the file shrinks to within 2x the live data + floor in bounded steps', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-kv-fp-'));
    dirs.push(dir);
    const file = path.join(dir, 'kv.db');
    let now = 0;
    const e = KvEngine.open({ path: file, durability: 'relaxed', statsPersistIntervalMs: 1000, now: () => now });
    // 400 bytes: a record of ~1 KB or more in a WITHOUT ROWID table spills into an overflow page of its own.
    const value = Buffer.alloc(400, 0x61);
    e.write(new KvWriteBatch().setRegionState(1, { region: region(1), state: 'normal' }));
    for (let i = 0; i < 60_000; i += 1000) {
      const w = new KvWriteBatch();
      for (let j = i; j < i + 1000; j++) w.put(b(`k${String(j).padStart(6, '0')}`), value);
      e.write(w);
    }
    const full = dbBytes(file);
    expect(full).toBeGreaterThan(60_000 * 400);
    // A Region's worth moved away: 90 % of the keys in one range delete.
    e.write(new KvWriteBatch().deleteRange(b('k000000'), b('k054000')));
    const live = 6_000 * (400 + 7);
    let steps = 0;
    for (; steps < 100 && dbBytes(file) > 2 * live + FLOOR_BYTES; steps++) {
      now += 1000;
      e.write(new KvWriteBatch().put(b(`tick${steps}`), b('x')));
    }
    const after = dbBytes(file);
    expect(after).toBeLessThanOrEqual(2 * live + FLOOR_BYTES);
    // Bounded: each step gives back at most 512 pages (2 MiB at 4 KiB pages).
    expect(steps).toBeGreaterThanOrEqual(Math.floor((full - after) / (512 * 4096)));
    expect(e.get(b('k059999'))?.length).toBe(400);
    expect(e.get(b('k000001'))).toBeUndefined();
    // On demand, down to the slack; then nothing more to give back.
    for (let i = 0; i < 100 && e.reclaimSpace() > 0; i++);
    expect(e.reclaimSpace()).toBe(0);
    expect(dbBytes(file)).toBeLessThanOrEqual(after);
    console.log(`kv footprint: ${full} B with 24 MB of values, ${after} B after deleting 90 % (${steps} steps), live ~${live} B`);
    e.close();
  });
});
