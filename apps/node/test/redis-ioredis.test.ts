import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { makeLogger } from '../src/logger';
import { startRedisFront, type RedisFront } from '../src/redis/server';
import { type CliChild, startCli, waitFor } from './helpers';
import { announced, startPlacement, startStore, stopped, type PlacementProc, type StoreProc } from './processes';

// The Redis front through ioredis (RESP3 by default, RESP2 on request)
// against one real cluster: `flotilla placement` + 3 `flotilla store` +
// `flotilla redis`, all with an API token, started once for the file.
// Every supported command, pipelines, the refusals (leases, transactions),
// and the errors; then the connection limits, on a second front started
// in this process with small bounds.

const TOKEN = 'redis-test-token-7d1c0a5e';
const dir = mkdtempSync(join(tmpdir(), 'flotilla-redis-io-'));
let placement: PlacementProc;
const stores: StoreProc[] = [];
let front: CliChild;
let port: number;
const clients: Redis[] = [];

beforeAll(async () => {
  placement = await startPlacement(join(dir, 'placement'), '127.0.0.1:0', ['--token', TOKEN]);
  stores.push(...(await Promise.all([1, 2, 3].map((i) => startStore(placement.address, join(dir, `store-${i}`), ['--token', TOKEN])))));
  front = startCli(['redis', '--placement', placement.address, '--listen', '127.0.0.1:0', '--log-level', 'warn'], { env: { FLOTILLA_TOKEN: TOKEN } });
  const info = await announced(front, 'flotilla redis');
  port = Number((info['address'] as string).split(':').pop());
}, 90_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const p of [front, ...stores.map((s) => s.child), placement?.child]) if (p) await stopped(p, 'SIGKILL').catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

/** connect opens an ioredis client (closed after the file); lazy and without retries, so failures surface at once. */
function connect(opts: { protocol?: 2 | 3; password?: string; readyCheck?: boolean } = {}): Redis {
  const c = new Redis({ port, host: '127.0.0.1', password: opts.password ?? TOKEN, protocol: opts.protocol ?? 3, maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true, enableReadyCheck: opts.readyCheck ?? true });
  c.on('error', () => {}); // expected for the refused connections below; each test asserts on its own replies
  clients.push(c);
  return c;
}

/** raw sends bytes on a plain socket and collects everything until the server closes it (bounded). */
function raw(bytes: Buffer | string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`server did not close within ${timeoutMs} ms; got ${JSON.stringify(out)}`));
    }, timeoutMs);
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.on('error', () => {});
    s.write(bytes);
  });
}

