import { describe, expect, it } from 'vitest';
import { AnswerWindow, RateLimitedLog, httpTimeoutOptions, type LogClock, type Logger } from '@flotilla/proto';

/** ManualClock runs scheduled callbacks only when the test advances it. */
class ManualClock implements LogClock {
  nowMs = 0;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  schedule(fn: () => void, delayMs: number): () => void {
    const t = { at: this.nowMs + delayMs, fn, live: true };
    this.timers.push(t);
    return () => (t.live = false);
  }
  advance(ms: number): void {
    const until = this.nowMs + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.live = false;
      this.nowMs = due.at;
      due.fn();
    }
    this.nowMs = until;
    this.timers = this.timers.filter((t) => t.live);
  }
  get pending(): number {
    return this.timers.filter((t) => t.live).length;
  }
}

function recorder(): { logger: Logger; lines: { obj: Record<string, unknown>; msg: string | undefined }[] } {
  const lines: { obj: Record<string, unknown>; msg: string | undefined }[] = [];
  const at = (obj: object, msg?: string) => void lines.push({ obj: obj as Record<string, unknown>, msg });
  return { logger: { debug: at, info: at, warn: at, error: at }, lines };
}

describe('RateLimitedLog', () => {
  it('logs the first refusal of a source at once, then one summary per window while it goes on, then forgets a quiet source', () => {
    const clock = new ManualClock();
    const r = recorder();
    const log = new RateLimitedLog(r.logger, { windowMs: 10_000, clock });
    log.warn('10.0.0.5', { remote: '10.0.0.5' }, 'connection refused: wrong token');
    expect(r.lines).toEqual([{ obj: { remote: '10.0.0.5' }, msg: 'connection refused: wrong token' }]);
    for (let i = 0; i < 1234; i++) log.warn('10.0.0.5', { remote: '10.0.0.5' }, 'connection refused: wrong token');
    clock.advance(9_999);
    expect(r.lines).toHaveLength(1);
    clock.advance(1);
    expect(r.lines[1]).toEqual({
      obj: { remote: '10.0.0.5', suppressed: 1234, windowMs: 10_000 },
      msg: 'connection refused: wrong token (1234 more from the same source in the last 10 s)',
    });
    // Still going in the next window: counted, one more summary.
    for (let i = 0; i < 7; i++) log.warn('10.0.0.5', { remote: '10.0.0.5' }, 'connection refused: wrong token');
    clock.advance(10_000);
    expect(r.lines.map((l) => l.obj['suppressed'])).toEqual([undefined, 1234, 7]);
    // A quiet window ends the key; its next refusal is logged at once again.
    clock.advance(10_000);
    expect(log.tracked).toBe(0);
    expect(clock.pending).toBe(0);
    log.warn('10.0.0.5', { remote: '10.0.0.5' }, 'connection refused: wrong token');
    expect(r.lines).toHaveLength(4);
    expect(r.lines[3]!.obj).toEqual({ remote: '10.0.0.5' });
  });

  it('keeps sources apart and bounds how many it tracks', () => {
    const clock = new ManualClock();
    const r = recorder();
    const log = new RateLimitedLog(r.logger, { windowMs: 1_000, maxKeys: 2, clock });
    for (const ip of ['a', 'b', 'a', 'b', 'c', 'd', 'e']) log.warn(ip, { remote: ip }, 'refused');
    expect(r.lines.map((l) => l.obj['remote'])).toEqual(['a', 'b', 'c']);
    expect(r.lines[2]!.obj['overflow']).toBe(true);
    expect(r.lines[2]!.msg).toBe('refused (and others: more than 2 sources)');
    expect(log.tracked).toBe(3);
    clock.advance(1_000);
    expect(r.lines.slice(3).map((l) => [l.obj['remote'], l.obj['suppressed']])).toEqual([
      ['a', 1],
      ['b', 1],
      ['c', 2],
    ]);
  });

  it('close logs what is pending and cancels its timers', () => {
    const clock = new ManualClock();
    const r = recorder();
    const log = new RateLimitedLog(r.logger, { clock });
    log.warn('x', {}, 'refused');
    log.warn('x', {}, 'refused');
    log.close();
    expect(r.lines.map((l) => l.obj['suppressed'])).toEqual([undefined, 1]);
    expect(log.tracked).toBe(0);
    clock.advance(60_000);
    expect(r.lines).toHaveLength(2);
  });
});

