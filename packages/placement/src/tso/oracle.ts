import { silentLogger, type Logger } from '@flotilla/proto';
import { PlacementError, PlacementErrorCode, assert } from '../errors';
import { LOGICAL_LIMIT, type TimestampRange } from './timestamp';

/** OracleOptions configures a TimestampOracle. */
export interface OracleOptions {
  /** clock returns wall-clock milliseconds (Date.now in production; tests inject one that jumps). */
  clock: () => number;
  /**
   * persist makes `upperMs` durable (a Raft proposal, committed and applied,
   * on a replicated placement). It resolves once no restart or new leader
   * can start below it, and rejects when that could not be made sure.
   */
  persist: (upperMs: number) => Promise<void>;
  /** saveIntervalMs: how far ahead of the clock each persisted bound reaches (PD's tso-save-interval, default 3000). */
  saveIntervalMs?: number;
  /** maxWaiting bounds the requests queued while the bound is being extended (default 16384). */
  maxWaiting?: number;
  logger?: Logger;
}

interface Waiter {
  count: number;
  resolve: (r: TimestampRange) => void;
  reject: (e: Error) => void;
}

/**
 * TimestampOracle hands out strictly increasing hybrid timestamps from
 * memory, below an upper bound it has persisted (PD's TSO). Invariant:
 * every timestamp handed out has physicalMs < upperMs, and upperMs is
 * durable. A restart or a new leader starts at the persisted bound, so it
 * never goes back, and a wall clock that jumps backwards only makes the
 * logical part advance (and, once that is used up, the physical part run
 * one millisecond ahead of the clock). Requests that find the bound used up
 * wait (bounded) for the next extension: one persist per window, whatever
 * the request rate.
 */
export class TimestampOracle {
  private physicalMs = 0;
  private logical = 0;
  private upperMs = 0;
  private state: 'stopped' | 'starting' | 'serving' = 'stopped';
  private extending: number | undefined;
  /** generation tells persist completions of an earlier start apart (after stop()). */
  private generation = 0;
  private readonly waiting: Waiter[] = [];
  private readonly clock: () => number;
  private readonly persist: (upperMs: number) => Promise<void>;
  private readonly saveIntervalMs: number;
  private readonly maxWaiting: number;
  private readonly logger: Logger;
  /** extensions counts persisted bounds (status, tests: one per window, not per request). */
  extensions = 0;

  constructor(opts: OracleOptions) {
    this.clock = opts.clock;
    this.persist = opts.persist;
    this.saveIntervalMs = opts.saveIntervalMs ?? 3000;
    this.maxWaiting = opts.maxWaiting ?? 16_384;
    this.logger = opts.logger ?? silentLogger;
    assert(Number.isSafeInteger(this.saveIntervalMs) && this.saveIntervalMs >= 10, `tso saveIntervalMs ${this.saveIntervalMs}`);
  }

  /** serving: timestamps are handed out now (false while starting or stopped). */
  get serving(): boolean {
    return this.state === 'serving';
  }

  /** upperBoundMs is the persisted bound (status pages, tests). */
  get upperBoundMs(): number {
    return this.upperMs;
  }

  /**
   * start begins serving above savedUpperMs, the bound persisted by the
   * previous leader (or by this process before a restart): the physical
   * part starts at max(clock, savedUpperMs), and nothing is handed out
   * until a new bound above it is persisted.
   */
  start(savedUpperMs: number): void {
    assert(this.state === 'stopped', 'tso started twice');
    assert(Number.isSafeInteger(savedUpperMs) && savedUpperMs >= 0, `tso saved bound ${savedUpperMs}`);
    this.generation++;
    this.state = 'starting';
    this.physicalMs = Math.max(this.clock(), savedUpperMs, this.physicalMs);
    this.logical = 0;
    this.upperMs = savedUpperMs;
    this.ensureExtension();
  }

  /** stop fails every waiting request with err and hands out nothing until the next start. */
  stop(err: Error): void {
    this.generation++;
    this.state = 'stopped';
    this.extending = undefined;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  /**
   * getTimestamps returns `count` timestamps (1 <= count <= 2^18): at once
   * when the bound allows, else once the next bound is persisted.
   */
  getTimestamps(count: number): TimestampRange | Promise<TimestampRange> {
    assert(Number.isInteger(count) && count >= 1 && count <= LOGICAL_LIMIT, `tso count ${count}`);
    if (this.state === 'stopped') throw new PlacementError(PlacementErrorCode.Unavailable, 'the timestamp oracle is not serving on this member');
    if (this.state === 'serving' && this.waiting.length === 0) {
      const r = this.tryAlloc(count);
      if (r !== null) {
        this.maybeExtend();
        return r;
      }
    }
    if (this.waiting.length >= this.maxWaiting) {
      throw new PlacementError(PlacementErrorCode.TooManyPending, `${this.waiting.length} timestamp requests already wait for the oracle's next window`);
    }
    const p = new Promise<TimestampRange>((resolve, reject) => this.waiting.push({ count, resolve, reject }));
    this.ensureExtension();
    return p;
  }

  /**
   * maybeExtend persists the next bound ahead of time when less than a third
   * of the save interval is left, so requests rarely wait for it. Called
   * after every allocation and from the server's tick.
   */
  maybeExtend(): void {
    if (this.state !== 'serving' || this.extending !== undefined) return;
    if (this.upperMs - Math.max(this.physicalMs, this.clock()) < this.saveIntervalMs / 3) this.ensureExtension();
  }

  /** tryAlloc takes count timestamps below the bound, or returns null when the bound is used up. */
  private tryAlloc(count: number): TimestampRange | null {
    let p = this.physicalMs;
    let l = this.logical;
    const now = this.clock();
    if (now > p) {
      p = now;
      l = 0;
    }
    if (l + count > LOGICAL_LIMIT) {
      // The logical part is used up within this millisecond: run one millisecond ahead (the clock will catch up).
      p += 1;
      l = 0;
    }
    if (p >= this.upperMs) return null;
    this.physicalMs = p;
    this.logical = l + count;
    return { physicalMs: p, firstLogical: l, count };
  }

  private ensureExtension(): void {
    if (this.extending !== undefined || this.state === 'stopped') return;
    const target = Math.max(this.physicalMs, this.clock()) + this.saveIntervalMs;
    const generation = this.generation;
    this.extending = target;
    this.persist(target).then(
      () => this.onPersisted(generation, target),
      (err: unknown) => this.onPersistFailed(generation, err as Error),
    );
  }

  private onPersisted(generation: number, target: number): void {
    if (generation !== this.generation) return;
    this.extending = undefined;
    this.extensions++;
    this.upperMs = Math.max(this.upperMs, target);
    if (this.state === 'starting') {
      this.state = 'serving';
      this.logger.info({ physicalMs: this.physicalMs, upperMs: this.upperMs }, 'timestamp oracle serving');
    }
    this.drain();
  }

  private onPersistFailed(generation: number, err: Error): void {
    if (generation !== this.generation) return;
    this.extending = undefined;
    this.logger.warn({ err: err.message }, 'timestamp oracle could not persist its next window');
    // Waiters learn why; the next request tries again.
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  /** drain serves waiting requests in order until the bound is used up again. */
  private drain(): void {
    while (this.waiting.length > 0) {
      const r = this.tryAlloc(this.waiting[0]!.count);
      if (r === null) {
        this.ensureExtension();
        return;
      }
      this.waiting.shift()!.resolve(r);
    }
    this.maybeExtend();
  }
}
