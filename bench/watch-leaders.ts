// bench/watch-leaders.ts — bench:watch's view of Region leaders: wait for them to settle before a window, and record moves during it.
import { runTxn, type FlotillaClient } from '@flotilla/client';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** leaders: each Region's leader store, as placement knows it. */
export async function leaders(c: FlotillaClient): Promise<Map<number, number>> {
  const m = new Map<number, number>();
  for (const r of await c.regions()) m.set(r.region.id, r.leader?.storeId ?? 0);
  return m;
}

/** SETTLE_MS: how long no leader may move before the window starts; MOVE_POLL_MS: how often placement's leaders are read. */
const SETTLE_MS = 3000;
export const MOVE_POLL_MS = 250;

/**
 * settleLeaders waits (at most boundMs) until leaders are balanced over the
 * 3 stores and none moved for SETTLE_MS. Meanwhile it writes each of
 * warmKeys (one per Region; none: an idle wait) about every second: without traffic the leaders
 * stayed on one store for the whole 60 s wait (17 of 17 on store 1) and
 * placement's balancer moved 8 of them about 7 s into the window, once the
 * writers had woken the Regions (likely: idle Regions hibernate, and a
 * transfer reaches a leader in the answer to its Region heartbeat).
 */
export async function settleLeaders(c: FlotillaClient, warmKeys: string[], boundMs: number): Promise<{ settled: boolean; moves: number; regions: number; counts: string }> {
  let last = await leaders(c);
  let stableSince = performance.now();
  let moves = 0;
  let lastCounts = '';
  let warmAt = -Infinity;
  for (const deadline = performance.now() + boundMs; performance.now() < deadline; await sleep(MOVE_POLL_MS)) {
    if (warmKeys.length > 0 && performance.now() - warmAt >= 1000) {
      warmAt = performance.now();
      await Promise.all(warmKeys.map((k) => runTxn(c.txnTransport(), (tx) => tx.put(k, 'v')).catch(() => undefined)));
    }
    const now = await leaders(c);
    let changed = now.size !== last.size;
    for (const [id, s] of now) if (last.get(id) !== s) changed = true;
    if (changed) {
      moves++;
      stableSince = performance.now();
    }
    const counts = new Map<number, number>();
    for (const s of now.values()) if (s !== 0) counts.set(s, (counts.get(s) ?? 0) + 1);
    const n = [...counts.values()];
    last = now;
    lastCounts = [...counts.entries()].map(([s, k]) => `s${s}:${k}`).join(' ');
    const balanced = n.length === 3 && Math.max(...n) - Math.min(...n) <= 1;
    if (!balanced) stableSince = performance.now();
    else if (performance.now() - stableSince >= SETTLE_MS) return { settled: true, moves, regions: now.size, counts: lastCounts };
  }
  return { settled: false, moves, regions: last.size, counts: lastCounts };
}

/** LeaderMoves polls placement's leaders during the window and records each Region whose leader changed (a poll may miss a quick move back). */
export class LeaderMoves {
  private readonly moves: { atMs: number; regionId: number }[] = [];
  private loop: Promise<void> | undefined;
  private running = false;

  constructor(
    private readonly c: FlotillaClient,
    private last: Map<number, number>,
  ) {}

  start(): void {
    if (this.loop !== undefined) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await sleep(MOVE_POLL_MS);
        const now = await leaders(this.c).catch(() => undefined);
        if (now === undefined) continue;
        for (const [id, s] of now) if (this.last.has(id) && this.last.get(id) !== s) this.moves.push({ atMs: performance.now(), regionId: id });
        this.last = now;
      }
    })();
  }

  async stop(): Promise<{ atMs: number; regionId: number }[]> {
    this.running = false;
    await this.loop;
    return this.moves;
  }
}
