import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Region } from '@flotilla/proto';
import { KvEngine, KvWriteBatch } from '../src/index';
import type { KvPair, RegionLocalState } from '../src/index';

const b = (s: string) => Buffer.from(s);
const str = (pairs: KvPair[]) => pairs.map(([k, v]) => `${Buffer.from(k).toString()}=${Buffer.from(v).toString()}`);
function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-kv-'));
}
const engines: KvEngine[] = [];
function openKv(dir: string, extra: Partial<Parameters<typeof KvEngine.open>[0]> = {}): KvEngine {
  const e = KvEngine.open({ path: path.join(dir, 'kv.db'), ...extra });
  engines.push(e);
  return e;
}
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

function region(id: number, start: string, end: string): Region {
  return { id, startKey: b(start), endKey: b(end), epoch: { confVer: 1, version: 1 }, peers: [{ id: id * 10, storeId: 1, role: 'voter' }] };
}
function normal(id: number, start: string, end: string): RegionLocalState {
  return { region: region(id, start, end), state: 'normal' };
}

describe('KvEngine', () => {
  it('puts, gets, deletes and scans in byte order with limits and open ends', () => {
    const e = openKv(tempDir());
    const w = new KvWriteBatch();
    for (const k of ['b', 'a', 'c', 'ab', 'd', '\u00ff']) w.put(b(k), b(`v-${k}`));
    e.write(w);
    expect(e.get(b('ab'))?.toString()).toBe('v-ab');
    expect(e.get(b('zz'))).toBeUndefined();
    expect(str(e.scan(b('a'), b('c'), 10))).toEqual(['a=v-a', 'ab=v-ab', 'b=v-b']);
    expect(str(e.scan(b('a'), b(''), 3))).toEqual(['a=v-a', 'ab=v-ab', 'b=v-b']);
    expect(e.scan(b('c'), b(''), 100).length).toBe(3);
    e.write(new KvWriteBatch().delete(b('a')).put(b('b'), b('new')));
    expect(str(e.scan(b(''), b(''), 2))).toEqual(['ab=v-ab', 'b=new']);
    e.write(new KvWriteBatch().deleteRange(b('ab'), b('c')));
    expect(str(e.scan(b(''), b(''), 10)).map((x) => x.split('=')[0])).toEqual(['c', 'd', '\u00ff']);
    e.write(new KvWriteBatch().deleteRange(b('d'), b('')));
    expect(str(e.scan(b(''), b(''), 10))).toEqual(['c=v-c']);
  });

  it('writes data and states in one transaction and restarts with them', () => {
    const dir = tempDir();
    let e = openKv(dir);
    const merge = b('merge-bookkeeping');
    e.write(
      new KvWriteBatch()
        .setRegionState(1, normal(1, '', 'm'))
        .setRegionState(2, { region: region(2, 'm', ''), state: 'merging', mergeState: merge })
        .put(b('a'), b('1'))
        .setApplyState(1, { appliedIndex: 7, truncatedIndex: 5, truncatedTerm: 2 }),
    );
    e.close();
    e = openKv(dir);
    expect(e.get(b('a'))?.toString()).toBe('1');
    expect(e.applyState(1)).toEqual({ appliedIndex: 7, truncatedIndex: 5, truncatedTerm: 2 });
    const all = e.loadRegionStates();
    expect(all.map((r) => [r.regionId, r.regionState.state, r.applyState?.appliedIndex])).toEqual([
      [1, 'normal', 7],
      [2, 'merging', undefined],
    ]);
    expect(Buffer.from(all[1]!.regionState.mergeState!).toString()).toBe('merge-bookkeeping');
    expect(Buffer.from(all[0]!.regionState.region.endKey).toString()).toBe('m');
    expect(all[0]!.regionState.region.peers).toEqual([{ id: 10, storeId: 1, role: 'voter' }]);
  });

  it('relaxed durability: flush makes earlier writes durable and they survive a reopen', () => {
    const dir = tempDir();
    let e = openKv(dir, { durability: 'relaxed' });
    e.write(new KvWriteBatch().put(b('k'), b('v')).setApplyState(1, { appliedIndex: 4, truncatedIndex: 0, truncatedTerm: 0 }));
    e.flush();
    e.close();
    e = openKv(dir);
    expect(e.get(b('k'))?.toString()).toBe('v');
    expect(e.applyState(1)?.appliedIndex).toBe(4);
  });

  it('rolls back the whole batch when a statement fails', () => {
    const e = openKv(tempDir());
    const bad = new KvWriteBatch().put(b('x'), b('1')).setApplyState(1, { appliedIndex: 3, truncatedIndex: 0, truncatedTerm: 0 });
    // A state row violating the CHECK constraint fails the transaction.
    bad.setRegionState(1, { region: region(1, '', ''), state: 'bogus' as 'normal' });
    expect(() => e.write(bad)).toThrow();
    expect(e.get(b('x'))).toBeUndefined();
    expect(e.applyState(1)).toBeUndefined();
  });

  it('takes a consistent snapshot while writes go on', () => {
    const e = openKv(tempDir());
    const w = new KvWriteBatch().setRegionState(1, normal(1, 'k', 'l'));
    for (let i = 0; i < 1000; i++) w.put(b(`k${String(i).padStart(4, '0')}`), Buffer.alloc(100, i & 0xff));
    w.setApplyState(1, { appliedIndex: 10, truncatedIndex: 5, truncatedTerm: 1 });
    e.write(w);
    const snap = e.snapshotRegion(1, b('k'), b('l'));
    expect(snap.applyState?.appliedIndex).toBe(10);
    const first = snap.readChunk(5000);
    expect(first.length).toBeGreaterThan(10);
    expect(first.length).toBeLessThan(1000);
    // Writes after the snapshot was opened are invisible to it.
    e.write(new KvWriteBatch().deleteRange(b('k'), b('l')).put(b('k9999'), b('late')).setApplyState(1, { appliedIndex: 11, truncatedIndex: 5, truncatedTerm: 1 }));
    const rest = [...snap.pairs()];
    snap.close();
    const keys = [...first, ...rest].map(([k]) => Buffer.from(k).toString());
    expect(keys.length).toBe(1000);
    expect(keys[999]).toBe('k0999');
    expect(e.scan(b('k'), b('l'), 10).length).toBe(1);
    expect(e.snapshotRange(b('k'), b('l')).length).toBe(1);
  });

  it('snapshots an unbounded range in chunks and an unknown Region without states', () => {
    const e = openKv(tempDir());
    const w = new KvWriteBatch();
    for (let i = 0; i < 300; i++) w.put(b(`z${String(i).padStart(3, '0')}`), Buffer.alloc(40, 1));
    e.write(w);
    const snap = e.snapshotRegion(99, b('z1'), b(''));
    expect(snap.applyState).toBeUndefined();
    expect(snap.regionState).toBeUndefined();
    const chunks: number[] = [];
    for (let c = snap.readChunk(1000); c.length > 0; c = snap.readChunk(1000)) chunks.push(c.length);
    snap.close();
    expect(chunks.reduce((a, x) => a + x, 0)).toBe(200);
    expect(chunks.length).toBeGreaterThan(5);
    expect(() => snap.readChunk(10)).toThrow(/closed/);
  });

  it('ingests a snapshot atomically: clears the range, inserts pairs, sets states', () => {
    const dir = tempDir();
    let e = openKv(dir);
    e.write(new KvWriteBatch().put(b('a1'), b('old')).put(b('b1'), b('keep')).put(b('a0'), b('stale')));
    const pairs: KvPair[] = [
      [b('a2'), b('x')],
      [b('a3'), b('y')],
    ];
    e.ingestSnapshot(3, b('a'), b('b'), pairs, { appliedIndex: 50, truncatedIndex: 50, truncatedTerm: 6 }, normal(3, 'a', 'b'));
    expect(str(e.scan(b(''), b(''), 10))).toEqual(['a2=x', 'a3=y', 'b1=keep']);
    expect(e.approximateRegionStats(3)).toEqual({ bytes: 6, keys: 2 });
    expect(() => e.ingestSnapshot(3, b('a'), b('b'), [[b('z'), b('1')]], { appliedIndex: 51, truncatedIndex: 51, truncatedTerm: 6 }, normal(3, 'a', 'b'))).toThrow(
      /outside/,
    );
    expect(e.applyState(3)?.appliedIndex).toBe(50);
    e.close();
    e = openKv(dir);
    expect(e.applyState(3)).toEqual({ appliedIndex: 50, truncatedIndex: 50, truncatedTerm: 6 });
    expect(e.regionState(3)?.state).toBe('normal');
  });

  it('counts an overwrite by its bytes delta and a delete by what it removed, so rewriting keys never grows a Region', () => {
    const e = openKv(tempDir());
    e.write(new KvWriteBatch().setRegionState(1, normal(1, '', '')));
    const keys = Array.from({ length: 50 }, (_, i) => b(`k${String(i).padStart(2, '0')}`)); // 3-byte keys
    const w = new KvWriteBatch();
    for (const k of keys) w.put(k, Buffer.alloc(10));
    e.write(w);
    expect(e.approximateRegionStats(1)).toEqual({ bytes: 50 * 13, keys: 50 });
    // Rewriting every key many times, same size: nothing changes.
    for (let round = 0; round < 20; round++) {
      const o = new KvWriteBatch();
      for (const k of keys) o.put(k, Buffer.alloc(10, round));
      e.write(o);
    }
    expect(e.approximateRegionStats(1)).toEqual({ bytes: 50 * 13, keys: 50 });
    // Larger and smaller values move the size by the delta; a key put twice in one batch counts once.
    e.write(new KvWriteBatch().put(keys[0]!, Buffer.alloc(30)).put(keys[1]!, Buffer.alloc(2)).put(b('new'), b('v')).put(b('new'), b('vv')));
    expect(e.approximateRegionStats(1)).toEqual({ bytes: 50 * 13 + 20 - 8 + 5, keys: 51 });
    // A delete subtracts the value it removed; deleting a missing key (or twice) removes nothing.
    e.write(new KvWriteBatch().delete(keys[0]!).delete(keys[0]!).delete(b('missing')));
    const expected = { bytes: 50 * 13 + 20 - 8 + 5 - 33, keys: 50 };
    expect(e.approximateRegionStats(1)).toEqual(expected);
    // And it agrees with an exact recount.
    expect(e.approximateSplitKey(b(''), b('')).stats).toEqual(expected);
    e.close();
  });

  it('keeps approximate stats per Region on write, persists them, recounts after a split', () => {
    const dir = tempDir();
    let now = 0;
    let e = openKv(dir, { now: () => now, statsPersistIntervalMs: 1000 });
    e.write(new KvWriteBatch().setRegionState(1, normal(1, '', 'm')).setRegionState(2, normal(2, 'm', '')));
    const w = new KvWriteBatch();
    for (let i = 0; i < 100; i++) w.put(b(`a${String(i).padStart(3, '0')}`), Buffer.alloc(96));
    for (let i = 0; i < 10; i++) w.put(b(`z${i}`), Buffer.alloc(8));
    e.write(w);
    expect(e.approximateRegionStats(1)).toEqual({ bytes: 100 * 100, keys: 100 });
    expect(e.approximateRegionStats(2)).toEqual({ bytes: 10 * 10, keys: 10 });
    e.write(new KvWriteBatch().delete(b('a000')));
    expect(e.approximateRegionStats(1)).toEqual({ bytes: 99 * 100, keys: 99 });
    // The split key sits at about half the bytes: a050 (a001..a049 before it).
    expect(e.approximateSplitKey(b(''), b('m')).key?.toString()).toBe('a050');
    expect(e.approximateSplitKey(b('z'), b('')).key?.toString()).toBe('z5');
    expect(e.approximateSplitKey(b('zz'), b(''))).toEqual({ key: undefined, stats: { bytes: 0, keys: 0 } });
    now = 2000;
    e.write(new KvWriteBatch().put(b('z9'), b('12345678')));
    // Persisted with that write: a reopen finds the stats without scanning.
    const db = new Database(path.join(dir, 'kv.db'), { readonly: true });
    expect(db.prepare('SELECT region_id, bytes, keys FROM region_stats ORDER BY region_id').raw().all()).toEqual([
      [1, 9900, 99],
      [2, 100, 10],
    ]);
    db.close();
    // The split check's scan returns the exact stats and refreshes the Region's.
    expect(e.approximateSplitKey(b(''), b('m'))).toEqual({ key: Buffer.from('a050'), stats: { bytes: 99 * 100, keys: 99 } });
    expect(e.approximateRegionStats(1)).toEqual({ bytes: 99 * 100, keys: 99 });
    // Split region 1 at a050: both halves' stats become unknown and are recounted once.
    e.write(new KvWriteBatch().setRegionState(1, normal(1, '', 'a050')).setRegionState(3, normal(3, 'a050', 'm')));
    expect(e.approximateRegionStats(1)).toEqual({ bytes: 49 * 100, keys: 49 });
    expect(e.approximateRegionStats(3)).toEqual({ bytes: 50 * 100, keys: 50 });
    e.write(new KvWriteBatch().setRegionState(3, { region: region(3, 'a050', 'm'), state: 'tombstone' }));
    expect(e.approximateRegionStats(3)).toBeUndefined();
    e.close();
    e = openKv(dir);
    expect(e.approximateRegionStats(1)).toEqual({ bytes: 49 * 100, keys: 49 });
    expect(e.approximateRegionStats(2)).toEqual({ bytes: 100, keys: 10 });
  });
});