describe('AnswerWindow', () => {
  function socket(): { pause(): void; resume(): void; calls: string[] } {
    const calls: string[] = [];
    return { pause: () => calls.push('pause'), resume: () => calls.push('resume'), calls };
  }

  it('stops reading at the in-flight limit, holds frames already read, and handles them in order once half are answered', async () => {
    const s = socket();
    const clock = new ManualClock();
    const stalls: object[] = [];
    const w = new AnswerWindow(s, { maxInFlight: 4, maxBufferedBytes: 1_000, stallAfterMs: 1_000 }, (st) => stalls.push(st), clock);
    const handled: number[] = [];
    for (let i = 1; i <= 6; i++) w.request(() => handled.push(i));
    // The fourth reached the limit; the fifth and sixth were read before the pause took effect.
    expect(handled).toEqual([1, 2, 3, 4]);
    expect(s.calls).toEqual(['pause']);
    expect(w.waiting).toBe(2);
    clock.advance(999);
    expect(stalls).toEqual([]);
    clock.advance(1);
    expect(stalls).toEqual([{ inFlight: 4, bufferedBytes: 0, held: 2 }]);
    const sent = [w.answer(10), w.answer(10)];
    // At half: the held frames run in a microtask, not inside answer(), and the socket is read again after them.
    expect(handled).toEqual([1, 2, 3, 4]);
    await Promise.resolve();
    expect(handled).toEqual([1, 2, 3, 4, 5, 6]);
    expect(s.calls).toEqual(['pause']);
    expect(w.isPaused).toBe(true); // 5 and 6 brought it back to 4 in flight
    for (const d of sent) d();
    for (let i = 0; i < 2; i++) w.answer(0)();
    await Promise.resolve();
    expect(s.calls).toEqual(['pause', 'resume']);
    // A short pause is not reported.
    clock.advance(5_000);
    expect(stalls).toHaveLength(1);
    expect(clock.pending).toBe(0);
  });

  it('stops reading while answers the client has not read reach the byte limit', () => {
    const s = socket();
    const w = new AnswerWindow(s, { maxInFlight: Infinity, maxBufferedBytes: 1_000 });
    const sent: ((err?: Error) => void)[] = [];
    for (let i = 0; i < 3; i++) w.request(() => sent.push(w.answer(400)));
    expect(s.calls).toEqual(['pause']);
    expect(w.waiting).toBe(0);
    sent[0]!();
    sent[0]!(); // a callback called twice releases its bytes once
    expect(w.isPaused).toBe(true);
    sent[1]!();
    expect(s.calls).toEqual(['pause', 'resume']);
    expect(w.isPaused).toBe(false);
  });

  it('reports no stall for a connection closed while paused, and drops its held frames', () => {
    const clock = new ManualClock();
    const stalls: object[] = [];
    const w = new AnswerWindow(socket(), { maxInFlight: 1, maxBufferedBytes: 1_000 }, (st) => stalls.push(st), clock);
    const handled: number[] = [];
    for (let i = 1; i <= 3; i++) w.request(() => handled.push(i));
    expect(w.waiting).toBe(2);
    w.close();
    clock.advance(10_000);
    expect(stalls).toEqual([]);
    expect(w.waiting).toBe(0);
    expect(handled).toEqual([1]);
  });
});

describe('httpTimeoutOptions', () => {
  it('checks often enough for the header timeout to hold, and never sets a request timeout below it', () => {
    expect(httpTimeoutOptions()).toEqual({ headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000, handshakeTimeout: 10_000 });
    expect(httpTimeoutOptions(200)).toMatchObject({ headersTimeout: 200, connectionsCheckingInterval: 50 });
    expect(httpTimeoutOptions(60_000).requestTimeout).toBe(60_000);
    expect(() => httpTimeoutOptions(0)).toThrow(RangeError);
  });
});
