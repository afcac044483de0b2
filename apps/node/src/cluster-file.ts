import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * ClusterFile is `<data-dir>/cluster.json`, written by `flotilla up` (and the
 * demo) once every process is healthy, so ctl commands and a second `up`
 * can find the running cluster: its endpoints, the ports to resume on, and
 * the pid of the supervising process. A clean stop keeps the file with
 * `stoppedAt` set, so the next `up --base-port 0` resumes on the same ports
 * and ctl commands can say the cluster is stopped instead of timing out.
 */
export const clusterFileSchema = z.object({
  version: z.literal(1),
  pid: z.number().int().positive(),
  profile: z.enum(['demo', 'production']),
  startedAt: z.string(),
  stoppedAt: z.string().optional(),
  placement: z.object({ address: z.string(), pid: z.number().int().nonnegative(), dataDir: z.string(), log: z.string() }),
  /** placements: every placement member (`up --placements N`); placement is the first of them. Absent: a single placement. */
  placements: z.array(z.object({ name: z.string(), address: z.string(), pid: z.number().int().nonnegative(), dataDir: z.string(), log: z.string() })).optional(),
  /** stores[].storeId: the ID placement gave the store (absent in files written before it was recorded). */
  stores: z.array(z.object({ index: z.number().int().positive(), storeId: z.number().int().positive().optional(), address: z.string(), pid: z.number().int().nonnegative(), dataDir: z.string(), log: z.string() })),
  /** tls: the cluster serves https/wss; caPath is what ctl commands trust by default. No token is ever recorded here. */
  tls: z.object({ caPath: z.string().optional() }).optional(),
});
export type ClusterFile = z.infer<typeof clusterFileSchema>;

export const clusterFilePath = (dataDir: string): string => join(dataDir, 'cluster.json');

/** readClusterFile returns the parsed file, null when there is none; throws with the path when it is malformed. */
export function readClusterFile(dataDir: string): ClusterFile | null {
  const path = clusterFilePath(dataDir);
  if (!existsSync(path)) return null;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const r = clusterFileSchema.safeParse(json);
  if (!r.success) throw new Error(`${path}: ${r.error.issues[0]?.path.join('.') ?? ''}: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}

/** writeClusterFile replaces the file atomically (write then rename). */
export function writeClusterFile(dataDir: string, file: ClusterFile): void {
  const path = clusterFilePath(dataDir);
  writeFileSync(path + '.tmp', JSON.stringify(file, null, 2) + '\n');
  renameSync(path + '.tmp', path);
}

/** markClusterStopped records a clean stop in the file written by supervisor pid (a file of another supervisor is left alone). */
export function markClusterStopped(dataDir: string, pid: number): void {
  try {
    const f = readClusterFile(dataDir);
    if (f && f.pid === pid) writeClusterFile(dataDir, { ...f, stoppedAt: new Date().toISOString() });
  } catch {
    // A malformed file is left for the operator to look at.
  }
}

/** processAlive: a signal-0 probe (EPERM still means the process exists). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
