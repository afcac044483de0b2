import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PlacementClient, PlacementError, startPlacementServer } from '../src';
import { TimestampOracle } from '../src/tso/oracle';
import { TsoBatcher } from '../src/tso/batcher';
import { TsoGate } from '../src/raft/tso-gate';
import { LOGICAL_LIMIT, composeTs, firstOf, lastOf, type TimestampRange } from '../src/tso/timestamp';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** FakeClock is a wall clock a test moves by hand, forwards or backwards. */
class FakeClock {
  constructor(public ms: number) {}
  readonly now = (): number => this.ms;
}

/** DiskBound stands for the persisted bound; persisting can be made to fail or to wait. */
class DiskBound {
  upperMs = 0;
  writes = 0;
  fail: Error | undefined;
  hold = false;
  private held: (() => void)[] = [];
  readonly persist = (upperMs: number): Promise<void> => {
    if (this.fail) return Promise.reject(this.fail);
    const done = (): void => {
      this.upperMs = Math.max(this.upperMs, upperMs);
      this.writes++;
    };
    if (!this.hold) {
      done();
      return Promise.resolve();
    }
    return new Promise((resolve) => this.held.push(() => (done(), resolve())));
  };
  release(): void {
    for (const f of this.held.splice(0)) f();
  }
}

async function take(o: TimestampOracle, count: number): Promise<TimestampRange> {
  return await o.getTimestamps(count);
}

