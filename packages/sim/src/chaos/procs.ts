import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

// procs.ts: the chaos run's server processes (`flotilla placement` and
// `flotilla store` from apps/node), started, killed and restarted by name.

export const ROOT = resolve(import.meta.dirname, '../../../..');
const MAIN = join(ROOT, 'apps/node/src/main.ts');

/**
 * cliArgv: the node command line that runs `flotilla ...args`: the bundle
 * FLOTILLA_CLI_JS names when set (the test suite builds one from this same
 * source, scripts/vitest-setup.mjs: a third of tsx's start-up CPU), else
 * main.ts through tsx.
 */
export function cliArgv(args: readonly string[]): string[] {
  const bundle = process.env['FLOTILLA_CLI_JS'];
  return bundle ? [process.execPath, bundle, ...args] : [process.execPath, '--import', 'tsx', MAIN, ...args];
}

/** Wrap turns the node command line into what to spawn: itself, or `ip netns exec <ns> ...` (a NetnsTopology's command). */
export type Wrap = (argv: readonly string[]) => [string, string[]];

/** Proc is one server process: how to (re)start it and what it announced. */
export interface Proc {
  name: string;
  /** node is the process's name in the network topology (partitions cut nodes). */
  node: string;
  args: string[];
  wrap: Wrap;
  /** env is added to this process's environment (the cluster secret). */
  env: Record<string, string>;
  child: ChildProcess | undefined;
  info: Record<string, unknown> | undefined;
  stopped: boolean;
  /** stderrTail keeps the last lines the process wrote to stderr, for failure reports. */
  stderrTail?: string[];
}

export const direct: Wrap = (argv) => [argv[0]!, argv.slice(1)];

/** newProc describes a process that is not running yet. */
export function newProc(name: string, node: string, args: string[], wrap: Wrap = direct, env: Record<string, string> = {}): Proc {
  return { name, node, args, wrap, env, child: undefined, info: undefined, stopped: false };
}

/** launch starts one process and resolves with the JSON line it prints once it serves. */
export function launch(p: Proc): Promise<void> {
  const [file, args] = p.wrap(cliArgv(p.args));
  const child = spawn(file, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...p.env } });
  p.child = child;
  p.stopped = false;
  const tail: string[] = (p.stderrTail = []);
  createInterface({ input: child.stderr! }).on('line', (l) => {
    tail.push(l);
    if (tail.length > 40) tail.shift();
  });
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${p.name} did not start within 60 s; its stderr ended with:\n${tail.join('\n')}`)), 60_000);
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => {
      clearTimeout(timer);
      try {
        p.info = JSON.parse(line) as Record<string, unknown>;
        res();
      } catch {
        rej(new Error(`${p.name} printed ${line}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`${p.name} exited with ${code} before it served; its stderr ended with:\n${tail.join('\n')}`));
    });
  });
}

/** kill SIGKILLs the process (continuing it first if stopped) and waits for the exit. */
export async function kill(p: Proc): Promise<void> {
  const c = p.child;
  if (!c || c.exitCode !== null || c.signalCode !== null) {
    p.child = undefined;
    return;
  }
  const exited = new Promise((r) => c.once('exit', r));
  if (p.stopped) c.kill('SIGCONT');
  c.kill('SIGKILL');
  await exited;
  p.child = undefined;
}

/** killSync SIGKILLs the process without waiting: for a signal handler on the way out. */
export function killSync(p: Proc): void {
  if (p.child && p.child.exitCode === null) p.child.kill('SIGKILL');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
