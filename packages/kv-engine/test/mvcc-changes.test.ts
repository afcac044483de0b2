import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { TxnCommand, WatchEvent } from '@flotilla/proto';
import { applyTxnCommand, KvEngine, KvWriteBatch, MvccOverlay, prevValueOf, readChanges } from '../src/index';

// readChanges: a watch's catch-up scan over a real engine file (issue #18).

const b = (s: string): Buffer => Buffer.from(s);
const P = BigInt(Date.now());
const ts = (ms: number): bigint => (P + BigInt(ms)) << 18n;
const WHOLE = { startKey: b(''), endKey: b('') };
const engines: KvEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

function openKv(): KvEngine {
  const e = KvEngine.open({ path: path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-changes-')), 'kv.db') });
  engines.push(e);
  return e;
}
function run(e: KvEngine, c: TxnCommand): void {
  const batch = new KvWriteBatch();
  const v = new MvccOverlay(e.mvcc, (op) => batch.mvcc(op));
  const r = applyTxnCommand(v, c, WHOLE);
  expect('errors' in r ? r.errors : []).toEqual([]);
  e.write(batch);
}
/** commitTxn prewrites and commits puts (null value = delete) at start s, commit c. */
function commitTxn(e: KvEngine, writes: [string, string | null][], s: bigint, c: bigint): void {
  const mutations = writes.map(([k, v]) => (v === null ? { op: 'delete' as const, key: b(k) } : { op: 'put' as const, key: b(k), value: b(v) }));
  run(e, { type: 'prewrite', mutations, primary: b(writes[0]![0]), startTs: s, lockTtlMs: 3000, txnSize: writes.length });
  run(e, { type: 'commit', keys: writes.map(([k]) => b(k)), startTs: s, commitTs: c });
}
const show = (ev: WatchEvent[]) => ev.map((x) => `${x.type} ${x.key.toString()}${x.value ? `=${Buffer.from(x.value).toString().slice(0, 8)}` : ''} @${x.revision - ts(0) >> 18n}`);

it('lists committed puts and deletes above fromTs, key by key in commit order, with long values, and skips locks, lock records and rollbacks', () => {
  const e = openKv();
  commitTxn(e, [['a', '1'], ['b', '1']], ts(1), ts(2));
  commitTxn(e, [['a', '2'], ['c', 'L'.repeat(600)]], ts(3), ts(4));
  commitTxn(e, [['b', null]], ts(5), ts(6));
  // A lock-kind mutation commits a lock record; a rollback writes a rollback record; a pending lock is not committed: none is a change.
  run(e, { type: 'prewrite', mutations: [{ op: 'lock', key: b('a') }], primary: b('a'), startTs: ts(7), lockTtlMs: 3000, txnSize: 1 });
  run(e, { type: 'commit', keys: [b('a')], startTs: ts(7), commitTs: ts(8) });
  run(e, { type: 'rollback', keys: [b('c')], startTs: ts(9) });
  run(e, { type: 'prewrite', mutations: [{ op: 'put', key: b('d'), value: b('x') }], primary: b('d'), startTs: ts(10), lockTtlMs: 3000, txnSize: 1 });

  const all = readChanges(e.mvcc, b(''), b(''), 0n, 100);
  expect(show(all.events)).toEqual(['put a=1 @2', 'put a=2 @4', 'put b=1 @2', 'delete b @6', `put c=LLLLLLLL @4`]);
  expect(all.next).toBeUndefined();
  expect((all.events[4]!.value as Uint8Array).length).toBe(600);
  // Strictly above fromTs; a range narrows it.
  expect(show(readChanges(e.mvcc, b(''), b(''), ts(2), 100).events)).toEqual(['put a=2 @4', 'delete b @6', 'put c=LLLLLLLL @4']);
  expect(show(readChanges(e.mvcc, b('b'), b('c'), 0n, 100).events)).toEqual(['put b=1 @2', 'delete b @6']);
  // prevValueOf: the value just before a revision (none before the first put, none after a delete; lock records do not count).
  const prev = (k: string, at: bigint) => prevValueOf(e.mvcc, b(k), at)?.toString();
  expect([prev('a', ts(2)), prev('a', ts(4)), prev('a', ts(8)), prev('b', ts(6)), prev('b', ts(9))]).toEqual([undefined, '1', '2', '1', undefined]);
});

it('pages between keys: resuming at next neither skips nor repeats a record', () => {
  const e = openKv();
  for (let i = 0; i < 30; i++) commitTxn(e, [[`k${String(i % 10).padStart(2, '0')}`, `v${i}`]], ts(10 * i + 1), ts(10 * i + 2));
  const whole = readChanges(e.mvcc, b(''), b(''), 0n, 1000).events;
  expect(whole).toHaveLength(30);
  const paged: WatchEvent[] = [];
  let from: Uint8Array | undefined = b('');
  let pages = 0;
  while (from !== undefined) {
    const p = readChanges(e.mvcc, from, b(''), 0n, 4);
    paged.push(...p.events);
    from = p.next;
    pages++;
  }
  expect(pages).toBeGreaterThan(3);
  expect(show(paged)).toEqual(show(whole));
});
