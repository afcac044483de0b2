// The virtual clock: @sinonjs/fake-timers drives every setInterval /
// setTimeout / setImmediate / Date.now / performance.now the stores, the
// network and the clients use. The driver moves it in slices and runs the
// per-slice checkers between them; real I/O (a store starting or stopping)
// happens only while the driver awaits between slices.
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import FakeTimers from '@sinonjs/fake-timers';

type InstalledClock = ReturnType<typeof FakeTimers.install>;

/** START_MS is the virtual wall clock at the start of every run (so fault logs read as ms since start). */
export const START_MS = 1_700_000_000_000;
/** SLICE_MS is the driver's step: faults are drawn and checkers run once per slice. */
export const SLICE_MS = 100;

/** virtualNow is the virtual time since the start of the run, in ms. */
export const virtualNow = (): number => Date.now() - START_MS;

/** installVirtualClock fakes every timer and clock source the stores use, starting at START_MS. */
export function installVirtualClock(): InstalledClock {
  return FakeTimers.install({
    now: START_MS,
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date', 'performance'],
    shouldClearNativeTimers: true,
  });
}

/** makeSimDir creates a fresh data directory, on /dev/shm when there is one (SQLite files in RAM). */
export function makeSimDir(prefix: string): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, prefix));
}

/**
 * SimClock moves the virtual clock in slices and calls afterSlice after each
 * one (the safety checkers). SIM_TRACE=1 logs progress each virtual second.
 */
export class SimClock {
  private lastTraceMs = 0;

  constructor(
    private readonly clock: InstalledClock,
    private readonly afterSlice: () => void,
    private readonly trace?: () => void,
  ) {}

  /** advance runs ms of virtual time (every timer due in it fires), then the checkers. */
  async advance(ms: number): Promise<void> {
    if (this.trace && process.env.SIM_TRACE && Date.now() - this.lastTraceMs >= 1000) {
      this.lastTraceMs = Date.now();
      this.trace();
    }
    await this.clock.tickAsync(ms);
    this.afterSlice();
  }

  /** advanceFor advances slice by slice for ms of virtual time. */
  async advanceFor(ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) await this.advance(SLICE_MS);
  }

  /** runUntilSettled advances slice by slice until work settles or the virtual deadline passes, then awaits it. */
  async runUntilSettled<T>(work: Promise<T>, deadlineMs: number): Promise<T> {
    let settled = false;
    void work.then(
      () => (settled = true),
      () => (settled = true),
    );
    while (!settled && Date.now() < deadlineMs) await this.advance(SLICE_MS);
    return work;
  }
}
