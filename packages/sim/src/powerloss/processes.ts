// Real processes for the power-loss run: `flotilla placement` and
// `flotilla store` from apps/node, started as the chaos runner starts them
// (chaos/procs.ts's cliArgv: the suite's CLI bundle when FLOTILLA_CLI_JS
// names one, else tsx). The two runners differ in how a store dies and
// comes back: here the environment carries the shim, and the exit is kept
// to tell a crash the run caused from one the store had by itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { cliArgv, ROOT } from '../chaos/procs';

/** Proc is one CLI process: its arguments, and while it runs, its child and what it printed once serving. */
export interface Proc {
  name: string;
  args: string[];
  child: ChildProcess | undefined;
  /** info is the JSON line the process prints once it serves (its address, store ID...). */
  info: Record<string, unknown> | undefined;
  /** exit settles when the current child exits, with its exit code or the signal that ended it. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  /** stderrTail keeps the last lines the process wrote to stderr, for failure reports. */
  stderrTail: string[];
}

export function newProc(name: string, args: string[]): Proc {
  return { name, args, child: undefined, info: undefined, exit: undefined, stderrTail: [] };
}

/** STARTUP_TIMEOUT_MS bounds how long a process may take to print its serving line (tsx compiles on a loaded box). */
const STARTUP_TIMEOUT_MS = 60_000;

/**
 * launch starts the process and resolves once it prints its JSON line; it
 * rejects when the process exits first (the caller decides whether that
 * exit was expected, e.g. a store the shim killed during its recovery).
 */
export function launch(p: Proc, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const [file, ...argv] = cliArgv(p.args);
  const child = spawn(file!, argv, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  p.child = child;
  p.info = undefined;
  p.exit = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
  const tail: string[] = (p.stderrTail = []);
  createInterface({ input: child.stderr! }).on('line', (l) => {
    tail.push(l);
    if (tail.length > 40) tail.shift();
  });
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${p.name} did not start within ${STARTUP_TIMEOUT_MS / 1000} s`)), STARTUP_TIMEOUT_MS);
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
    void p.exit!.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`${p.name} exited (${signal ?? `code ${code}`}) before it served; its stderr ended with:\n${tail.join('\n')}`));
    });
  });
}

/** alive says whether the process's current child is still running. */
export function alive(p: Proc): boolean {
  return p.child !== undefined && p.child.exitCode === null && p.child.signalCode === null;
}

/** stop sends the signal (SIGKILL by default) and waits for the exit; a process already gone is left as it is. */
export async function stop(p: Proc, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (alive(p)) p.child!.kill(signal);
  await p.exit;
  p.child = undefined;
}
