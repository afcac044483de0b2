import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { makeLogger } from '../src/logger';
import { Glob } from '../src/redis/glob';
import { channelPrefix, patternPrefix } from '../src/redis/pubsub/channels';
import { encodeCommand } from '../src/redis/resp';
import { startRedisFront, type RedisFront } from '../src/redis/server';
import type { ClusterFile } from '../src/cluster-file';
import { killAll, runCli, type CliChild } from './helpers';
import { startRedisUp } from './redis-up';

// Redis keyspace notifications through watch (issue #20): `flotilla up
// --stores 3 --redis-port 0 --redis-keyspace txn` as a user starts it, an
// ioredis subscriber on __keyspace@0__:user:* that sees every write of
// another connection and of the CLI in order, PUNSUBSCRIBE stopping them,
// the RESP2 subscribed-mode rules and RESP3 pushes on a raw socket, PUBLISH
// within the front, the real redis-cli reading a message, and (on an
// in-process front with small limits, same cluster) a subscriber that stops
// reading being disconnected at its output-buffer limit, its watch closed.

const REDIS_CLI = ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((p) => existsSync(p));
if (!REDIS_CLI) console.warn('redis-pubsub.test.ts: the redis-cli case is SKIPPED: redis-cli not installed (Debian redis-tools)');

const dir = mkdtempSync(join(tmpdir(), 'flotilla-redis-pubsub-'));
const dataDir = join(dir, 'data');
let up: CliChild | undefined;
let cluster: ClusterFile | undefined;
let port = 0;
let client: FlotillaClient | undefined;
let small: RedisFront | undefined;
const conns: Redis[] = [];
const sockets: net.Socket[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  ({ up, cluster, port } = await startRedisUp(dataDir, ['--redis-keyspace', 'txn']));
  client = await FlotillaClient.connect({ placement: cluster!.placement.address });
  // user:* spans two Regions, so the pattern's watch merges two feeds.
  await client.split('user:5');
}, 120_000);

afterAll(async () => {
  for (const c of conns) c.disconnect();
  for (const s of sockets) s.destroy();
  for (const c of children) c.kill('SIGKILL');
  await small?.close();
  client?.close();
  killAll(up, cluster, []);
  rmSync(dir, { recursive: true, force: true });
});

function connect(p = port): Redis {
  const c = new Redis({ port: p, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null, autoResubscribe: false });
  c.on('error', () => {});
  conns.push(c);
  return c;
}

/** Raw is a RESP socket whose replies (RESP2 or RESP3, pushes included) are parsed as they arrive. */
class Raw {
  readonly items: unknown[] = [];
  private buf: Buffer = Buffer.alloc(0);
  readonly socket: net.Socket;
  closed = false;

  constructor(p: number) {
    this.socket = net.connect(p, '127.0.0.1');
    this.socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        const r = parse(this.buf, 0);
        if (!r) break;
        this.items.push(r.value);
        this.buf = this.buf.subarray(r.end);
      }
    });
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => {});
    sockets.push(this.socket);
  }

  send(...args: string[]): void {
    this.socket.write(encodeCommand(args));
  }

  /** next waits for the next reply and takes it. */
  async next(): Promise<unknown> {
    await vi.waitFor(() => expect(this.items.length).toBeGreaterThan(0), { timeout: 15_000, interval: 10 });
    return this.items.shift();
  }
}

