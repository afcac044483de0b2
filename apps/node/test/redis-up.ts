import { join } from 'node:path';
import type { ClusterFile } from '../src/cluster-file';
import { readJson, startCli, waitFor, type CliChild } from './helpers';

/** RedisUp: a `flotilla up` child serving the Redis front, its cluster file and the front's port. */
export interface RedisUp {
  up: CliChild;
  cluster: ClusterFile | undefined;
  port: number;
}

/**
 * startRedisUp starts `flotilla up --stores 3 --redis-port 0` (demo profile)
 * in dataDir with the given extra flags (e.g. `--redis-keyspace txn`) and
 * waits for the Redis address it reports (the redis-* tests share it).
 */
export async function startRedisUp(dataDir: string, extra: string[] = []): Promise<RedisUp> {
  const up = startCli(['up', '--stores', '3', '--data-dir', dataDir, '--base-port', '0', '--profile', 'demo', '--redis-port', '0', ...extra, '--log-level', 'warn']);
  const line = await waitFor(
    'flotilla up to report its Redis address',
    () => {
      if (up.exitCode !== null) throw new Error(`flotilla up exited with ${up.exitCode}: ${up.out.stderr}`);
      return up.out.stdout.includes('Press Ctrl-C') ? /Redis: 127\.0\.0\.1:(\d+)/.exec(up.out.stdout) : null;
    },
    90_000,
    100,
  );
  return { up, cluster: readJson<ClusterFile>(join(dataDir, 'cluster.json')) ?? undefined, port: Number(line[1]) };
}
