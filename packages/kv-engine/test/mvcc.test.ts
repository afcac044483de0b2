import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { KeyError, Region, TxnCommand, TxnResult } from '@flotilla/proto';
import { applyTxnCommand, KvEngine, KvWriteBatch, MvccOverlay, snapshotGet, snapshotScan } from '../src/index';

// Percolator at apply time and snapshot reads, over a real engine file: the
// conflict and lock-resolution matrix of issue #17.

const b = (s: string): Buffer => Buffer.from(s);
const P = BigInt(Date.now());
/** ts(ms, logical): a hybrid timestamp ms after the test's start. */
const ts = (ms: number, logical = 0): bigint => ((P + BigInt(ms)) << 18n) | BigInt(logical);
const WHOLE = { startKey: b(''), endKey: b('') };

const engines: KvEngine[] = [];
function openKv(file?: string): KvEngine {
  const e = KvEngine.open({ path: file ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flotilla-mvcc-')), 'kv.db') });
  engines.push(e);
  return e;
}
afterEach(() => {
  for (const e of engines.splice(0)) e.close();
});

/** run applies commands as one apply round (one overlay, one write). */
function run(e: KvEngine, cmds: TxnCommand[], onePc?: bigint): TxnResult[] {
  const batch = new KvWriteBatch();
  const v = new MvccOverlay(e.mvcc, (op) => batch.mvcc(op));
  const out = cmds.map((c) => applyTxnCommand(v, c, WHOLE, onePc));
  e.write(batch);
  return out;
}
const one = (e: KvEngine, c: TxnCommand, onePc?: bigint): TxnResult => run(e, [c], onePc)[0]!;
const errorsOf = (r: TxnResult): KeyError[] => ('errors' in r ? r.errors : []);
const types = (r: TxnResult): string[] => errorsOf(r).map((x) => x.type);

function prewrite(keys: string[], startTs: bigint, opts: { primary?: string; value?: string | Buffer; op?: 'put' | 'delete' | 'lock'; ttl?: number } = {}): TxnCommand {
  const op = opts.op ?? 'put';
  const value = typeof opts.value === 'string' || opts.value === undefined ? b(opts.value ?? `v@${startTs}`) : opts.value;
  return {
    type: 'prewrite',
    mutations: keys.map((k) => (op === 'put' ? { op, key: b(k), value } : { op, key: b(k) })),
    primary: b(opts.primary ?? keys[0]!),
    startTs,
    lockTtlMs: opts.ttl ?? 3000,
    txnSize: keys.length,
  };
}
const commit = (keys: string[], startTs: bigint, commitTs: bigint): TxnCommand => ({ type: 'commit', keys: keys.map(b), startTs, commitTs });
const rollback = (keys: string[], startTs: bigint): TxnCommand => ({ type: 'rollback', keys: keys.map(b), startTs });
const status = (primary: string, startTs: bigint, currentTs: bigint, rollbackIfNotExist: boolean): TxnCommand => ({ type: 'checkTxnStatus', primary: b(primary), startTs, currentTs, callerStartTs: 0n, rollbackIfNotExist });
function read(e: KvEngine, key: string, at: bigint): { value?: string; version?: bigint; errors: string[] } {
  const r = snapshotGet(e.mvcc, [b(key)], at);
  const p = r.pairs[0];
  return { ...(p ? { value: Buffer.from(p.value).toString(), version: p.version } : {}), errors: r.errors.map((x) => x.type) };
}
/** txnCommit writes key=value through a whole 2PC at (s, c). */
function txnCommit(e: KvEngine, keys: string[], s: bigint, c: bigint, value?: string): void {
  expect(types(one(e, prewrite(keys, s, { value: value ?? `v@${s}` })))).toEqual([]);
  expect(types(one(e, commit(keys, s, c)))).toEqual([]);
}

describe('percolator: prewrite and commit', () => {
  it('a committed put is visible from its commit ts, with version = commit ts; a long value lives in txn_data', () => {
    const e = openKv();
    const long = 'x'.repeat(1000);
    expect(one(e, prewrite(['a', 'b'], ts(1), { value: long }))).toEqual({ type: 'prewrite', errors: [] });
    expect(read(e, 'a', ts(5)).errors).toEqual(['KeyIsLocked']);
    expect(read(e, 'a', ts(0)).errors).toEqual([]); // a lock above the read ts does not matter
    expect(one(e, commit(['a', 'b'], ts(1), ts(2)))).toEqual({ type: 'commit', errors: [], commitTs: ts(2) });
    expect(read(e, 'a', ts(2))).toEqual({ value: long, version: ts(2), errors: [] });
    expect(read(e, 'a', ts(2) - 1n)).toEqual({ errors: [] });
    expect(e.mvcc.lock(b('a'))).toBeUndefined();
    expect(e.mvcc.data(b('a'), ts(1))?.length).toBe(1000);
  });

  it('a delete hides the value from its commit ts on; a lock-kind mutation writes nothing and blocks no read', () => {
    const e = openKv();
    txnCommit(e, ['k'], ts(1), ts(2), 'one');
    expect(types(one(e, prewrite(['k'], ts(3), { op: 'lock' })))).toEqual([]);
    expect(read(e, 'k', ts(10))).toEqual({ value: 'one', version: ts(2), errors: [] });
    expect(types(one(e, commit(['k'], ts(3), ts(4))))).toEqual([]);
    expect(read(e, 'k', ts(10)).value).toBe('one');
    txnCommit(e, ['k'], ts(5), ts(6), 'two');
    expect(types(one(e, prewrite(['k'], ts(7), { op: 'delete' })))).toEqual([]);
    expect(types(one(e, commit(['k'], ts(7), ts(8))))).toEqual([]);
    expect(read(e, 'k', ts(7)).value).toBe('two');
    expect(read(e, 'k', ts(8))).toEqual({ errors: [] });
  });

  it('prewrite after a newer commit is a WriteConflict naming it; a lock-kind record conflicts too; nothing is written', () => {
    const e = openKv();
    txnCommit(e, ['a'], ts(5), ts(6));
    const r = one(e, prewrite(['b', 'a'], ts(4)));
    expect(errorsOf(r)).toEqual([{ type: 'WriteConflict', key: b('a'), primary: b('b'), startTs: ts(4), conflictStartTs: ts(5), conflictCommitTs: ts(6) }]);
    expect(e.mvcc.lock(b('b'))).toBeUndefined(); // all or nothing
    expect(types(one(e, prewrite(['c'], ts(7), { op: 'lock' })))).toEqual([]);
    expect(types(one(e, commit(['c'], ts(7), ts(8))))).toEqual([]);
    expect(types(one(e, prewrite(['c'], ts(7, 1))))).toEqual(['WriteConflict']);
    expect(types(one(e, prewrite(['a', 'c'], ts(9))))).toEqual([]); // after both: fine
  });

  it("another transaction's lock is KeyIsLocked with the lock; our own lock is an idempotent retry", () => {
    const e = openKv();
    expect(types(one(e, prewrite(['a'], ts(1), { primary: 'p', ttl: 1234 })))).toEqual([]);
    const r = one(e, prewrite(['a', 'z'], ts(2)));
    expect(errorsOf(r)).toEqual([{ type: 'KeyIsLocked', lock: { key: b('a'), primary: b('p'), startTs: ts(1), ttlMs: 1234, kind: 'put', minCommitTs: ts(1) + 1n, txnSize: 1 } }]);
    expect(e.mvcc.lock(b('z'))).toBeUndefined();
    expect(one(e, prewrite(['a'], ts(1), { primary: 'p' }))).toEqual({ type: 'prewrite', errors: [] });
    expect(types(one(e, commit(['a'], ts(1), ts(3))))).toEqual([]);
    expect(one(e, prewrite(['a'], ts(1), { primary: 'p' }))).toEqual({ type: 'prewrite', errors: [] }); // retry after commit
    expect(e.mvcc.lock(b('a'))).toBeUndefined();
  });

  it('commit: unknown transaction → TxnLockNotFound; rolled back → Rolledback; below min_commit_ts → CommitTsExpired; a retry is fine', () => {
    const e = openKv();
    expect(errorsOf(one(e, commit(['nope'], ts(1), ts(2))))).toEqual([{ type: 'TxnLockNotFound', key: b('nope'), startTs: ts(1) }]);
    expect(types(one(e, prewrite(['a'], ts(3))))).toEqual([]);
    expect(types(one(e, rollback(['a'], ts(3))))).toEqual([]);
    expect(types(one(e, commit(['a'], ts(3), ts(4))))).toEqual(['Rolledback']);
    const pw = { ...(prewrite(['m'], ts(5)) as Extract<TxnCommand, { type: 'prewrite' }>), minCommitTs: ts(9) };
    expect(types(one(e, pw))).toEqual([]);
    expect(errorsOf(one(e, commit(['m'], ts(5), ts(8))))).toEqual([{ type: 'CommitTsExpired', key: b('m'), startTs: ts(5), commitTs: ts(8), minCommitTs: ts(9) }]);
    expect(types(one(e, commit(['m'], ts(5), ts(9))))).toEqual([]);
    expect(one(e, commit(['m'], ts(5), ts(9)))).toEqual({ type: 'commit', errors: [], commitTs: ts(9) });
    expect(read(e, 'm', ts(20)).version).toBe(ts(9));
  });
});

describe('percolator: rollback, cleanup and resolution', () => {
  it('rollback of a committed transaction is Committed; rollback without a lock stops a late prewrite; retries are fine', () => {
    const e = openKv();
    txnCommit(e, ['a'], ts(1), ts(2));
    expect(errorsOf(one(e, rollback(['a'], ts(1))))).toEqual([{ type: 'Committed', key: b('a'), startTs: ts(1), commitTs: ts(2) }]);
    expect(read(e, 'a', ts(3)).version).toBe(ts(2));
    expect(types(one(e, rollback(['late'], ts(4))))).toEqual([]);
    expect(types(one(e, rollback(['late'], ts(4))))).toEqual([]);
    expect(types(one(e, prewrite(['late'], ts(4))))).toEqual(['Rolledback']);
    expect(e.mvcc.lock(b('late'))).toBeUndefined();
    // A long value's data row goes with its rolled-back lock.
    expect(types(one(e, prewrite(['big'], ts(5), { value: 'y'.repeat(400) })))).toEqual([]);
    expect(types(one(e, rollback(['big'], ts(5))))).toEqual([]);
    expect(e.mvcc.data(b('big'), ts(5))).toBeUndefined();
    expect(read(e, 'big', ts(9))).toEqual({ errors: [] });
  });

  it('cleanup racing commit, both orders: the first one applied wins, the second one answers why', () => {
    const e = openKv();
    expect(types(one(e, prewrite(['a'], ts(1))))).toEqual([]);
    const [c1, r1] = run(e, [commit(['a'], ts(1), ts(2)), rollback(['a'], ts(1))]);
    expect(types(c1!)).toEqual([]);
    expect(types(r1!)).toEqual(['Committed']);
    expect(read(e, 'a', ts(3)).version).toBe(ts(2));
    expect(types(one(e, prewrite(['b'], ts(4))))).toEqual([]);
    const [r2, c2] = run(e, [rollback(['b'], ts(4)), commit(['b'], ts(4), ts(5))]);
    expect(types(r2!)).toEqual([]);
    expect(types(c2!)).toEqual(['Rolledback']);
    expect(read(e, 'b', ts(6))).toEqual({ errors: [] });
  });

  it('checkTxnStatus: locked, TTL-expired (judged by currentTs), committed, and not-exist with and without rollbackIfNotExist', () => {
    const e = openKv();
    expect(types(one(e, prewrite(['p', 's'], ts(0), { ttl: 1000 })))).toEqual([]);
    const locked = one(e, status('p', ts(0), ts(500), false));
    expect(locked).toMatchObject({ type: 'checkTxnStatus', status: 'locked', lock: { primary: b('p'), ttlMs: 1000 } });
    expect(one(e, status('p', ts(0), ts(1001), true))).toEqual({ type: 'checkTxnStatus', status: 'rolledBack', action: 'ttlExpireRollback' });
    expect(e.mvcc.lock(b('p'))).toBeUndefined();
    expect(types(one(e, commit(['p'], ts(0), ts(1002))))).toEqual(['Rolledback']);
    expect(one(e, status('p', ts(0), ts(1003), true))).toEqual({ type: 'checkTxnStatus', status: 'rolledBack', action: 'none' });
    txnCommit(e, ['q'], ts(10), ts(11));
    expect(one(e, status('q', ts(10), ts(5000), true))).toEqual({ type: 'checkTxnStatus', status: 'committed', commitTs: ts(11) });
    // Nothing there: without rollbackIfNotExist nothing is written and the prewrite may still come.
    expect(one(e, status('n', ts(20), ts(21), false))).toEqual({ type: 'checkTxnStatus', status: 'rolledBack', action: 'none' });
    expect(types(one(e, prewrite(['n'], ts(20))))).toEqual([]);
    expect(types(one(e, rollback(['n'], ts(20))))).toEqual([]);
    expect(one(e, status('m', ts(30), ts(31), true))).toEqual({ type: 'checkTxnStatus', status: 'rolledBack', action: 'lockNotExistRollback' });
    expect(types(one(e, prewrite(['m'], ts(30))))).toEqual(['Rolledback']);
  });

  it('a committed transaction stays committed under more than 256 newer records of its primary (rollbacks of many later attempts)', () => {
    const e = openKv();
    txnCommit(e, ['p', 's'], ts(1), ts(2));
    // 300 later attempts rolled back on p (one apply round), plus a few commits.
    run(e, Array.from({ length: 300 }, (_, i) => rollback(['p'], ts(3, i))));
    for (let i = 0; i < 5; i++) txnCommit(e, ['p'], ts(10 + 2 * i), ts(11 + 2 * i));
    expect(one(e, status('p', ts(1), ts(9000), true))).toEqual({ type: 'checkTxnStatus', status: 'committed', commitTs: ts(2) });
    expect(one(e, commit(['p'], ts(1), ts(2)))).toEqual({ type: 'commit', errors: [], commitTs: ts(2) });
    expect(types(one(e, rollback(['p'], ts(1))))).toEqual(['Committed']);
    expect(types(one(e, prewrite(['p'], ts(1))))).toEqual([]); // a retried prewrite after commit: nothing to do
    expect(e.mvcc.lock(b('p'))).toBeUndefined();
    expect(read(e, 'p', ts(5)).version).toBe(ts(2));
  });

  it('txnHeartBeat extends the TTL (so the lock outlives its first TTL); after a TTL rollback it is TxnLockNotFound', () => {
    const e = openKv();
    expect(types(one(e, prewrite(['p'], ts(0), { ttl: 1000 })))).toEqual([]);
    expect(one(e, { type: 'txnHeartBeat', primary: b('p'), startTs: ts(0), adviseTtlMs: 5000 })).toEqual({ type: 'txnHeartBeat', ttlMs: 5000, errors: [] });
    expect(one(e, { type: 'txnHeartBeat', primary: b('p'), startTs: ts(0), adviseTtlMs: 10 })).toEqual({ type: 'txnHeartBeat', ttlMs: 5000, errors: [] });
    expect(one(e, status('p', ts(0), ts(3000), true))).toMatchObject({ status: 'locked' });
    expect(one(e, status('p', ts(0), ts(5001), true))).toMatchObject({ status: 'rolledBack', action: 'ttlExpireRollback' });
    expect(types(one(e, { type: 'txnHeartBeat', primary: b('p'), startTs: ts(0), adviseTtlMs: 9000 }))).toEqual(['TxnLockNotFound']);
  });

  it('resolveLock commits or rolls back every lock of a start ts in the Region, or the given keys', () => {
    const e = openKv();
    expect(types(one(e, prewrite(['a', 'b', 'c'], ts(1))))).toEqual([]);
    expect(types(one(e, prewrite(['x'], ts(2))))).toEqual([]);
    expect(one(e, { type: 'resolveLock', startTs: ts(1), commitTs: ts(3) })).toEqual({ type: 'resolveLock', resolved: 3 });
    expect(read(e, 'b', ts(4)).version).toBe(ts(3));
    expect(e.mvcc.lock(b('x'))).toBeDefined();
    expect(one(e, { type: 'resolveLock', startTs: ts(2), commitTs: 0n, keys: [b('x'), b('y')] })).toEqual({ type: 'resolveLock', resolved: 1 });
    expect(e.mvcc.lock(b('x'))).toBeUndefined();
    expect(types(one(e, prewrite(['y'], ts(2))))).toEqual(['Rolledback']); // the given key without a lock got a rollback record
    expect(one(e, { type: 'resolveLock', startTs: ts(1), commitTs: ts(3) })).toEqual({ type: 'resolveLock', resolved: 0 });
  });
});

describe('percolator: one-phase commit', () => {
  it('writes the commit records at once; a conflict writes nothing; a retry answers the first commit ts', () => {
    const e = openKv();
    const pw = { ...(prewrite(['a', 'b'], ts(1)) as Extract<TxnCommand, { type: 'prewrite' }>), onePc: true };
    expect(one(e, pw, ts(2))).toEqual({ type: 'prewrite', errors: [], onePcCommitTs: ts(2) });
    expect(e.mvcc.lock(b('a'))).toBeUndefined();
    expect(read(e, 'b', ts(2)).version).toBe(ts(2));
    expect(one(e, pw, ts(9))).toEqual({ type: 'prewrite', errors: [], onePcCommitTs: ts(2) });
    const late = { ...(prewrite(['b', 'c'], ts(1, 5)) as Extract<TxnCommand, { type: 'prewrite' }>), onePc: true };
    expect(types(one(e, late, ts(3)))).toEqual(['WriteConflict']);
    expect(read(e, 'c', ts(9))).toEqual({ errors: [] });
    expect(types(one(e, prewrite(['d'], ts(4))))).toEqual([]);
    const locked = { ...(prewrite(['d'], ts(5)) as Extract<TxnCommand, { type: 'prewrite' }>), onePc: true };
    expect(types(one(e, locked, ts(6)))).toEqual(['KeyIsLocked']);
    expect(read(e, 'd', ts(3))).toEqual({ errors: [] });
  });
});

describe('snapshot reads', () => {
  it('scan returns the newest visible version per key in order, honours limit and keyOnly, and reports blocking locks only', () => {
    const e = openKv();
    txnCommit(e, ['a', 'b', 'c', 'd'], ts(1), ts(2), 'old');
    txnCommit(e, ['b'], ts(3), ts(4), 'new');
    expect(types(one(e, prewrite(['c'], ts(5), { op: 'delete' })))).toEqual([]);
    expect(types(one(e, commit(['c'], ts(5), ts(6))))).toEqual([]);
    const at = (t: bigint, limit = 10) => snapshotScan(e.mvcc, b('a'), b(''), limit, t, false).pairs.map((p) => `${p.key}=${p.value}@${p.version === ts(2) ? 2 : p.version === ts(4) ? 4 : '?'}`);
    expect(at(ts(3))).toEqual(['a=old@2', 'b=old@2', 'c=old@2', 'd=old@2']);
    expect(at(ts(9))).toEqual(['a=old@2', 'b=new@4', 'd=old@2']);
    expect(at(ts(9), 2)).toEqual(['a=old@2', 'b=new@4']);
    expect(snapshotScan(e.mvcc, b('b'), b('d'), 10, ts(9), true).pairs.map((p) => [String(p.key), p.value.length])).toEqual([['b', 0]]);
    expect(types(one(e, prewrite(['d'], ts(7))))).toEqual([]);
    expect(snapshotScan(e.mvcc, b('a'), b(''), 10, ts(9), false).errors.map((x) => x.type)).toEqual(['KeyIsLocked']);
    expect(snapshotScan(e.mvcc, b('a'), b(''), 2, ts(9), false).errors).toEqual([]); // the lock is past what a limit-2 scan covers
    expect(snapshotScan(e.mvcc, b('a'), b(''), 10, ts(6), false).errors).toEqual([]); // the lock is above the read ts
    expect(snapshotGet(e.mvcc, [b('a'), b('d')], ts(9))).toMatchObject({ pairs: [], errors: [{ type: 'KeyIsLocked' }] });
  });
});

function reg(id: number, start: string, end: string): Region {
  return { id, startKey: b(start), endKey: b(end), epoch: { confVer: 1, version: 1 }, peers: [{ id: id * 10, storeId: 1, role: 'voter' }] };
}

describe('MVCC and Regions', () => {
  it('a Region snapshot carries its transactional rows to another engine; removal clears them; size and split key count them', () => {
    const src = openKv();
    const meta = new KvWriteBatch().setRegionState(1, { region: reg(1, '', ''), state: 'normal' });
    src.write(meta);
    for (let i = 0; i < 40; i++) txnCommit(src, [`k${String(i).padStart(2, '0')}`], ts(10 + 2 * i), ts(11 + 2 * i), 'z'.repeat(i % 2 === 0 ? 10 : 300));
    expect(types(one(src, prewrite(['k05'], ts(200), { primary: 'k00' })))).toEqual([]);
    const { pairs, txn } = src.snapshotRangeData(b('k00'), b('k20'));
    expect(pairs).toEqual([]);
    expect([txn.locks.length, txn.writes.length, txn.data.length]).toEqual([1, 20, 10]);
    const dst = openKv();
    dst.ingestSnapshot(2, b('k00'), b('k20'), pairs, { appliedIndex: 7, truncatedIndex: 7, truncatedTerm: 1 }, { region: reg(2, 'k00', 'k20'), state: 'normal' }, txn);
    expect(snapshotGet(dst.mvcc, [b('k03')], ts(500)).pairs[0]?.value.length).toBe(300);
    expect(snapshotGet(dst.mvcc, [b('k05')], ts(500)).errors.map((x) => x.type)).toEqual(['KeyIsLocked']);
    expect(snapshotGet(dst.mvcc, [b('k25')], ts(500)).pairs).toEqual([]);
    const stats = dst.approximateRegionStats(2)!;
    expect(stats.keys).toBe(20);
    expect(stats.bytes).toBeGreaterThan(10 * 300);
    const split = src.approximateSplitKey(b(''), b(''));
    expect(split.stats.keys).toBe(40);
    expect(split.key).toBeDefined();
    dst.write(new KvWriteBatch().deleteRegionData(b('k00'), b('k20')));
    expect(dst.snapshotRangeData(b(''), b(''))).toEqual({ pairs: [], txn: { locks: [], writes: [], data: [] } });
    // A raw deleteRange leaves the transactional keyspace alone.
    src.write(new KvWriteBatch().deleteRange(b(''), b('')));
    expect(snapshotGet(src.mvcc, [b('k01')], ts(500)).pairs).toHaveLength(1);
  });

  it('a format-1 file is upgraded when opened: the transactional tables appear, raw data stays', () => {
    const first = openKv();
    first.write(new KvWriteBatch().put(b('raw'), b('kept')));
    const file = first.file;
    first.close();
    const db = new Database(file);
    db.exec("DROP TABLE txn_data; DROP TABLE txn_write; DROP TABLE txn_lock; UPDATE meta SET value = 1 WHERE key = 'format_version'");
    db.close();
    const e = openKv(file);
    expect(e.get(b('raw'))?.toString()).toBe('kept');
    txnCommit(e, ['t'], ts(1), ts(2));
    expect(read(e, 't', ts(3)).version).toBe(ts(2));
    const check = new Database(file, { readonly: true });
    expect(check.prepare("SELECT value FROM meta WHERE key = 'format_version'").pluck().get()).toBe(2);
    check.close();
  });
});
