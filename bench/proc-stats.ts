// bench/proc-stats.ts — CPU and RSS of a process from /proc, for benchmarks that report what a store costs.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';

/** cpuSeconds: user + system CPU a process used so far (/proc/PID/stat, clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** rssMb: a process's resident set now (/proc/PID/status VmRSS), in MiB; -1 when it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : 0;
  } catch {
    return -1;
  }
}

/** CpuWindow measures the CPU of some processes over a window, as % of one core each. */
export class CpuWindow {
  private readonly t0 = performance.now();
  private readonly c0: number[];
  constructor(private readonly pids: number[]) {
    this.c0 = pids.map(cpuSeconds);
  }
  /** pct: each process's CPU since the window opened, % of one core, one decimal (-1 for a process that is gone). */
  pct(): number[] {
    const s = (performance.now() - this.t0) / 1000;
    return this.pids.map((pid, i) => {
      try {
        return Math.round(((cpuSeconds(pid) - this.c0[i]!) / s) * 1000) / 10;
      } catch {
        return -1;
      }
    });
  }
}

/** loadAvg1m: the 1-minute load average, recorded next to every figure (the machine is shared). */
export function loadAvg1m(): number {
  return Math.round(loadavg()[0]! * 10) / 10;
}