describe('the Redis front through ioredis', () => {
  it('strings: GET SET (NX XX GET) SETNX GETSET GETDEL MGET MSET MSETNX APPEND STRLEN SETRANGE GETRANGE, binary values', async () => {
    const r = connect();
    await r.connect();
    expect(await r.ping()).toBe('PONG');
    expect(await r.echo('hi')).toBe('hi');
    expect(await r.set('s:k', 'v1')).toBe('OK');
    expect(await r.get('s:k')).toBe('v1');
    expect(await r.get('s:missing')).toBeNull();
    expect(await r.set('s:k', 'v2', 'NX')).toBeNull();
    expect(await r.set('s:new', 'n', 'NX')).toBe('OK');
    expect(await r.set('s:absent', 'x', 'XX')).toBeNull();
    expect(await r.get('s:absent')).toBeNull();
    expect(await r.set('s:k', 'v3', 'XX', 'GET')).toBe('v1');
    expect(await r.set('s:k2', 'a', 'GET')).toBeNull();
    expect(await r.setnx('s:k', 'no')).toBe(0);
    expect(await r.setnx('s:nx', 'yes')).toBe(1);
    expect(await r.getset('s:k', 'v4')).toBe('v3');
    expect(await r.getdel('s:k')).toBe('v4');
    expect(await r.getdel('s:k')).toBeNull();
    expect(await r.mset('s:a', '1', 's:b', '2', 's:a', '3')).toBe('OK');
    expect(await r.mget('s:a', 's:b', 's:none')).toEqual(['3', '2', null]);
    expect(await r.msetnx('s:m1', 'x')).toBe(1);
    expect(await r.msetnx('s:m1', 'y')).toBe(0);
    await expect(r.msetnx('s:m2', 'x', 's:m3', 'y')).rejects.toThrow(/MSETNX of more than one key needs the transactional keyspace.*--keyspace txn/);
    expect(await r.exists('s:m2', 's:m3')).toBe(0);
    expect(await r.append('s:ap', 'Hello')).toBe(5);
    expect(await r.append('s:ap', ' World')).toBe(11);
    expect(await r.strlen('s:ap')).toBe(11);
    expect(await r.strlen('s:none')).toBe(0);
    expect(await r.getrange('s:ap', 0, 4)).toBe('Hello');
    expect(await r.getrange('s:ap', -5, -1)).toBe('World');
    expect(await r.setrange('s:ap', 6, 'Redis')).toBe(11);
    expect(await r.get('s:ap')).toBe('Hello Redis');
    expect(await r.setrange('s:pad', 3, 'x')).toBe(4);
    expect(await r.getBuffer('s:pad')).toEqual(Buffer.from([0, 0, 0, 0x78]));
    expect(await r.setrange('s:nothing', 0, '')).toBe(0);
    expect(await r.exists('s:nothing')).toBe(0);
    const bin = Buffer.from([0, 255, 13, 10, 36, 42]);
    expect(await r.set(Buffer.from([1, 2, 0]), bin)).toBe('OK');
    expect(await r.getBuffer(Buffer.from([1, 2, 0]))).toEqual(bin);
    expect(await r.type('s:a')).toBe('string');
    expect(await r.type('s:none')).toBe('none');
  });

  it('counters: INCR INCRBY DECR DECRBY, with Redis errors for non-integers and overflow', async () => {
    const r = connect();
    expect(await r.incr('c:n')).toBe(1);
    expect(await r.incrby('c:n', 41)).toBe(42);
    expect(await r.decr('c:n')).toBe(41);
    expect(await r.decrby('c:n', 50)).toBe(-9);
    await r.set('c:text', 'abc');
    await expect(r.incr('c:text')).rejects.toThrow('ERR value is not an integer or out of range');
    await expect(r.incrby('c:n', 'x' as unknown as number)).rejects.toThrow('ERR value is not an integer or out of range');
    await r.set('c:max', '9223372036854775807');
    await expect(r.incr('c:max')).rejects.toThrow('ERR increment or decrement would overflow');
    expect(await r.get('c:max')).toBe('9223372036854775807');
    await expect(r.decrby('c:n', '-9223372036854775808' as unknown as number)).rejects.toThrow('ERR decrement would overflow');
  });

  it('keys: DEL/UNLINK count what existed, EXISTS counts repeats, SCAN walks in key order with MATCH and COUNT, DBSIZE is an estimate', async () => {
    const r = connect();
    await r.mset('d:1', 'a', 'd:2', 'b');
    expect(await r.del('d:1', 'd:2', 'd:1', 'd:none')).toBe(2);
    await r.set('d:3', 'c');
    expect(await r.unlink('d:3')).toBe(1);
    await r.set('d:4', 'x');
    expect(await r.exists('d:4', 'd:4', 'd:none')).toBe(2);
    const users = Array.from({ length: 25 }, (_, i) => `user:${String(i).padStart(2, '0')}`);
    await r.mset(...users.flatMap((u) => [u, 'v']));
    await r.mset('usex', 'v', 'uses', 'v');
    const seen: string[] = [];
    let cursor = '0';
    let calls = 0;
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', 'user:*', 'COUNT', 10);
      seen.push(...keys);
      cursor = next;
      calls++;
    } while (cursor !== '0' && calls < 20);
    expect(seen).toEqual(users);
    expect(calls).toBe(3);
    const streamed: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const s = r.scanStream({ match: 'user:1?', count: 3 });
      s.on('data', (keys: string[]) => streamed.push(...keys));
      s.on('end', () => resolve());
      s.on('error', reject);
    });
    expect(streamed).toEqual(users.slice(10, 20));
    const [, page] = await r.scan('0', 'MATCH', '*:0[0-2]', 'COUNT', 1000);
    expect(page).toEqual(['user:00', 'user:01', 'user:02']);
    expect((await r.scan('0', 'TYPE', 'hash'))[1]).toEqual([]);
    await expect(r.scan('987654321')).rejects.toThrow(/unknown or expired cursor/);
    await expect(r.scan('abc')).rejects.toThrow('ERR invalid cursor');
    expect(await r.dbsize()).toBeGreaterThanOrEqual(0);
    const info = await r.info('keyspace');
    expect(info).toMatch(/db0:keys=\d+,expires=0,avg_ttl=0,keys_estimated=1/);
    expect(info).toContain('not an exact count');
  });

  it('pipelines: replies come back in order, and a later command sees an earlier one', async () => {
    const r = connect();
    const res = await r.pipeline().set('p:k', '1').incr('p:k').get('p:k').append('p:k', 'x').get('p:k').del('p:k').get('p:k').exec();
    expect(res?.map(([err, v]) => err?.message ?? v)).toEqual(['OK', 2, '2', 2, '2x', 1, null]);
    const withError = await r.pipeline().set('p:e', 'a').incr('p:e').get('p:e').exec();
    expect(withError?.[1]?.[0]?.message).toBe('ERR value is not an integer or out of range');
    expect(withError?.[2]?.[1]).toBe('a');
  });

  it('a pipelined run of plain SETs or GETs is one request when its keys share a Region, and still in order when a split puts them in two', async () => {
    const r = connect();
    const batched = async (): Promise<number> => Number(/flotilla_batched_commands:(\d+)/.exec(await r.info('stats'))?.[1]);
    const pipelined = async (value: string): Promise<unknown[]> => {
      const p = r.pipeline();
      for (let i = 0; i < 50; i++) p.set(`b:${String(i).padStart(2, '0')}`, `${value}${i}`);
      for (let i = 0; i < 50; i++) p.get(`b:${String(i).padStart(2, '0')}`);
      return (await p.exec())!.map(([err, v]) => err?.message ?? v);
    };
    const expected = (value: string): unknown[] => [...Array.from({ length: 50 }, () => 'OK'), ...Array.from({ length: 50 }, (_, i) => `${value}${i}`)];
    const before = await batched();
    expect(await pipelined('v')).toEqual(expected('v'));
    expect(await batched()).toBeGreaterThan(before);
    const admin = await FlotillaClient.connect({ placement: placement.address, token: TOKEN });
    try {
      await admin.split('b:25'); // the front's client still routes b:* to one Region: its first request meets the split
    } finally {
      admin.close();
    }
    expect(await pipelined('w')).toEqual(expected('w'));
  });

  it('INCR is atomic under contention: 4 connections x 100 pipelined INCRs of one key give every value once', async () => {
    const conns = [connect(), connect(), connect({ protocol: 2 }), connect({ protocol: 2 })];
    const batches = await Promise.all(conns.map(async (c) => {
      const p = c.pipeline();
      for (let i = 0; i < 100; i++) p.incr('hot:counter');
      return (await p.exec())!.map(([err, v]) => (err ? err.message : (v as number)));
    }));
    const all = batches.flat();
    expect(all.filter((v) => typeof v !== 'number')).toEqual([]);
    expect([...all].sort((a, b) => (a as number) - (b as number))).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect(await conns[0]!.get('hot:counter')).toBe('400');
  });

  it('connection commands: HELLO, CLIENT, SELECT, COMMAND, CONFIG GET, INFO, in RESP2 and RESP3', async () => {
    const r3 = connect();
    const r2 = connect({ protocol: 2 });
    const hello = (await r3.call('HELLO', '3')) as unknown[];
    expect(hello).toEqual(expect.arrayContaining(['server', 'flotilla', 'proto', 3, 'mode', 'standalone']));
    expect(await r2.call('HELLO')).toEqual(expect.arrayContaining(['proto', 2]));
    await expect(r2.call('HELLO', '4')).rejects.toThrow('NOPROTO unsupported protocol version');
    expect(await r3.client('SETNAME', 'tester')).toBe('OK');
    expect(await r3.client('GETNAME')).toBe('tester');
    await expect(r3.client('SETNAME', 'has space')).rejects.toThrow(/cannot contain spaces/);
    expect(typeof (await r3.client('ID'))).toBe('number');
    expect(await r3.client('LIST')).toContain('name=tester');
    expect(await r3.client('LIST')).toContain('lib-name=ioredis');
    expect(await r2.select(0)).toBe('OK');
    await expect(r2.select(1)).rejects.toThrow(/DB index is out of range/);
    const count = (await r2.call('COMMAND', 'COUNT')) as number;
    expect(count).toBeGreaterThanOrEqual(30);
    const docs = (await r3.call('COMMAND', 'DOCS', 'get')) as unknown[];
    expect(docs[0]).toBe('get');
    expect(docs[1]).toEqual(expect.arrayContaining(['summary', 'group', 'string']));
    const info = (await r2.command('INFO', 'incr')) as unknown[][];
    expect(info[0]!.slice(0, 2)).toEqual(['incr', 2]);
    expect(await r2.config('GET', 'save')).toEqual(['save', '']);
    const all = await r2.info();
    expect(all).toMatch(/# Server\r\nredis_version:7\.0\.0\r\n/);
    expect(all).toContain('loading:0');
    expect(all).toMatch(/connected_clients:\d+/);
    expect(await r3.client('INFO')).toMatch(/^id=\d+ addr=127\.0\.0\.1:\d+ .*name=tester .*resp=3/);
    expect(await r2.quit()).toBe('OK');
  });

  it('refusals and errors: leases, transactions, SUBSCRIBE, unknown commands, arity, empty keys, AUTH', async () => {
    const r = connect();
    // Key expiry lives on leases, in the transactional keyspace: the raw front refuses it and names --keyspace txn.
    await expect(r.set('e:k', 'v', 'EX', 10)).rejects.toThrow(/SET EX needs the transactional keyspace.*--keyspace txn/);
    await expect(r.set('e:k', 'v', 'KEEPTTL')).rejects.toThrow(/SET KEEPTTL needs the transactional keyspace/);
    expect(await r.exists('e:k')).toBe(0);
    await expect(r.expire('e:k', 10)).rejects.toThrow(/EXPIRE needs the transactional keyspace/);
    await expect(r.ttl('e:k')).rejects.toThrow(/TTL needs the transactional keyspace/);
    await expect(r.setex('e:k', 10, 'v')).rejects.toThrow(/SETEX needs the transactional keyspace/);
    expect(await r.exists('e:k')).toBe(0);
    await expect(r.call('MULTI')).rejects.toThrow(/MULTI needs the transactional keyspace.*--keyspace txn/);
    await expect(r.call('WATCH', 'e:k')).rejects.toThrow(/WATCH needs the transactional keyspace/);
    await expect(r.call('EXEC')).rejects.toThrow(/EXEC needs the transactional keyspace/);
    await expect(r.call('SUBSCRIBE', 'ch')).rejects.toThrow(/SUBSCRIBE needs keyspace notifications/);
    await expect(r.call('HSET', 'h', 'f', 'v')).rejects.toThrow("ERR unknown command 'HSET', with args beginning with: 'h' 'f' 'v'");
    await expect(r.call('GET')).rejects.toThrow("ERR wrong number of arguments for 'get' command");
    await expect(r.call('SET', 'e:k', 'v', 'NX', 'XX')).rejects.toThrow('ERR syntax error');
    await expect(r.set('', 'v')).rejects.toThrow(/empty keys are not supported/);
    await expect(r.get('k'.repeat(9000))).rejects.toThrow(/exceeds Flotilla's key limit of 8192 bytes/);
    const noAuth = connect({ password: '', protocol: 2, readyCheck: false }); // the ready check's INFO would fail with NOAUTH
    await noAuth.connect().catch(() => {});
    await expect(noAuth.get('s:a')).rejects.toThrow(/NOAUTH Authentication required/);
    await expect(noAuth.auth('wrong-token')).rejects.toThrow(/WRONGPASS/);
    expect(await noAuth.auth(TOKEN)).toBe('OK');
    expect(await noAuth.get('s:a')).toBe('3');
    await expect(noAuth.call('HELLO', '3', 'AUTH', 'default', 'wrong-token')).rejects.toThrow(/WRONGPASS/);
    await expect(noAuth.call('AUTH', 'someone', TOKEN)).rejects.toThrow(/WRONGPASS/);
    expect(await noAuth.call('HELLO', '2', 'AUTH', 'default', TOKEN)).toEqual(expect.arrayContaining(['proto', 2]));
  });

  it('malformed RESP and an oversized bulk close the connection with an error, applying nothing of that command', async () => {
    const auth = `*2\r\n$4\r\nAUTH\r\n$${TOKEN.length}\r\n${TOKEN}\r\n`;
    const bad = await raw(`${auth}*3\r\n$3\r\nSET\r\n$5\r\nraw:a\r\n$1\r\nx\r\n*2\r\n?3\r\nGET\r\n*3\r\n$3\r\nSET\r\n$5\r\nraw:b\r\n$1\r\ny\r\n`);
    expect(bad).toBe("+OK\r\n+OK\r\n-ERR Protocol error: expected '$', got '?'\r\n");
    const big = await raw(`${auth}*3\r\n$3\r\nSET\r\n$5\r\nraw:c\r\n$8388609\r\n`);
    expect(big).toMatch(/^\+OK\r\n-ERR Protocol error: invalid bulk length 8388609 \(at most 8388608 bytes/);
    const r = connect();
    expect(await r.mget('raw:a', 'raw:b', 'raw:c')).toEqual(['x', null, null]);
    expect(await raw(`${auth}PING\r\nQUIT\r\nPING\r\n`)).toBe('+OK\r\n+PONG\r\n+OK\r\n');
  });
});

describe('the front limits (a second front in this process, small bounds)', () => {
  let client: FlotillaClient;
  let small: RedisFront;

  beforeAll(async () => {
    client = await FlotillaClient.connect({ placement: placement.address, token: TOKEN });
    small = await startRedisFront({
      host: '127.0.0.1',
      port: 0,
      client,
      placement: placement.address,
      keyEstimate: async () => ({ keys: 0, regions: 1 }),
      logger: makeLogger('silent'),
      limits: { maxConnections: 2, maxPipeline: 4, partialCommandTimeoutMs: 300 },
    });
  });

  afterAll(async () => {
    await small?.close();
    client?.close();
  });

  it('pauses reading past maxPipeline and still answers an 80-command pipeline in order', async () => {
    const r = new Redis({ port: small.port, host: '127.0.0.1', protocol: 2, maxRetriesPerRequest: 0, retryStrategy: () => null });
    clients.push(r);
    const p = r.pipeline();
    for (let i = 0; i < 40; i++) p.set(`lim:${i}`, String(i)).get(`lim:${i}`);
    const res = (await p.exec())!;
    expect(res.filter((_, i) => i % 2 === 1).map(([, v]) => v)).toEqual(Array.from({ length: 40 }, (_, i) => String(i)));
    r.disconnect();
    await waitFor('the front to see the connection close', () => small.connectionCount() === 0, 5_000, 20);
  });

  it('refuses connections past maxConnections and closes one that leaves a command half-sent', async () => {
    const a = net.connect(small.port, '127.0.0.1');
    const b = net.connect(small.port, '127.0.0.1');
    await Promise.all([a, b].map((s) => new Promise((r) => s.once('connect', r))));
    const third = await new Promise<string>((resolve) => {
      const s = net.connect(small.port, '127.0.0.1');
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
    });
    expect(third).toBe('-ERR max number of clients reached\r\n');
    const partial = await new Promise<string>((resolve) => {
      let out = '';
      a.on('data', (d) => (out += d.toString()));
      a.on('close', () => resolve(out));
      a.write('*2\r\n$3\r\nGET\r\n$5\r\nab');
    });
    expect(partial).toBe('-ERR Protocol error: incomplete command for 300 ms\r\n');
    b.destroy();
    expect(small.stats.connectionsRejected).toBe(1);
  });
});
