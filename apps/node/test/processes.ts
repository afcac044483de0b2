import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { startCli, waitFor, type CliChild } from './helpers';

// processes.ts: `flotilla placement` and `flotilla store` as real child
// processes for the identity and placement-outage tests.

/** announced waits for a server process's one-line JSON announcement on stdout. */
export async function announced(child: CliChild, what: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  return waitFor(`${what} to announce itself`, () => {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${child.out.stderr}`);
    const line = child.out.stdout.split('\n').find((l) => l.startsWith('{'));
    return line ? (JSON.parse(line) as Record<string, unknown>) : null;
  }, timeoutMs, 50);
}

export interface PlacementProc {
  child: CliChild;
  address: string;
  clusterId: number;
}

/** startPlacement runs `flotilla placement` on dataDir (listen defaults to a free port) and waits for its announcement. */
export async function startPlacement(dataDir: string, listen = '127.0.0.1:0', extra: string[] = []): Promise<PlacementProc> {
  const child = startCli(['placement', '--data-dir', dataDir, '--listen', listen, '--log-level', 'warn', ...extra]);
  const info = await announced(child, `placement ${dataDir}`);
  return { child, address: info['address'] as string, clusterId: info['clusterId'] as number };
}

export interface StoreProc {
  child: CliChild;
  dataDir: string;
  address: string;
  raftAddress: string;
  storeId: number;
}

/** spawnStore starts `flotilla store` without waiting for it. */
export function spawnStore(placement: string, dataDir: string, extra: string[] = [], listen = '127.0.0.1:0'): CliChild {
  return startCli(['store', '--placement', placement, '--data-dir', dataDir, '--listen', listen, '--log-level', 'warn', ...extra]);
}

/** startStore starts `flotilla store` and waits until it serves. */
export async function startStore(placement: string, dataDir: string, extra: string[] = [], listen = '127.0.0.1:0'): Promise<StoreProc> {
  const child = spawnStore(placement, dataDir, extra, listen);
  const info = await announced(child, `store ${dataDir}`);
  return { child, dataDir, address: info['address'] as string, raftAddress: info['raftAddress'] as string, storeId: info['storeId'] as number };
}

/** stopped sends a signal and waits for the exit (bounded). */
export async function stopped(child: CliChild, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([done, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)))]);
  clearTimeout(timer);
  if (code === 'timeout') throw new Error(`pid ${child.pid} did not exit within ${timeoutMs} ms of ${signal}`);
  return code;
}

/** fingerprint maps every file under dir to its size, mode and SHA-256: equal fingerprints mean nothing on disk changed. */
export function fingerprint(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out[relative(dir, p)] = `${st.size} ${(st.mode & 0o777).toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

/** httpJson GETs a store's or placement's JSON route (plain http, 2 s bound). */
export async function httpJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return (await res.json()) as T;
}
