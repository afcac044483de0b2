import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { type CliChild, startCli } from './helpers';
import { announced, startPlacement, startStore, stopped, type PlacementProc, type StoreProc } from './processes';

// The Redis front on the transactional keyspace (`flotilla redis --keyspace
// txn`) through ioredis and redis-cli, against one real cluster (placement +
// 3 stores) whose keys are split at 'm', so a:* and z:* live in different
// Regions: MULTI/EXEC atomic across them (a concurrent snapshot never sees
// half of an EXEC), WATCH, DISCARD, EXECABORT, the errors, the string
// commands in this mode, and the keyspaces not aliasing.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-redis-txn-'));
let placement: PlacementProc;
const stores: StoreProc[] = [];
let front: CliChild;
let port: number;
let admin: FlotillaClient;
const clients: Redis[] = [];

beforeAll(async () => {
  placement = await startPlacement(join(dir, 'placement'), '127.0.0.1:0');
  stores.push(...(await Promise.all([1, 2, 3].map((i) => startStore(placement.address, join(dir, `store-${i}`))))));
  front = startCli(['redis', '--keyspace', 'txn', '--placement', placement.address, '--listen', '127.0.0.1:0', '--log-level', 'warn']);
  const info = await announced(front, 'flotilla redis');
  expect(info['keyspace']).toBe('txn');
  port = Number((info['address'] as string).split(':').pop());
  admin = await FlotillaClient.connect({ placement: placement.address });
  await admin.split('m');
}, 90_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  admin?.close();
  for (const p of [front, ...stores.map((s) => s.child), placement?.child]) if (p) await stopped(p, 'SIGKILL').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

function connect(): Redis {
  const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

describe('the Redis front on the transactional keyspace', () => {
  it('string and key commands are served from the txn keyspace (not the raw one)', async () => {
    const r = connect();
    expect(await r.set('a:s', 'v1')).toBe('OK');
    expect(await r.get('a:s')).toBe('v1');
    expect(await admin.get('a:s')).toBeNull(); // raw keyspace: untouched
    expect(await (await admin.snapshot()).get('a:s')).toEqual(Buffer.from('v1'));
    expect(await r.set('a:s', 'x', 'NX')).toBeNull();
    expect(await r.set('a:s', 'v2', 'XX', 'GET')).toBe('v1');
    expect(await r.incr('a:n')).toBe(1);
    expect(await r.incrby('a:n', 41)).toBe(42);
    await expect(r.incr('a:s')).rejects.toThrow('ERR value is not an integer or out of range');
    expect(await r.append('a:s', '!')).toBe(3);
    expect(await r.setrange('a:s', 1, 'X')).toBe(3);
    expect(await r.get('a:s')).toBe('vX!');
    expect(await r.getdel('a:s')).toBe('vX!');
    expect(await r.mset('a:m', '1', 'z:m', '2')).toBe('OK');
    expect(await r.mget('a:m', 'z:m', 'a:none')).toEqual(['1', '2', null]);
    // MSETNX across Regions is all or nothing here.
    expect(await r.msetnx('a:x1', '1', 'z:x1', '1')).toBe(1);
    expect(await r.msetnx('a:x2', '1', 'z:x1', '2')).toBe(0);
    expect(await r.exists('a:x2')).toBe(0);
    expect(await r.get('z:x1')).toBe('1');
    expect(await r.del('a:m', 'z:m', 'a:none')).toBe(2);
    expect(await r.scan('0', 'MATCH', 'a:x*', 'COUNT', '100')).toEqual(['0', ['a:x1']]);
    // Concurrent INCRs of one key from many connections: none lost (combined optimistic transactions).
    const rs = Array.from({ length: 5 }, () => connect());
    await Promise.all(rs.map(async (c) => { for (let i = 0; i < 10; i++) await c.incr('z:counter'); }));
    expect(await r.get('z:counter')).toBe('50');
  });

  it('MULTI/EXEC runs in one transaction across Regions: a concurrent snapshot never sees half of it', async () => {
    const r = connect();
    const reader = connect();
    await r.mset('a:bal', '100', 'z:bal', '0');
    let stop = false;
    let reads = 0;
    const torn: string[] = [];
    const watcher = (async () => {
      while (!stop) {
        const [a, z] = (await reader.mget('a:bal', 'z:bal')) as [string, string];
        reads++;
        if (Number(a) + Number(z) !== 100) torn.push(`${a}+${z}`);
      }
    })();
    for (let i = 0; i < 10; i++) {
      const res = await r.multi().decrby('a:bal', 10).incrby('z:bal', 10).get('a:bal').exec();
      expect(res).toEqual([[null, 90 - 10 * i], [null, 10 + 10 * i], [null, String(90 - 10 * i)]]);
    }
    stop = true;
    await watcher;
    expect(torn).toEqual([]);
    expect(reads).toBeGreaterThan(0);
    expect(await r.mget('a:bal', 'z:bal')).toEqual(['0', '100']);
    // Runtime errors are per-command replies; the other commands still apply.
    await r.set('a:str', 'text');
    const mixed = await r.multi().incr('a:str').set('z:after', 'yes').exec();
    expect(mixed![0]![0]?.message).toMatch(/not an integer/);
    expect(mixed![1]).toEqual([null, 'OK']);
    expect(await r.get('z:after')).toBe('yes');
  });

  it('WATCH: EXEC answers null after a concurrent change (nothing applied), commits otherwise; UNWATCH forgets', async () => {
    const r = connect();
    const other = connect();
    await r.set('a:w', '1');
    expect(await r.watch('a:w', 'z:w')).toBe('OK');
    await other.set('z:w', 'changed'); // creating a watched absent key counts as a change
    expect(await r.multi().set('a:w', '2').exec()).toBeNull();
    expect(await r.get('a:w')).toBe('1');
    // No change: commits.
    expect(await r.watch('a:w')).toBe('OK');
    expect(await r.get('a:w')).toBe('1'); // reading it ourselves is no change
    expect(await r.multi().set('a:w', '3').exec()).toEqual([[null, 'OK']]);
    expect(await r.get('a:w')).toBe('3');
    // EXEC cleared the watch: a later change does not abort the next EXEC.
    await other.set('a:w', '4');
    expect(await r.multi().get('a:w').exec()).toEqual([[null, '4']]);
    // UNWATCH forgets.
    await r.watch('a:w');
    await other.set('a:w', '5');
    expect(await r.unwatch()).toBe('OK');
    expect(await r.multi().set('a:w', '6').exec()).toEqual([[null, 'OK']]);
    // A concurrent change racing the EXEC (many rounds): each EXEC either commits on the value it watched or answers null.
    await r.set('z:race', '0');
    let committed = 0;
    let aborted = 0;
    const writer = (async () => {
      for (let i = 0; i < 16; i++) await other.incr('z:race');
    })();
    for (let i = 0; i < 8; i++) {
      await r.watch('z:race');
      const v = Number(await r.get('z:race'));
      const res = await r.multi().set('a:race', String(v)).set('z:race', String(v + 1000)).exec();
      if (res === null) aborted++;
      else committed++;
    }
    await writer;
    expect(committed + aborted).toBe(8);
    const final = Number(await r.get('z:race'));
    // Every committed EXEC added 1000 to a value it read, and no INCR was lost.
    expect(final).toBe(16 + committed * 1000);
  });

  it('DISCARD, EXECABORT on a queue-time error, and the errors of nested MULTI, EXEC/DISCARD without MULTI, WATCH inside MULTI', async () => {
    const r = connect();
    await r.set('a:d', 'before');
    expect(await r.call('MULTI')).toBe('OK');
    expect(await r.call('SET', 'a:d', 'after')).toBe('QUEUED');
    await expect(r.call('MULTI')).rejects.toThrow('ERR MULTI calls can not be nested');
    await expect(r.call('WATCH', 'a:d')).rejects.toThrow('ERR WATCH inside MULTI is not allowed');
    expect(await r.call('DISCARD')).toBe('OK');
    expect(await r.get('a:d')).toBe('before');
    await expect(r.call('EXEC')).rejects.toThrow('ERR EXEC without MULTI');
    await expect(r.call('DISCARD')).rejects.toThrow('ERR DISCARD without MULTI');
    // A syntax error while queueing (unknown command, wrong arity) aborts the whole EXEC.
    expect(await r.call('MULTI')).toBe('OK');
    expect(await r.call('SET', 'a:d', 'after')).toBe('QUEUED');
    await expect(r.call('GET')).rejects.toThrow("ERR wrong number of arguments for 'get' command");
    await expect(r.call('HSET', 'h', 'f', 'v')).rejects.toThrow(/unknown command/);
    await expect(r.call('EXEC')).rejects.toThrow('EXECABORT Transaction discarded because of previous errors.');
    expect(await r.get('a:d')).toBe('before');
    // An empty MULTI/EXEC answers an empty array.
    expect(await r.multi().exec()).toEqual([]);
  });

  const REDIS_CLI = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((p) => existsSync(p));
  const REDIS_BENCHMARK = ['/usr/bin/redis-benchmark', '/usr/local/bin/redis-benchmark'].find((p) => existsSync(p));
  it.skipIf(!REDIS_BENCHMARK)('redis-benchmark -t set,get,incr on one hot key each, pipelined, answers no error (group commit and combining, no TRYAGAIN)', async () => {
    const r = connect();
    const errors = async (): Promise<number> => Number(/total_error_replies:(\d+)/.exec(await r.info('stats'))?.[1] ?? NaN);
    const before = await errors();
    const out = await new Promise<string>((resolve, reject) =>
      execFile(REDIS_BENCHMARK!, ['-p', String(port), '-t', 'set,get,incr', '-n', '600', '-c', '10', '-P', '8', '-q', '--csv'], { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(stdout))),
    );
    expect(out.trim().split('\n').slice(1).map((l) => (JSON.parse(`[${l}]`) as string[])[0])).toEqual(['SET', 'GET', 'INCR']);
    expect(await errors()).toBe(before);
    const counter = Number(await r.get('counter:__rand_int__'));
    expect(counter).toBeGreaterThanOrEqual(600);
    expect(counter).toBeLessThanOrEqual(600 + 10 * 8);
  });

  it.skipIf(!REDIS_CLI)('redis-cli: MULTI / SET / INCR / EXEC', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const p = execFile(REDIS_CLI!, ['-p', String(port)], { timeout: 20_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      p.stdin!.end('MULTI\nSET z:cli hello\nINCR a:cli\nEXEC\nGET z:cli\n');
    });
    expect(out).toBe('OK\nQUEUED\nQUEUED\nOK\n1\nhello\n');
  });
});