describe('TimestampOracle', () => {
  it('hands out strictly increasing timestamps within a millisecond, and runs ahead of the clock once the logical part is used up', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const disk = new DiskBound();
    const o = new TimestampOracle({ clock: clock.now, persist: disk.persist });
    o.start(0);
    let last = -1n;
    for (let i = 0; i < 10; i++) {
      const r = await take(o, 60_000);
      expect(r.firstLogical + r.count).toBeLessThanOrEqual(LOGICAL_LIMIT);
      expect(firstOf(r)).toBeGreaterThan(last);
      last = lastOf(r);
    }
    // 600,000 timestamps in one frozen millisecond: the physical part ran ahead by two milliseconds.
    expect(Number(last >> 18n)).toBe(clock.ms + 2);
    expect(disk.writes).toBe(1);
  });

  it('never goes back when the wall clock jumps backwards: the logical part advances', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const disk = new DiskBound();
    const o = new TimestampOracle({ clock: clock.now, persist: disk.persist, saveIntervalMs: 3000 });
    o.start(0);
    const a = lastOf(await take(o, 1));
    clock.ms -= 60_000; // NTP step back by a minute
    const b = await take(o, 5);
    expect(firstOf(b)).toBe(a + 1n);
    clock.ms += 60_001;
    const c = await take(o, 1);
    expect(c.physicalMs).toBe(clock.ms);
    expect(firstOf(c)).toBeGreaterThan(lastOf(b));
  });

  it('starts above the persisted bound after a restart or a new leader, even when the clock is behind it', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const disk = new DiskBound();
    const first = new TimestampOracle({ clock: clock.now, persist: disk.persist, saveIntervalMs: 3000 });
    first.start(0);
    const before = lastOf(await take(first, 100));
    first.stop(new Error('leader lost'));
    expect(() => first.getTimestamps(1)).toThrow(PlacementError);
    clock.ms -= 10_000; // the new leader's clock is behind
    const second = new TimestampOracle({ clock: clock.now, persist: disk.persist, saveIntervalMs: 3000 });
    second.start(disk.upperMs);
    const after = await take(second, 1);
    expect(firstOf(after)).toBeGreaterThan(before);
    expect(after.physicalMs).toBe(clock.ms + 10_000 + 3000);
  });

  it('persists one bound per window, ahead of time, whatever the request rate', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const disk = new DiskBound();
    const o = new TimestampOracle({ clock: clock.now, persist: disk.persist, saveIntervalMs: 3000 });
    o.start(0);
    for (let ms = 0; ms < 30_000; ms += 10) {
      clock.ms += 10;
      for (let i = 0; i < 20; i++) await take(o, 1);
    }
    // 60,000 requests over 30 s: one bound every ~2 s (each reaches 3 s ahead, renewed with a third left).
    expect(disk.writes).toBeGreaterThanOrEqual(10);
    expect(disk.writes).toBeLessThanOrEqual(20);
    expect(disk.upperMs).toBeGreaterThan(clock.ms);
  });

  it('makes requests wait while the bound is being persisted, and fails them when persisting fails', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const disk = new DiskBound();
    disk.hold = true;
    const o = new TimestampOracle({ clock: clock.now, persist: disk.persist, saveIntervalMs: 1000 });
    o.start(0);
    expect(o.serving).toBe(false);
    const waiting = Promise.all([o.getTimestamps(1), o.getTimestamps(2), o.getTimestamps(3)]);
    disk.release();
    const rs = await waiting;
    expect(rs.map((r) => r.firstLogical)).toEqual([0, 1, 3]);
    // A clock jump past the whole window: the next request waits for a bound above the new time.
    clock.ms += 3_600_000;
    const later = o.getTimestamps(1);
    expect(later).toBeInstanceOf(Promise);
    disk.release();
    expect((await later).physicalMs).toBe(clock.ms);
    // Persisting fails (no quorum): waiters get the error, and the next request tries again.
    clock.ms += 3_600_000;
    disk.hold = false;
    disk.fail = new PlacementError('NotLeader', 'lost quorum');
    await expect(o.getTimestamps(1)).rejects.toThrow(/lost quorum/);
    disk.fail = undefined;
    expect((await o.getTimestamps(1)).physicalMs).toBe(clock.ms);
  });

  it('bounds the requests waiting for a window', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const disk = new DiskBound();
    disk.hold = true;
    const o = new TimestampOracle({ clock: clock.now, persist: disk.persist, maxWaiting: 2 });
    o.start(0);
    const a = o.getTimestamps(1);
    const b = o.getTimestamps(1);
    expect(() => o.getTimestamps(1)).toThrow(/already wait/);
    o.stop(new PlacementError('NotLeader', 'stepped down'));
    await expect(a).rejects.toThrow(/stepped down/);
    await expect(b).rejects.toThrow(/stepped down/);
  });

  it('property: timestamps strictly increase across any clock moves, restarts and request sizes', async () => {
    type Step = { kind: 'clock'; deltaMs: number } | { kind: 'take'; count: number } | { kind: 'restart' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant('clock' as const), deltaMs: fc.integer({ min: -20_000, max: 20_000 }) }),
      fc.record({ kind: fc.constant('take' as const), count: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 65_536 })) }),
      fc.record({ kind: fc.constant('restart' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), async (steps) => {
        const clock = new FakeClock(1_700_000_000_000);
        const disk = new DiskBound();
        const make = (): TimestampOracle => {
          const o = new TimestampOracle({ clock: clock.now, persist: disk.persist, saveIntervalMs: 3000 });
          o.start(disk.upperMs);
          return o;
        };
        let o = make();
        let last = -1n;
        for (const s of steps) {
          if (s.kind === 'clock') clock.ms += s.deltaMs;
          else if (s.kind === 'restart') {
            o.stop(new Error('restart'));
            o = make();
          } else {
            const r = await take(o, s.count);
            expect(r.count).toBe(s.count);
            expect(firstOf(r)).toBeGreaterThan(last);
            // Invariant: nothing handed out reaches the persisted bound.
            expect(r.physicalMs).toBeLessThan(disk.upperMs);
            last = lastOf(r);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('TsoGate (the leader confirms it still leads before handing out timestamps)', () => {
  function gate(opts: { leaseAllowed?: () => boolean } = {}) {
    const clock = new FakeClock(1_700_000_000_000);
    const disk = new DiskBound();
    const oracle = new TimestampOracle({ clock: clock.now, persist: disk.persist });
    oracle.start(0);
    const rounds: Uint8Array[] = [];
    let mono = 1000;
    const g = new TsoGate({ term: 3, oracle, readIndex: (ctx) => rounds.push(ctx), singleVoter: () => false, leaseAllowed: opts.leaseAllowed ?? (() => true), leaseMs: 800, now: () => mono });
    return { g, rounds, advance: (ms: number) => (mono += ms) };
  }

  it('waits for a confirmed round, then serves within the lease without one, until the lease runs out', async () => {
    const { g, rounds, advance } = gate();
    const first = g.request(2);
    const second = g.request(1);
    expect(first).toBeInstanceOf(Promise);
    expect(rounds).toHaveLength(1); // one round; the second request waits for it too, and the lease it brings covers both
    advance(5);
    g.onReadState(rounds[0]!);
    const [a, b] = await Promise.all([first, second]);
    expect(firstOf(b!)).toBeGreaterThan(lastOf(a!));
    // Inside the lease (800 ms from when the round was asked for): at once.
    advance(700);
    expect(g.request(1)).not.toBeInstanceOf(Promise);
    expect(rounds).toHaveLength(1);
    // Past it: a new round.
    advance(200);
    const late = g.request(1);
    expect(late).toBeInstanceOf(Promise);
    expect(rounds).toHaveLength(2);
    g.onReadState(new Uint8Array(8)); // some other round's answer: not ours
    g.onReadState(rounds[1]!);
    await late;
  });

  it('renews the lease ahead of time while timestamps are asked for, and never trusts it during a leader transfer', async () => {
    const lease = { allowed: true };
    const { g, rounds, advance } = gate({ leaseAllowed: () => lease.allowed });
    const p = g.request(1);
    g.onReadState(rounds[0]!);
    await p;
    advance(500);
    g.tick(3000); // under half the lease left, and busy: renew
    expect(rounds).toHaveLength(2);
    g.onReadState(rounds[1]!);
    advance(700);
    expect(g.request(1)).not.toBeInstanceOf(Promise);
    lease.allowed = false;
    const strict = g.request(1);
    expect(strict).toBeInstanceOf(Promise);
    const after = g.request(1); // arrives during the round: without a lease it needs a round of its own
    g.onReadState(rounds[2]!);
    await strict;
    expect(rounds).toHaveLength(4);
    g.onReadState(rounds[3]!);
    await after;
    lease.allowed = true;
    g.endLease();
    expect(g.request(1)).toBeInstanceOf(Promise);
  });

  it('fails a round nobody confirms (no quorum) and everything waiting when the term ends', async () => {
    const { g, rounds, advance } = gate();
    const p = g.request(1);
    advance(3001);
    g.tick(3000);
    await expect(p).rejects.toThrow(/could not confirm/);
    const q = g.request(1);
    expect(rounds).toHaveLength(2);
    g.fail(new PlacementError('Unavailable', 'stepped down'));
    await expect(q).rejects.toThrow(/stepped down/);
    expect(() => g.request(1)).toThrow(/stepped down/);
  });
});

describe('TsoBatcher', () => {
  it('serves concurrent requests with few round trips, in arrival order', async () => {
    let physicalMs = 1_700_000_000_000;
    const counts: number[] = [];
    const b = new TsoBatcher(
      async (count) => {
        counts.push(count);
        await new Promise((r) => setImmediate(r));
        return { physicalMs: physicalMs++, firstLogical: 0, count };
      },
      100_000,
      65_536,
    );
    const ts = await Promise.all(Array.from({ length: 1000 }, () => b.next()));
    for (let i = 1; i < ts.length; i++) expect(ts[i]!).toBeGreaterThan(ts[i - 1]!);
    expect(counts.reduce((a, c) => a + c, 0)).toBe(1000);
    expect(b.batches).toBeLessThanOrEqual(2);
    expect(ts[0]).toBe(composeTs(1_700_000_000_000, 0));
  });

  it('fails a batch whose round trip failed and goes on with the next', async () => {
    let calls = 0;
    const b = new TsoBatcher(
      async (count) => {
        if (calls++ === 0) throw new PlacementError('Unavailable', 'placement down');
        return { physicalMs: 5, firstLogical: 0, count };
      },
      10,
      65_536,
    );
    await expect(b.next()).rejects.toThrow(/placement down/);
    expect(await b.next()).toBe(composeTs(5, 0));
    const many = Array.from({ length: 10 }, () => b.next());
    await expect(b.next()).rejects.toThrow(/already pending/);
    await Promise.all(many);
  });
});

describe('getTimestamps over the socket', () => {
  it('serves timestamps that keep increasing across a restart with the clock set back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'placement-tso-'));
    dirs.push(dir);
    const clock = new FakeClock(Date.now());
    let server = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0', clock: clock.now });
    let client = new PlacementClient({ addresses: [server.address] });
    const seen: bigint[] = [];
    try {
      seen.push(...(await Promise.all(Array.from({ length: 500 }, () => client.timestamp()))));
      const range = await client.getTimestamps(1000);
      expect(range.last - range.first).toBe(999n);
      seen.push(range.first, range.last);
      await expect(client.call('getTimestamps', { count: 0 })).rejects.toThrow(/count/);
      await expect(client.call('getTimestamps', { count: 1 << 20 })).rejects.toThrow(/count/);
    } finally {
      client.close();
      await server.close();
    }
    clock.ms -= 30_000;
    server = await startPlacementServer({ dataDir: dir, listen: '127.0.0.1:0', clock: clock.now });
    client = new PlacementClient({ addresses: [server.address] });
    try {
      const after = await client.timestamp();
      for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
      expect(after).toBeGreaterThan(seen[seen.length - 1]!);
    } finally {
      client.close();
      await server.close();
    }
  });
});