/** parse reads one RESP2/RESP3 value at i: pushes as { push: [...] }, errors as { error }, bulk strings as text. */
function parse(b: Buffer, i: number): { value: unknown; end: number } | null {
  const eol = b.indexOf('\r\n', i);
  if (eol < 0) return null;
  const t = String.fromCharCode(b[i]!);
  const line = b.toString('latin1', i + 1, eol);
  const next = eol + 2;
  switch (t) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: { error: line }, end: next };
    case ':':
      return { value: Number(line), end: next };
    case '_':
      return { value: null, end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, end: next };
      if (b.length < next + n + 2) return null;
      return { value: b.toString('latin1', next, next + n), end: next + n + 2 };
    }
    case '*':
    case '>':
    case '%': {
      const n = Number(line) * (t === '%' ? 2 : 1);
      if (n < 0) return { value: null, end: next };
      const out: unknown[] = [];
      let at = next;
      for (let k = 0; k < n; k++) {
        const r = parse(b, at);
        if (!r) return null;
        out.push(r.value);
        at = r.end;
      }
      return { value: t === '>' ? { push: out } : out, end: at };
    }
    default:
      throw new Error(`unexpected RESP type ${t}`);
  }
}

describe('Redis keyspace notifications through watch', () => {
  it('an ioredis subscriber on __keyspace@0__:user:* sees set/del of another connection and of the CLI, in order, none missed; PUNSUBSCRIBE stops them', async () => {
    const sub = connect();
    const got: string[] = [];
    sub.on('pmessage', (pattern: string, channel: string, message: string) => got.push(`${pattern} ${channel} ${message}`));
    // Two patterns sharing the watch of prefix user: (so their messages are in one order).
    expect(await sub.psubscribe('__keyspace@0__:user:*', '__keyspace@0__:user:[x]*')).toBe(2);
    const w = connect();
    await w.set('user:1', 'a'); // Region [.., user:5)
    await w.set('user:9', 'b'); // Region [user:5, ..)
    await w.set('other:1', 'c'); // not under user:
    await client!.split('user:3'); // the watch re-subscribes the new Regions from its last revision
    await w.del('user:1');
    await w.mset('user:2', '1', 'user:8', '2'); // one transaction: both at one revision, by key
    await w.incr('user:n');
    await w.set('user:x1', 'y');
    const cli = await runCli(['txn', '--data-dir', dataDir, 'put user:cli 1']);
    expect(cli.code, cli.stderr).toBe(0);
    const P = '__keyspace@0__:user:*';
    const want = [
      `${P} __keyspace@0__:user:1 set`,
      `${P} __keyspace@0__:user:9 set`,
      `${P} __keyspace@0__:user:1 del`,
      `${P} __keyspace@0__:user:2 set`,
      `${P} __keyspace@0__:user:8 set`,
      `${P} __keyspace@0__:user:n set`,
      `${P} __keyspace@0__:user:x1 set`,
      `__keyspace@0__:user:[x]* __keyspace@0__:user:x1 set`,
      `${P} __keyspace@0__:user:cli set`,
    ];
    await vi.waitFor(() => expect(got.length).toBeGreaterThanOrEqual(want.length), { timeout: 15_000, interval: 20 });
    expect(got).toEqual(want);

    // PUNSUBSCRIBE the first pattern: a later write reaches only the second (same watch, so the x write after y proves y was not delivered).
    expect(await sub.punsubscribe(P)).toBe(1);
    got.length = 0;
    await w.set('user:y', '1');
    await w.set('user:x2', '1');
    await vi.waitFor(() => expect(got.length).toBeGreaterThanOrEqual(1), { timeout: 15_000, interval: 20 });
    expect(got).toEqual(['__keyspace@0__:user:[x]* __keyspace@0__:user:x2 set']);
    expect(await sub.punsubscribe()).toBe(0);
    // Out of subscribed mode, the connection runs commands again.
    expect(await sub.get('user:9')).toBe('b');
  });

  it('__keyevent@0__:set and :del carry the key; a plain channel gets PUBLISH within the front; PUBSUB counts them', async () => {
    const sub = connect();
    const got: string[] = [];
    sub.on('message', (channel: string, message: string) => got.push(`${channel} ${message}`));
    expect(await sub.subscribe('__keyevent@0__:del', 'news')).toBe(2);
    const w = connect();
    expect(await w.call('PUBSUB', 'NUMSUB', 'news', 'nobody')).toEqual(['news', 1, 'nobody', 0]);
    expect(await w.publish('news', 'hello')).toBe(1);
    await w.set('ev:a', '1');
    await w.del('ev:a');
    await vi.waitFor(() => expect(got).toHaveLength(2), { timeout: 15_000, interval: 20 });
    expect(got).toEqual(['news hello', '__keyevent@0__:del ev:a']);
    expect(await w.publish('nobody', 'x')).toBe(0);
  });

  it('a raw-keyspace front refuses pub/sub, pointing to --keyspace txn', async () => {
    const raw = await startRedisFront({ host: '127.0.0.1', port: 0, client: client!, placement: cluster!.placement.address, keyEstimate: async () => ({ keys: 0, regions: 0 }), logger: makeLogger('silent') });
    try {
      const r = connect(raw.port);
      await expect(r.subscribe('__keyspace@0__:user:1')).rejects.toThrow(/SUBSCRIBE needs keyspace notifications through watch.*--keyspace txn/);
      await expect(r.publish('news', 'x')).rejects.toThrow(/PUBLISH needs keyspace notifications.*--keyspace txn/);
      await expect(r.call('SSUBSCRIBE', 'x')).rejects.toThrow(/sharded pub\/sub\) is not supported/);
      r.disconnect();
    } finally {
      await raw.close();
    }
  });

  it("PSUBSCRIBE * sees a lease's key come and go but never the lease's guard key in the reserved prefix", async () => {
    const sub = connect();
    const got: string[] = [];
    sub.on('pmessage', (_p: string, channel: string, message: string) => got.push(`${channel} ${message}`));
    expect(await sub.psubscribe('*')).toBe(1);
    const lease = await client!.lease.grant(30_000); // writes the guard key (0xFF 0xFF flotilla/lease/...)
    await client!.put('lz:k', 'v', { lease: lease.id });
    await client!.lease.revoke(lease.id); // deletes lz:k and the guard in one transaction
    const w = connect();
    await w.set('lz:marker', '1');
    // One watch (every user key) feeds this pattern in commit order: a guard message would come before the marker's.
    await vi.waitFor(() => expect(got).toContain('__keyevent@0__:set lz:marker'), { timeout: 15_000, interval: 20 });
    expect(got).toEqual([
      '__keyspace@0__:lz:k set',
      '__keyevent@0__:set lz:k',
      '__keyspace@0__:lz:k del',
      '__keyevent@0__:del lz:k',
      '__keyspace@0__:lz:marker set',
      '__keyevent@0__:set lz:marker',
    ]);
  });

  it('which key prefix a channel or pattern watches', () => {
    const pre = (p: string) => patternPrefix(new Glob(Buffer.from(p, 'latin1')))?.toString('latin1') ?? null;
    expect(pre('__keyspace@0__:user:*')).toBe('user:');
    expect(pre('__keyspace@0__:user:[ab]*')).toBe('user:');
    expect(pre('__keyspace@0__:*')).toBe('');
    expect(pre('__key*')).toBe(''); // could be a keyevent channel
    expect(pre('__keyevent@0__:s*')).toBe('');
    expect(pre('__keyevent@0__:expired')).toBeNull(); // never sent here
    expect(pre('*')).toBe('');
    expect(pre('news.*')).toBeNull();
    expect(pre('__keyspace@0__:\xff\xffflotilla/*')).toBeNull(); // the reserved prefix
    const ch = (c: string) => channelPrefix(Buffer.from(c, 'latin1'))?.toString('latin1') ?? null;
    expect(ch('__keyspace@0__:user:1')).toBe('user:1');
    expect(ch('__keyspace@0__:')).toBeNull();
    expect(ch('__keyevent@0__:del')).toBe('');
    expect(ch('__keyevent@0__:incrby')).toBeNull();
    expect(ch('news')).toBeNull();
  });

  it('RESP2 subscribed mode: only (P)(UN)SUBSCRIBE, PING, QUIT, RESET; RESP3 gets push frames and may run anything', async () => {
    const r2 = new Raw(port);
    r2.send('SUBSCRIBE', '__keyspace@0__:user:r2');
    expect(await r2.next()).toEqual(['subscribe', '__keyspace@0__:user:r2', 1]);
    r2.send('GET', 'user:r2');
    expect(await r2.next()).toEqual({ error: "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context" });
    r2.send('PING');
    expect(await r2.next()).toEqual(['pong', '']);
    r2.send('SET', 'user:r2', 'x');
    expect(await r2.next()).toEqual({ error: expect.stringContaining("Can't execute 'set'") });
    const w = connect();
    await w.set('user:r2', 'v');
    expect(await r2.next()).toEqual(['message', '__keyspace@0__:user:r2', 'set']);
    r2.send('UNSUBSCRIBE');
    expect(await r2.next()).toEqual(['unsubscribe', '__keyspace@0__:user:r2', 0]);
    r2.send('UNSUBSCRIBE');
    expect(await r2.next()).toEqual(['unsubscribe', null, 0]);
    r2.send('PSUBSCRIBE', 'a*', 'b*');
    expect(await r2.next()).toEqual(['psubscribe', 'a*', 1]);
    expect(await r2.next()).toEqual(['psubscribe', 'b*', 2]);
    r2.send('RESET');
    expect(await r2.next()).toBe('RESET');
    r2.send('GET', 'user:r2');
    expect(await r2.next()).toBe('v');
    r2.send('MULTI');
    expect(await r2.next()).toBe('OK');
    r2.send('SUBSCRIBE', 'x');
    expect(await r2.next()).toEqual({ error: 'ERR Command not allowed inside a transaction' });
    r2.send('DISCARD');
    expect(await r2.next()).toBe('OK');

    const r3 = new Raw(port);
    r3.send('HELLO', '3');
    expect(await r3.next()).toEqual(expect.arrayContaining(['proto', 3]));
    r3.send('SUBSCRIBE', '__keyspace@0__:user:r3');
    expect(await r3.next()).toEqual({ push: ['subscribe', '__keyspace@0__:user:r3', 1] });
    r3.send('GET', 'user:r3');
    expect(await r3.next()).toBeNull();
    await w.set('user:r3', 'v');
    expect(await r3.next()).toEqual({ push: ['message', '__keyspace@0__:user:r3', 'set'] });
    r3.send('PING');
    expect(await r3.next()).toBe('PONG');
  });

  it.skipIf(!REDIS_CLI)('the real redis-cli SUBSCRIBE prints the message of a write', async () => {
    const child = spawn(REDIS_CLI!, ['-p', String(port), 'subscribe', '__keyspace@0__:user:cli2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await vi.waitFor(() => expect(out).toContain('subscribe\n__keyspace@0__:user:cli2\n1\n'), { timeout: 15_000, interval: 20 });
    const w = connect();
    await w.set('user:cli2', '1');
    await vi.waitFor(() => expect(out).toContain('message\n__keyspace@0__:user:cli2\nset\n'), { timeout: 15_000, interval: 20 });
    child.kill('SIGTERM');
  });

  it('a subscriber that stops reading is disconnected at the pubsub output-buffer limits (hard at once, soft after its time), and its watch is closed', async () => {
    small = await startRedisFront({
      host: '127.0.0.1',
      port: 0,
      client: client!,
      keyspace: 'txn',
      txnClient: client!,
      watchClient: client!,
      placement: cluster!.placement.address,
      keyEstimate: async () => ({ keys: 0, regions: 0 }),
      logger: makeLogger('silent'),
      limits: { pubsub: { hardBytes: 4 * 1024 * 1024, softBytes: 256 * 1024, softMs: 1_000, watchesPerConnection: 2 } },
    });
    // Each stalled subscriber also holds a keyspace subscription, so a watch that must close with it.
    const burst = new Raw(small.port);
    burst.send('SUBSCRIBE', '__keyspace@0__:stall:a', 'burst');
    expect(await burst.next()).toEqual(['subscribe', '__keyspace@0__:stall:a', 1]);
    expect(await burst.next()).toEqual(['subscribe', 'burst', 2]);
    const slow = new Raw(small.port);
    slow.send('SUBSCRIBE', '__keyspace@0__:stall:b', 'trickle');
    expect(await slow.next()).toEqual(['subscribe', '__keyspace@0__:stall:b', 1]);
    expect(await slow.next()).toEqual(['subscribe', 'trickle', 2]);
    // A subscriber that reads, on the same front, must stay (not on the burst: at a high load it could lag past the soft limit itself).
    const reader = connect(small.port);
    let read = 0;
    reader.on('message', () => read++);
    expect(await reader.subscribe('__keyspace@0__:stall:a', 'trickle')).toBe(2);
    expect(small.pubsubWatches()).toBe(3);
    // A pattern needing the same prefix shares the reader's watch of stall:a.
    expect(await reader.psubscribe('__keyspace@0__:stall:a*')).toBe(3);
    expect(small.pubsubWatches()).toBe(3);
    // Past watchesPerConnection (2 here) a SUBSCRIBE is refused whole, subscribing nothing.
    const many = connect(small.port);
    await expect(many.subscribe('__keyspace@0__:k1', '__keyspace@0__:k2', '__keyspace@0__:k3')).rejects.toThrow(/more than 2 distinct watched key prefixes on one connection/);
    expect(small.pubsubWatches()).toBe(3);
    many.disconnect();
    await vi.waitFor(() => expect(small!.connectionCount()).toBe(3), { timeout: 10_000, interval: 20 });
    burst.socket.pause();
    slow.socket.pause();
    const w = connect(small.port);
    await w.ping();
    expect(small.connectionCount()).toBe(4);
    // A paused client does not see its socket close: the front's count of connections tells.
    const dropped = (n: number) => small!.connectionCount() <= 4 - n;
    // Hard limit: 1 MiB messages as fast as they go; the kernel's socket buffers take the first few MB, the front at most 4 MiB more.
    const mib = 'm'.repeat(1024 * 1024);
    let burstBytes = 0;
    while (!dropped(1) && burstBytes < 64 * 1024 * 1024) {
      await w.publish('burst', mib);
      burstBytes += mib.length;
    }
    expect(dropped(1)).toBe(true);
    burst.socket.resume();
    await vi.waitFor(() => expect(burst.closed).toBe(true), { timeout: 10_000, interval: 20 });
    expect(small.connectionCount()).toBe(3);
    // Soft limit: 64 KiB every 50 ms stays under the hard limit but above 256 KiB for longer than 1 s.
    const chunk = 't'.repeat(64 * 1024);
    const started = Date.now();
    let slowBytes = 0;
    while (!dropped(2) && slowBytes < 64 * 1024 * 1024) {
      await w.publish('trickle', chunk);
      slowBytes += chunk.length;
      await new Promise((r) => setTimeout(r, 50)); // the trickle's pace, not a synchronization
    }
    expect(dropped(2)).toBe(true);
    slow.socket.resume();
    await vi.waitFor(() => expect(slow.closed).toBe(true), { timeout: 10_000, interval: 20 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
    console.log(`redis-pubsub: hard limit dropped after ${(burstBytes / 2 ** 20).toFixed(0)} MiB published, soft after ${(slowBytes / 2 ** 20).toFixed(1)} MiB in ${Date.now() - started} ms`);
    await vi.waitFor(() => expect(small!.pubsubWatches()).toBe(1), { timeout: 15_000, interval: 50 });
    expect(reader.status).toBe('ready');
    await w.set('stall:a', '1');
    await vi.waitFor(() => expect(read).toBeGreaterThan(0), { timeout: 15_000, interval: 50 });
    reader.disconnect();
    await vi.waitFor(() => expect(small!.pubsubWatches()).toBe(0), { timeout: 15_000, interval: 50 });
  }, 60_000);
});
