import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vi } from 'vitest';
import { cliCommand } from '../src/local-cluster';
import type { ClusterFile } from '../src/cluster-file';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** cleanEnv drops FLOTILLA_* from the test runner's environment so a developer's settings cannot change what a test sees. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FLOTILLA_')) env[k] = v;
  return { ...env, ...extra };
}

/** startCli spawns `flotilla ...args` as a real child process (node + tsx + src/main.ts). */
export function startCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): ChildProcess & { out: { stdout: string; stderr: string } } {
  const { command, args: argv } = cliCommand(args);
  const child = spawn(command, argv, { env: cleanEnv(opts.env), cwd: opts.cwd ?? process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] }) as ChildProcess & { out: { stdout: string; stderr: string } };
  child.out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (child.out.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (child.out.stderr += d.toString()));
  return child;
}

/** runCli runs `flotilla ...args` to completion (bounded by timeoutMs, then SIGKILL). */
export function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = startCli(args, opts);
  return exited(child, opts.timeoutMs ?? 30_000);
}

export function exited(child: ChildProcess & { out: { stdout: string; stderr: string } }, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const done = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: child.out.stdout, stderr: child.out.stderr });
    };
    if (child.exitCode !== null || child.signalCode !== null) done(child.exitCode, child.signalCode);
    else child.once('exit', (code, signal) => setImmediate(() => done(code, signal)));
  });
}

/**
 * waitFor retries cond through vitest's vi.waitFor until it returns a truthy
 * value (no sleeps as synchronization); past timeoutMs it throws, naming
 * what it waited for and the last error cond threw.
 */
export async function waitFor<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 30_000, intervalMs = 100): Promise<NonNullable<T>> {
  let lastError: unknown;
  try {
    return await vi.waitFor(
      async () => {
        let v: T;
        try {
          v = await cond();
        } catch (e) {
          lastError = e;
          throw e;
        }
        if (!v) throw new Error(`not yet: ${what}`);
        return v as NonNullable<T>;
      },
      { timeout: timeoutMs, interval: intervalMs },
    );
  } catch {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
  }
}

export function readJson<T>(path: string): T | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export type CliChild = ReturnType<typeof startCli>;

/**
 * startUp runs `flotilla up --stores 3` (demo profile, free ports) in dataDir
 * and waits until it prints that the cluster is up and cluster.json exists.
 */
export async function startUp(dataDir: string): Promise<{ up: CliChild; cluster: ClusterFile }> {
  const up = startCli(['up', '--stores', '3', '--data-dir', dataDir, '--base-port', '0', '--profile', 'demo', '--log-level', 'warn']);
  const cluster = await waitFor(
    'cluster.json with 3 stores',
    () => {
      if (up.exitCode !== null) throw new Error(`flotilla up exited with ${up.exitCode}: ${up.out.stderr}`);
      return up.out.stdout.includes('Press Ctrl-C') ? readJson<ClusterFile>(join(dataDir, 'cluster.json')) : null;
    },
    90_000,
    200,
  );
  return { up, cluster };
}

/** killAll SIGKILLs whatever a test left running: extra children, the supervisor and every process it recorded. */
export function killAll(up: CliChild | undefined, cluster: ClusterFile | undefined, extra: CliChild[]): void {
  for (const c of extra) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (up && up.exitCode === null && up.signalCode === null) {
    up.kill('SIGKILL');
    // Children notice their supervisor's stdin closing; kill them anyway so a failed test leaks nothing.
    for (const s of [cluster?.placement, ...(cluster?.stores ?? [])]) if (s && alive(s.pid)) process.kill(s.pid, 'SIGKILL');
  }
}
