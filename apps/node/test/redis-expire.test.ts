import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient, guardKey, reapIn, runTxn } from '@flotilla/client';
import { killAll, waitFor, type CliChild } from './helpers';
import { startRedisUp } from './redis-up';
import type { ClusterFile } from '../src/cluster-file';

// Key expiry on leases (issue #20 with #18): `flotilla up --stores 3
// --redis-port 0 --redis-keyspace txn`, driven by ioredis and the real
// redis-cli. Keys expire with shared leases whose stored values record the
// lease, so a key re-SET without KEEPTTL, PERSISTed, or deleted and written
// again is detached and survives its old deadline; and, below the Redis
// front, the lease rules for everybody (etcd's): a put without the lease or
// with another detaches the key, also when it races the revocation.
//
// Bounds: a key must be gone within its TTL + REAP_BOUND_MS (the documented
// window and reaper bound, with room for a loaded machine); "survives" ends
// the old lease by revoking it (the same revocation transaction as its
// expiry, without racing a deadline) and reads the keys after it.

const REAP_BOUND_MS = 4_000;
const binary = (name: string): string | undefined => ['/usr/bin', '/usr/local/bin'].map((d) => join(d, name)).find((p) => existsSync(p));
const REDIS_CLI = binary('redis-cli');
if (!REDIS_CLI) console.warn('redis-expire.test.ts: the redis-cli case is SKIPPED: redis-cli not installed (Debian redis-tools)');

const dir = mkdtempSync(join(tmpdir(), 'flotilla-redis-expire-'));
const dataDir = join(dir, 'data');
let up: CliChild | undefined;
let cluster: ClusterFile | undefined;
let port = 0;
let admin: FlotillaClient;
const clients: Redis[] = [];

beforeAll(async () => {
  ({ up, cluster, port } = await startRedisUp(dataDir, ['--redis-keyspace', 'txn']));
  admin = await FlotillaClient.connect({ placement: cluster!.placement.address });
}, 120_000);

afterAll(() => {
  for (const c of clients) c.disconnect();
  admin?.close();
  killAll(up, cluster, []);
  rmSync(dir, { recursive: true, force: true });
});