describe('KvEngine bad files', () => {
  it('refuses non-SQLite, newer-format and log-engine files; creates missing directories', () => {
    const dir = tempDir();
    const junk = path.join(dir, 'junk.db');
    fs.writeFileSync(junk, Buffer.alloc(4096, 7));
    expect(() => KvEngine.open({ path: junk })).toThrow(/junk\.db: not a SQLite database/);
    const file = path.join(dir, 'x', 'y', 'kv.db');
    KvEngine.open({ path: file }).close();
    const db = new Database(file);
    db.prepare("UPDATE meta SET value = 3 WHERE key = 'format_version'").run();
    db.close();
    let err: unknown;
    try {
      KvEngine.open({ path: file });
    } catch (e) {
      err = e;
    }
    expect((err as Error).name).toBe('StorageFormatError');
    expect((err as Error).message).toMatch(/kv\.db: format version 3 is newer than this code supports \(2\)/);
    const other = path.join(dir, 'log.db');
    const odb = new Database(other);
    odb.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY); INSERT INTO meta VALUES ('engine', 'flotilla-log-engine'), ('format_version', 1);");
    odb.close();
    expect(() => KvEngine.open({ path: other })).toThrow(/not a flotilla-kv-engine database/);
  });

  it('refuses a corrupted file and an unusable directory', () => {
    const dir = tempDir();
    const file = path.join(dir, 'kv.db');
    const e = KvEngine.open({ path: file });
    const w = new KvWriteBatch();
    for (let i = 0; i < 500; i++) w.put(b(`key${i}`), Buffer.alloc(50, 1));
    e.write(w);
    e.close();
    const buf = fs.readFileSync(file);
    for (let i = 100; i < buf.length; i++) buf[i] = (i * 7) & 0xff;
    fs.writeFileSync(file, buf);
    expect(() => KvEngine.open({ path: file })).toThrow(/kv\.db: (database file is corrupted|not a flotilla)/);
    fs.writeFileSync(path.join(dir, 'plain'), 'x');
    expect(() => KvEngine.open({ path: path.join(dir, 'plain', 'kv.db') })).toThrow(/cannot create the database directory/);
  });
});
