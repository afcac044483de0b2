import type { Logger } from './logger';

/**
 * LogClock is what RateLimitedLog needs of time: a one-shot timer with a way
 * to cancel it. Tests pass a manual clock and fire the timers themselves.
 */
export interface LogClock {
  /** schedule runs fn once after delayMs and returns its cancel function; the real one does not keep the process alive. */
  schedule(fn: () => void, delayMs: number): () => void;
}

/** realLogClock: setTimeout, unref'd so a pending summary never holds a closing process open. */
export const realLogClock: LogClock = {
  schedule(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    t.unref?.();
    return () => clearTimeout(t);
  },
};

export interface RateLimitedLogOptions {
  /** windowMs: after a key's first line, at most one summary line per window while its events go on (default 10,000). */
  windowMs?: number;
  /** maxKeys bounds the keys tracked at once (default 1,024); events of further keys share one overflow key, so a flood from many addresses costs bounded memory. */
  maxKeys?: number;
  clock?: LogClock;
}

interface Window {
  fields: object;
  msg: string;
  /** suppressed counts the events of this window that were not logged. */
  suppressed: number;
  cancel: () => void;
}

/** OVERFLOW_KEY collects the events of keys beyond maxKeys. */
const OVERFLOW_KEY = '\u0000overflow';

/**
 * RateLimitedLog logs repeated refusals (wrong token, connection limit,
 * failed handshake) without letting a misbehaving or hostile client fill
 * the log: the first event of a key (say, "wrong token from 10.0.0.5") is
 * logged at once; later ones in the same window are only counted, and when
 * the window ends one summary line says how many there were ("... (1234
 * more from the same source in the last 10 s)", with `suppressed` and
 * `windowMs` fields). A key that stays quiet for a whole window is
 * forgotten, so its next event is logged at once again.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, Window>();
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly clock: LogClock;

  constructor(
    private readonly logger: Logger,
    opts: RateLimitedLogOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 10_000;
    this.maxKeys = opts.maxKeys ?? 1024;
    this.clock = opts.clock ?? realLogClock;
    if (!(this.windowMs > 0) || !(this.maxKeys >= 1)) throw new RangeError('RateLimitedLog: windowMs and maxKeys must be positive');
  }

  /** warn logs (fields, msg) at warn level unless `key` already logged in this window; then it is counted for the summary. */
  warn(key: string, fields: object, msg: string): void {
    let k = key;
    if (!this.windows.has(k) && this.windows.size >= this.maxKeys) {
      k = OVERFLOW_KEY;
      fields = { ...fields, overflow: true };
      msg = `${msg} (and others: more than ${this.maxKeys} sources)`;
    }
    const w = this.windows.get(k);
    if (w) {
      w.suppressed++;
      return;
    }
    this.logger.warn(fields, msg);
    this.open(k, fields, msg);
  }

  /** tracked is how many keys are inside a window now (for tests and bounds). */
  get tracked(): number {
    return this.windows.size;
  }

  /** close logs the pending summaries and cancels every timer. */
  close(): void {
    for (const [k, w] of this.windows) {
      w.cancel();
      this.summarize(w);
      this.windows.delete(k);
    }
  }

  private open(key: string, fields: object, msg: string): void {
    const w: Window = { fields, msg, suppressed: 0, cancel: () => {} };
    this.windows.set(key, w);
    w.cancel = this.clock.schedule(() => this.endWindow(key, w), this.windowMs);
  }

  /** endWindow summarizes a window that counted events and opens the next; a quiet window ends the key. */
  private endWindow(key: string, w: Window): void {
    if (this.windows.get(key) !== w) return;
    if (w.suppressed === 0) {
      this.windows.delete(key);
      return;
    }
    this.summarize(w);
    w.suppressed = 0;
    w.cancel = this.clock.schedule(() => this.endWindow(key, w), this.windowMs);
  }

  private summarize(w: Window): void {
    if (w.suppressed === 0) return;
    const seconds = this.windowMs / 1000;
    this.logger.warn({ ...w.fields, suppressed: w.suppressed, windowMs: this.windowMs }, `${w.msg} (${w.suppressed} more from the same source in the last ${seconds} s)`);
  }
}
