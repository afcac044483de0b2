// bench/vs-etcd-run.ts — the measuring machinery of `pnpm bench:vs-etcd`,
// the same for both systems: closed-loop clients in this process, a
// measured window after a warm-up, latencies of the operations completed
// inside the window, and CPU from /proc for the server processes and from
// process.cpuUsage() for this (client) process over exactly that window.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** CLOCK_TICKS: the USER_HZ of /proc/<pid>/stat (100 on Linux for every architecture node runs on here). */
const CLOCK_TICKS = 100;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 0));
    });
  });
}

/** waitFor polls `cond` every 200 ms until it holds, or throws after `ms`. */
export async function waitFor(ms: number, what: string, cond: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** procCpuMs is a process's user+system CPU so far (all its threads), in ms; 0 once it is gone. */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start past the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** rssBytes is a process's resident set size now (VmRSS), 0 once it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return '?';
  }
}

/** rng: xorshift32, seeded, so every run draws the same keys. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Measured is one case's window: what completed inside it and what it cost. */
export interface Measured {
  ops: number;
  seconds: number;
  errors: number;
  latenciesMs: number[];
  serverCpuMs: number;
  clientCpuMs: number;
}

/**
 * measure keeps `clients` operations in flight for warmupMs + windowMs and
 * measures the window: operations completed inside it (their latencies),
 * the server processes' CPU (sum over `serverPids`) and this process's CPU
 * between the window's two edges. An operation that fails counts as an
 * error and its client goes on.
 */
export async function measure(clients: number, warmupMs: number, windowMs: number, serverPids: () => number[], op: (r: () => number, w: number) => Promise<void>): Promise<Measured> {
  const latenciesMs: number[] = [];
  let errors = 0;
  let open = false;
  let stop = false;
  let t0 = 0;
  let t1 = 0;
  let server0 = 0;
  let client0 = process.cpuUsage();
  let serverCpuMs = 0;
  let clientCpuMs = 0;
  const sumServer = (): number => serverPids().reduce((a, pid) => a + procCpuMs(pid), 0);
  const opened = setTimeout(() => {
    server0 = sumServer();
    client0 = process.cpuUsage();
    t0 = performance.now();
    open = true;
  }, warmupMs);
  const closed = setTimeout(() => {
    t1 = performance.now();
    open = false;
    stop = true;
    serverCpuMs = sumServer() - server0;
    const c = process.cpuUsage(client0);
    clientCpuMs = (c.user + c.system) / 1000;
  }, warmupMs + windowMs);
  const worker = async (w: number): Promise<void> => {
    const r = rng(1000 + w);
    while (!stop) {
      const start = performance.now();
      try {
        await op(r, w);
      } catch {
        if (open) errors++;
        // A failing system must not turn the loop into a spin.
        await new Promise((res) => setTimeout(res, 10));
        continue;
      }
      if (open) latenciesMs.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
  clearTimeout(opened);
  clearTimeout(closed);
  latenciesMs.sort((a, b) => a - b);
  return { ops: latenciesMs.length, seconds: (t1 - t0) / 1000, errors, latenciesMs, serverCpuMs, clientCpuMs };
}
