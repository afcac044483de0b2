import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exited, killAll, type CliChild } from './helpers';
import { startRedisUp } from './redis-up';
import type { ClusterFile } from '../src/cluster-file';

// The real redis-cli and redis-benchmark (Debian redis-tools) against
// `flotilla up --stores 3 --redis-port 0`: the acceptance commands of
// issue #20 item 1, a short benchmark that must answer no errors, and
// Ctrl-C stopping the front with the cluster (exit 0).

const binary = (name: string): string | undefined => ['/usr/bin', '/usr/local/bin'].map((d) => join(d, name)).find((p) => existsSync(p));
const REDIS_CLI = binary('redis-cli');
const REDIS_BENCHMARK = binary('redis-benchmark');
if (!REDIS_CLI || !REDIS_BENCHMARK) {
  console.warn('redis-cli.test.ts: SKIPPED: redis-cli/redis-benchmark not installed (Debian redis-tools; scripts/setup.sh installs it when run as root with apt-get)');
}

const dir = mkdtempSync(join(tmpdir(), 'flotilla-redis-cli-'));
const dataDir = join(dir, 'data');
let up: CliChild | undefined;
let cluster: ClusterFile | undefined;
let port = 0;

/** tool runs redis-cli or redis-benchmark with args (bounded) and resolves with its output, whatever the exit status. */
function tool(bin: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

const cli = (...args: string[]) => tool(REDIS_CLI!, ['-p', String(port), ...args]);

describe.skipIf(!REDIS_CLI || !REDIS_BENCHMARK)('redis-cli and redis-benchmark against flotilla up --redis-port', () => {
  beforeAll(async () => {
    ({ up, cluster, port } = await startRedisUp(dataDir));
  }, 120_000);

  afterAll(() => {
    killAll(up, cluster, []);
    rmSync(dir, { recursive: true, force: true });
  });

  it('set / get / incr / scan 0 match user:* / --scan, and the refusals, as redis-cli prints them', async () => {
    expect(cluster?.stores).toHaveLength(3);
    expect((await cli('set', 'k', 'v')).stdout).toBe('OK\n');
    expect((await cli('get', 'k')).stdout).toBe('v\n');
    expect((await cli('incr', 'n')).stdout).toBe('1\n');
    expect((await cli('incr', 'n')).stdout).toBe('2\n');
    expect((await cli('mset', 'user:1', 'a', 'user:2', 'b', 'user:3', 'c', 'other', 'x')).stdout).toBe('OK\n');
    expect((await cli('scan', '0', 'match', 'user:*')).stdout).toBe('0\nuser:1\nuser:2\nuser:3\n');
    // --scan follows the cursor until 0 (redis-cli parses it as an integer): 15 keys at SCAN's default COUNT 10 take two pages.
    const more = Array.from({ length: 12 }, (_, i) => `user:x${String(i).padStart(2, '0')}`);
    expect((await cli('mset', ...more.flatMap((k) => [k, 'v']))).stdout).toBe('OK\n');
    expect((await cli('--scan', '--pattern', 'user:*')).stdout).toBe(['user:1', 'user:2', 'user:3', ...more].map((k) => `${k}\n`).join(''));
    expect((await cli('dbsize')).stdout).toMatch(/^\d+\n$/);
    const expire = await cli('expire', 'k', '10');
    expect(expire.stdout + expire.stderr).toContain('ERR EXPIRE needs the transactional keyspace');
    const unknown = await cli('hgetall', 'k');
    expect(unknown.stdout + unknown.stderr).toContain("ERR unknown command 'hgetall'");
    // Help comes from COMMAND DOCS, which redis-cli reads on start.
    expect((await cli('help', 'incr')).stdout).toContain('Increments the integer value of a key by one');
    expect((await cli('-3', 'hello', '3')).stdout).toContain('flotilla');
  });

  it('redis-benchmark -t set,get,incr with pipelining completes without one error reply', async () => {
    const errors = async (): Promise<number> => Number(/total_error_replies:(\d+)/.exec((await cli('info', 'stats')).stdout)?.[1] ?? NaN);
    const before = await errors();
    const bench = await tool(REDIS_BENCHMARK!, ['-p', String(port), '-t', 'set,get,incr', '-n', '600', '-c', '10', '-P', '8', '-q', '--csv'], 60_000);
    expect(bench.code, bench.stderr).toBe(0);
    const rows = bench.stdout.trim().split('\n').slice(1).map((l) => JSON.parse(`[${l}]`) as [string, string]);
    expect(rows.map((r) => r[0])).toEqual(['SET', 'GET', 'INCR']);
    for (const [, rps] of rows) expect(Number(rps)).toBeGreaterThan(0);
    expect(await errors()).toBe(before);
    // redis-benchmark may send up to a pipeline more than -n per client; every INCR it sent counted exactly once.
    const counter = Number((await cli('get', 'counter:__rand_int__')).stdout);
    expect(counter).toBeGreaterThanOrEqual(600);
    expect(counter).toBeLessThanOrEqual(600 + 10 * 8);
    expect(Number(/total_commands_processed:(\d+)/.exec((await cli('info', 'stats')).stdout)?.[1])).toBeGreaterThanOrEqual(1800);
  });

  it('Ctrl-C stops the Redis front with the cluster and exits 0', async () => {
    up!.kill('SIGINT');
    const r = await exited(up!, 30_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Stopped.');
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => (s.destroy(), resolve(false)));
      s.on('error', () => resolve(true));
    });
    expect(refused).toBe(true);
  });
});