function connect(): Redis {
  const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

/** leaseOf: the lease the key's stored value carries (null: none; undefined: absent), read below the front. */
async function leaseOf(key: string): Promise<number | null | undefined> {
  const v = await (await admin.snapshot()).getWithVersion(key);
  return v === null ? undefined : v.lease;
}

/** revoked waits until the lease's revocation transaction committed (its guard key is deleted in it, with the keys it deletes). */
async function revoked(lease: number, timeoutMs: number): Promise<void> {
  await waitFor(`lease ${lease}'s revocation to commit`, async () => ((await (await admin.snapshot()).get(guardKey(lease))) === null ? true : null), timeoutMs, 50);
}

/** ttlNear: a TTL in seconds asked a moment ago: Redis rounds the time left, so a slow round trip may show one second less. */
function ttlNear(ttl: number, asked: number): void {
  expect(ttl).toBeGreaterThanOrEqual(asked - 1);
  expect(ttl).toBeLessThanOrEqual(asked);
}

/** gone waits until GET answers nil, within bound ms; returns how long after start it took. */
async function gone(r: Redis, key: string, startMs: number, boundMs: number): Promise<number> {
  await waitFor(`${key} to expire`, async () => ((await r.get(key)) === null ? true : null), boundMs, 50);
  return Date.now() - startMs;
}

describe('Redis key expiry on leases (--keyspace txn)', () => {
  it('EXPIRE/PEXPIRE: TTL and PTTL, the key stays until its deadline and is gone within the bound; -2 and -1', async () => {
    const r = connect();
    expect(await r.ttl('x:none')).toBe(-2);
    expect(await r.pttl('x:none')).toBe(-2);
    expect(await r.expire('x:none', 10)).toBe(0);
    await r.mset('x:k', 'v', 'x:reset', 'r');
    expect(await r.ttl('x:k')).toBe(-1);
    expect(await r.expiretime('x:k')).toBe(-1);
    const t0 = Date.now();
    expect(await r.pexpireat('x:k', t0 + 1_200)).toBe(1);
    const xLease = await leaseOf('x:k');
    // x:reset gets the same deadline (the same lease), then a plain SET: it must outlive that deadline.
    expect(await r.pexpireat('x:reset', t0 + 1_200)).toBe(1);
    expect(await leaseOf('x:reset')).toBe(xLease); // one deadline, one window: one lease
    expect(await r.set('x:reset', 'r2')).toBe('OK');
    const resetInTime = Date.now() < t0 + 1_200;
    const pttlAt = Date.now();
    const pttl = await r.pttl('x:k');
    if (pttlAt < t0 + 1_000) expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(1_200 + 100); // the lease's time left: at most one 100 ms window more than asked
    const ttlAt = Date.now();
    const ttl = await r.ttl('x:k');
    if (ttlAt < t0 + 1_000) expect([0, 1]).toContain(ttl); // (after the deadline on a slow machine it may be -2 already)
    const at = await r.pexpiretime('x:k');
    expect(at).toBeGreaterThanOrEqual(t0 + 1_200 - 50);
    expect(at).toBeLessThanOrEqual(Date.now() + 1_300);
    const read = await r.get('x:k');
    if (Date.now() < t0 + 1_200) expect(read).toBe('v'); // never gone before its deadline
    const took = await gone(r, 'x:k', t0, 1_200 + REAP_BOUND_MS);
    expect(took).toBeGreaterThanOrEqual(1_200);
    if (typeof xLease === 'number') await revoked(xLease, REAP_BOUND_MS); // deleted by its lease's revocation (the guard went with it)
    if (resetInTime) {
      expect(await r.get('x:reset')).toBe('r2'); // its old deadline passed and its old lease was revoked: it stays
      expect(await r.ttl('x:reset')).toBe(-1);
    }
    expect(await r.ttl('x:k')).toBe(-2);
    // EXPIRE with seconds; TTL rounds as Redis does.
    await r.set('x:s', 'v');
    expect(await r.expire('x:s', 100)).toBe(1);
    ttlNear(await r.ttl('x:s'), 100);
    expect(Math.abs((await r.expiretime('x:s')) - Math.round(Date.now() / 1000 + 100))).toBeLessThanOrEqual(1);
    // A non-positive time, or a time in the past, deletes the key (and answers 1).
    expect(await r.expire('x:s', 0)).toBe(1);
    expect(await r.exists('x:s')).toBe(0);
    await r.set('x:s', 'v');
    expect(await r.expireat('x:s', Math.floor(Date.now() / 1000) - 10)).toBe(1);
    expect(await r.exists('x:s')).toBe(0);
    await r.set('x:s', 'v');
    expect(await r.pexpire('x:s', -5)).toBe(1);
    expect(await r.get('x:s')).toBeNull();
  });

  it('a key re-SET without KEEPTTL, PERSISTed, or deleted and written again survives its old deadline; INCR/APPEND/SETRANGE/KEEPTTL keep it', async () => {
    const r = connect();
    await r.mset('y:reset', 'a', 'y:persist', 'b', 'y:del', 'c', 'y:incr', '1', 'y:append', 'x', 'y:keepttl', 'k', 'y:sentinel', 's');
    // Same deadline: the seven keys share one lease (one window). The deadline is far; the lease is ended below by revoking it,
    // which runs the same revocation as its expiry, so the checks do not race a deadline on a loaded machine.
    const at = Date.now() + 60_000;
    for (const k of ['y:reset', 'y:persist', 'y:del', 'y:incr', 'y:append', 'y:keepttl', 'y:sentinel']) expect(await r.pexpireat(k, at)).toBe(1);
    const lease = await leaseOf('y:sentinel');
    expect(typeof lease).toBe('number');
    for (const k of ['y:reset', 'y:persist', 'y:del', 'y:incr', 'y:append', 'y:keepttl']) expect(await leaseOf(k)).toBe(lease);
    expect(await r.set('y:reset', 'a2')).toBe('OK');
    expect(await r.ttl('y:reset')).toBe(-1);
    expect(await r.persist('y:persist')).toBe(1);
    expect(await r.persist('y:persist')).toBe(0);
    expect(await r.ttl('y:persist')).toBe(-1);
    expect(await r.del('y:del')).toBe(1);
    expect(await r.set('y:del', 'c2')).toBe('OK');
    expect(await r.incr('y:incr')).toBe(2);
    expect(await r.append('y:append', 'y')).toBe(2);
    expect(await r.setrange('y:append', 0, 'Z')).toBe(2);
    expect(await r.set('y:keepttl', 'k2', 'KEEPTTL')).toBe('OK');
    for (const k of ['y:incr', 'y:append', 'y:keepttl']) {
      expect(await leaseOf(k)).toBe(lease); // rewritten with the lease they had
      expect(await r.pttl(k)).toBeGreaterThan(50_000); // still expiring
    }
    for (const k of ['y:reset', 'y:persist', 'y:del']) expect(await leaseOf(k)).toBeNull();
    await admin.lease.revoke(lease as number); // resolves once the revocation transaction committed
    expect(await (await admin.snapshot()).get(guardKey(lease as number))).toBeNull();
    expect(await r.mget('y:reset', 'y:persist', 'y:del', 'y:sentinel', 'y:incr', 'y:append', 'y:keepttl')).toEqual(['a2', 'b', 'c2', null, null, null, null]);
    expect(await r.ttl('y:reset')).toBe(-1);
    // The values read below the front carry no lease encoding.
    expect(Buffer.from((await (await admin.snapshot()).get('y:reset'))!).toString()).toBe('a2');
  });

  it('SET EX/PX/EXAT/PXAT (with NX/XX/GET), SETEX, PSETEX, GETEX; a passed EXAT sets and at once expires', async () => {
    const r = connect();
    expect(await r.set('z:ex', 'v', 'EX', 100)).toBe('OK');
    ttlNear(await r.ttl('z:ex'), 100);
    expect(await r.set('z:px', 'v', 'PX', 50_000)).toBe('OK');
    ttlNear(await r.ttl('z:px'), 50);
    expect(await r.set('z:exat', 'v', 'EXAT', Math.floor(Date.now() / 1000) + 200)).toBe('OK');
    expect(Math.abs((await r.ttl('z:exat')) - 200)).toBeLessThanOrEqual(1);
    expect(await r.set('z:pxat', 'v', 'PXAT', Date.now() + 300_000)).toBe('OK');
    expect(Math.abs((await r.ttl('z:pxat')) - 300)).toBeLessThanOrEqual(1);
    expect(await r.call('SET', 'z:ex', 'w', 'NX', 'EX', '10')).toBeNull();
    expect(await r.call('SET', 'z:ex', 'w', 'XX', 'GET', 'EX', '10')).toBe('v');
    ttlNear(await r.ttl('z:ex'), 10);
    expect(await r.call('SET', 'z:nx', 'v', 'XX', 'EX', '10')).toBeNull();
    expect(await r.exists('z:nx')).toBe(0);
    // SET without KEEPTTL ends the expiry, with NX/XX/GET too.
    expect(await r.set('z:ex', 'x', 'XX')).toBe('OK');
    expect(await r.ttl('z:ex')).toBe(-1);
    expect(await r.set('z:px', 'x', 'GET')).toBe('v');
    expect(await r.ttl('z:px')).toBe(-1);
    expect(await r.getset('z:exat', 'x')).toBe('v');
    expect(await r.ttl('z:exat')).toBe(-1);
    // A passed absolute time: OK, and the key is deleted (GET answers the old value).
    expect(await r.call('SET', 'z:pxat', 'gone', 'GET', 'PXAT', String(Date.now() - 1_000))).toBe('v');
    expect(await r.exists('z:pxat')).toBe(0);
    expect(await r.setex('z:setex', 100, 'v')).toBe('OK');
    ttlNear(await r.ttl('z:setex'), 100);
    expect(await r.psetex('z:psetex', 100_000, 'v')).toBe('OK');
    ttlNear(await r.ttl('z:psetex'), 100);
    // GETEX.
    expect(await r.getex('z:none', 'EX', 10)).toBeNull();
    expect(await r.exists('z:none')).toBe(0);
    await r.set('z:getex', 'g');
    expect(await r.getex('z:getex')).toBe('g');
    expect(await r.ttl('z:getex')).toBe(-1);
    expect(await r.getex('z:getex', 'EX', 100)).toBe('g');
    ttlNear(await r.ttl('z:getex'), 100);
    expect(await r.getex('z:getex', 'PX', 200_000)).toBe('g');
    ttlNear(await r.ttl('z:getex'), 200);
    expect(await r.getex('z:getex', 'EXAT', Math.floor(Date.now() / 1000) + 300)).toBe('g');
    expect(Math.abs((await r.ttl('z:getex')) - 300)).toBeLessThanOrEqual(1);
    expect(await r.getex('z:getex', 'PERSIST')).toBe('g');
    expect(await r.ttl('z:getex')).toBe(-1);
    expect(await r.getex('z:getex', 'PXAT', Date.now() - 1)).toBe('g');
    expect(await r.exists('z:getex')).toBe(0);
  });

  it('concurrent SET EX from many connections (group-committed): every key carries a lease with its TTL, the later of two writes of a key wins, and they expire', async () => {
    const rs = Array.from({ length: 8 }, () => connect());
    const start = Date.now();
    await Promise.all(
      rs.map((r, c) => {
        const p = r.pipeline();
        for (let i = 0; i < 25; i++) p.set(`grp:${c}:${i}`, `v${c}:${i}`, 'PX', 5000);
        p.set(`grp:${c}:0`, 'later', 'PX', 5000);
        p.setex(`grp:sx:${c}`, 5, 'x');
        return p.exec();
      }),
    );
    const r = rs[0]!;
    for (let c = 0; c < rs.length; c++) {
      expect(await r.get(`grp:${c}:0`)).toBe('later');
      expect(await r.get(`grp:${c}:24`)).toBe(`v${c}:24`);
      expect(typeof (await leaseOf(`grp:${c}:7`))).toBe('number');
      const pttl = await r.pttl(`grp:${c}:3`);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(5000 + 1000); // the lease ends at most a window (100 ms) and a grant's round trip after the deadline
      expect(typeof (await leaseOf(`grp:sx:${c}`))).toBe('number');
    }
    // Each is gone within the bound (keys of one pipeline may share a lease or fall in the next window's; reads expire them at their lease's end).
    for (const k of ['grp:7:24', 'grp:0:0', 'grp:3:10', 'grp:sx:5']) await gone(r, k, start, start + 5000 + REAP_BOUND_MS - Date.now());
    expect(await r.exists('grp:0:0', 'grp:3:10', 'grp:7:24')).toBe(0);
  });

  it('EXPIRE NX/XX/GT/LT follow Redis 7 (no expiry counts as infinite for GT and LT)', async () => {
    const r = connect();
    await r.set('c:k', 'v');
    expect(await r.call('EXPIRE', 'c:k', '100', 'XX')).toBe(0);
    expect(await r.call('EXPIRE', 'c:k', '100', 'GT')).toBe(0);
    expect(await r.ttl('c:k')).toBe(-1);
    expect(await r.call('EXPIRE', 'c:k', '100', 'LT')).toBe(1);
    ttlNear(await r.ttl('c:k'), 100);
    expect(await r.call('EXPIRE', 'c:k', '200', 'NX')).toBe(0);
    expect(await r.call('EXPIRE', 'c:k', '50', 'GT')).toBe(0);
    expect(await r.call('EXPIRE', 'c:k', '200', 'GT')).toBe(1);
    ttlNear(await r.ttl('c:k'), 200);
    expect(await r.call('EXPIRE', 'c:k', '300', 'LT')).toBe(0);
    expect(await r.call('EXPIRE', 'c:k', '150', 'LT', 'XX')).toBe(1);
    ttlNear(await r.ttl('c:k'), 150);
    expect(await r.persist('c:k')).toBe(1);
    expect(await r.call('EXPIRE', 'c:k', '100', 'NX')).toBe(1);
    ttlNear(await r.ttl('c:k'), 100);
  });

  it('bad input answers the Redis error text and applies nothing', async () => {
    const r = connect();
    await r.set('e:k', 'v');
    const errors: [string[], RegExp][] = [
      [['EXPIRE', 'e:k', 'abc'], /^ERR value is not an integer or out of range$/],
      [['EXPIRE', 'e:k', '1.5'], /^ERR value is not an integer or out of range$/],
      [['EXPIRE', 'e:k', '9223372036854775807'], /^ERR invalid expire time in 'expire' command$/],
      [['PEXPIRE', 'e:k', '9223372036854775807'], /^ERR invalid expire time in 'pexpire' command$/],
      [['EXPIRE', 'e:k', '10', 'NX', 'XX'], /^ERR NX and XX, GT or LT options at the same time are not compatible$/],
      [['EXPIRE', 'e:k', '10', 'GT', 'LT'], /^ERR GT and LT options at the same time are not compatible$/],
      [['EXPIRE', 'e:k', '10', 'FOO'], /^ERR Unsupported option FOO$/],
      [['EXPIRE', 'e:k', '100000'], /more than 24 h ahead is not supported/],
      [['SET', 'e:k', 'w', 'EX', '0'], /^ERR invalid expire time in 'set' command$/],
      [['SET', 'e:k', 'w', 'PX', '-1'], /^ERR invalid expire time in 'set' command$/],
      [['SET', 'e:k', 'w', 'EXAT', '0'], /^ERR invalid expire time in 'set' command$/],
      [['SET', 'e:k', 'w', 'EX', 'x'], /^ERR value is not an integer or out of range$/],
      [['SET', 'e:k', 'w', 'EX'], /^ERR syntax error$/],
      [['SET', 'e:k', 'w', 'EX', '10', 'PX', '10'], /^ERR syntax error$/],
      [['SET', 'e:k', 'w', 'KEEPTTL', 'EX', '10'], /^ERR syntax error$/],
      [['SET', 'e:k', 'w', 'PERSIST'], /^ERR syntax error$/],
      [['SETEX', 'e:k', '0', 'w'], /^ERR invalid expire time in 'setex' command$/],
      [['PSETEX', 'e:k', '-5', 'w'], /^ERR invalid expire time in 'psetex' command$/],
      [['SETEX', 'e:k', 'ten', 'w'], /^ERR value is not an integer or out of range$/],
      [['GETEX', 'e:k', 'EX', '0'], /^ERR invalid expire time in 'getex' command$/],
      [['GETEX', 'e:k', 'EX', '10', 'PERSIST'], /^ERR syntax error$/],
      [['GETEX', 'e:k', 'KEEPTTL'], /^ERR syntax error$/],
      [['TTL'], /^ERR wrong number of arguments for 'ttl' command$/],
    ];
    for (const [args, want] of errors) await expect(r.call(args[0]!, ...args.slice(1)), args.join(' ')).rejects.toThrow(want);
    expect(await r.get('e:k')).toBe('v');
    expect(await r.ttl('e:k')).toBe(-1);
  });

  it('MULTI/EXEC with expiry commands runs them in its one transaction', async () => {
    const r = connect();
    const res = await r.multi().set('m:a', '1', 'PX', 100_000).set('m:b', '2').expire('m:b', 200).ttl('m:a').ttl('m:b').persist('m:a').ttl('m:a').getex('m:b', 'EX', 300).exec();
    expect(res!.map((e) => e[0])).toEqual(Array(8).fill(null));
    const values = res!.map((e) => e[1]);
    expect([values[0], values[1], values[2], values[5], values[6], values[7]]).toEqual(['OK', 'OK', 1, 1, -1, '2']);
    ttlNear(values[3] as number, 100);
    ttlNear(values[4] as number, 200);
    ttlNear(await r.ttl('m:b'), 300);
    expect(await r.ttl('m:a')).toBe(-1);
    // A short expiry set inside EXEC goes like any other.
    const t0 = Date.now();
    expect(await r.multi().set('m:short', 'x').pexpire('m:short', 800).exec()).toEqual([[null, 'OK'], [null, 1]]);
    await gone(r, 'm:short', t0, 800 + REAP_BOUND_MS);
  });

  it.skipIf(!REDIS_CLI)('redis-cli: set ex / ttl / pttl / persist / expire as a user types them', async () => {
    const cli = (...args: string[]): Promise<string> =>
      new Promise((resolve) => execFile(REDIS_CLI!, ['-p', String(port), ...args], { timeout: 20_000 }, (_e, stdout, stderr) => resolve(stdout + stderr)));
    expect(await cli('set', 'cli:k', 'v', 'ex', '100')).toBe('OK\n');
    ttlNear(Number(await cli('ttl', 'cli:k')), 100);
    expect(Number(await cli('pttl', 'cli:k'))).toBeGreaterThan(99_000);
    expect(await cli('persist', 'cli:k')).toBe('1\n');
    expect(await cli('ttl', 'cli:k')).toBe('-1\n');
    expect(await cli('expire', 'cli:k', '100', 'gt')).toBe('0\n');
    expect(await cli('ttl', 'cli:nothing')).toBe('-2\n');
    expect(await cli('set', 'cli:k', 'v', 'ex', '0')).toContain("ERR invalid expire time in 'set' command");
  });
});

describe('lease rules below the front (etcd): a put without the lease, or with another, detaches the key; a delete ends it', () => {
  it('overwrite without the lease, delete then write, and a put with another lease all survive the revocation', async () => {
    const a = await admin.lease.grant(60_000);
    const b = await admin.lease.grant(60_000);
    await admin.lease.put('d:plain', 'v', a.id);
    await admin.lease.put('d:deleted', 'v', a.id);
    await admin.lease.put('d:other', 'v', a.id);
    await admin.lease.put('d:kept', 'v', a.id);
    await admin.txn((tx) => tx.put('d:plain', 'plain'));
    await admin.txn((tx) => tx.delete('d:deleted'));
    await admin.txn((tx) => tx.put('d:deleted', 'again'));
    await admin.lease.put('d:other', 'b', b.id);
    expect(await leaseOf('d:other')).toBe(b.id);
    await admin.lease.revoke(a.id);
    const snap = await admin.snapshot();
    const text = async (k: string): Promise<string | null> => {
      const v = await snap.get(k);
      return v === null ? null : Buffer.from(v).toString();
    };
    expect([await text('d:plain'), await text('d:deleted'), await text('d:other'), await text('d:kept')]).toEqual(['plain', 'again', 'b', null]);
    await admin.lease.revoke(b.id);
    expect(await (await admin.snapshot()).get('d:other')).toBeNull();
  });

  it('a plain write committed inside the revocation transaction makes it conflict and run again, and then it keeps the key', async () => {
    const l = await admin.lease.grant(60_000);
    await admin.lease.put('r:k', 'leased', l.id);
    let wrote = false;
    const out = await runTxn(admin.txnTransport(), async (tx) => {
      const r = await reapIn(tx, l.id, [Buffer.from('r:k')]);
      if (!wrote) {
        wrote = true;
        await admin.txn((t2) => t2.put('r:k', 'plain')); // commits after the revocation's start ts
      }
      return r;
    });
    expect(out.attempts).toBe(2);
    expect(out.value).toEqual({ deleted: 0 });
    expect(Buffer.from((await (await admin.snapshot()).get('r:k'))!).toString()).toBe('plain');
    await admin.lease.revoke(l.id).catch(() => {}); // its guard is already gone; placement's own reap keeps the key too
    expect(Buffer.from((await (await admin.snapshot()).get('r:k'))!).toString()).toBe('plain');
  });

  it('a put with the lease committed inside the revocation transaction (on a key it read as detached) makes it run again and delete the key', async () => {
    const l = await admin.lease.grant(60_000);
    await admin.lease.put('r:j', 'leased', l.id);
    await admin.txn((tx) => tx.put('r:j', 'plain')); // detached: the revocation would keep it
    let wrote = false;
    const out = await runTxn(admin.txnTransport(), async (tx) => {
      const r = await reapIn(tx, l.id, [Buffer.from('r:j')]);
      if (!wrote) {
        wrote = true;
        await admin.lease.put('r:j', 'leased again', l.id); // the guard is still there at its start ts: it writes
      }
      return r;
    });
    expect(out.attempts).toBe(2);
    expect(out.value).toEqual({ deleted: 1 });
    expect(await (await admin.snapshot()).get('r:j')).toBeNull();
    await admin.lease.revoke(l.id).catch(() => {});
  });

  it('a watch and a snapshot read see the value, not its lease encoding', async () => {
    const l = await admin.lease.grant(60_000);
    const from = (await admin.snapshot()).ts;
    await admin.lease.put('w:k', 'hello', l.id);
    const w = await admin.watch('w:', { fromRevision: from, prevValue: true });
    await admin.lease.put('w:k', 'again', l.id);
    const seen: string[] = [];
    for await (const e of w) {
      if ('key' in e && e.type === 'put') seen.push(`${Buffer.from(e.value!).toString()}<${e.prevValue ? Buffer.from(e.prevValue).toString() : ''}`);
      if (seen.length === 2) break;
    }
    w.close();
    expect(seen).toEqual(['hello<', 'again<hello']);
    expect(Buffer.from((await (await admin.snapshot()).get('w:k'))!).toString()).toBe('again');
    await admin.lease.revoke(l.id);
  });
});
