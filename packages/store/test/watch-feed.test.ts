import { describe, expect, it } from 'vitest';
import { compareKeys, WATCH_LIMITS, type WatchServerFrame } from '@flotilla/proto';
import { Feed, type WatchConn } from '../src/watch/feed';
import { FeedIndex } from '../src/watch/feed-index';
import type { Peer } from '../src/raft/peer';

// Pure parts of the store's change feed (issue #18 Performance): the index
// that finds the feeds of a key, checked against the linear walk it
// replaced on random ranges, and a sole feed's progress gate.

const conn: WatchConn & { sent: WatchServerFrame[] } = {
  sent: [],
  send(f) {
    this.sent.push(f);
  },
  bufferedBytes: () => 0,
  tooSlow: () => {},
};
const peer = { regionId: 1 } as unknown as Peer;
const feed = (id: number, start: Uint8Array, end: Uint8Array, sole = false): Feed => new Feed(id, conn, peer, 1, start, end, 10n, false, sole);

/** rng: a small seeded generator (mulberry32), so a failure names the seed that replays it. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('FeedIndex', () => {
  it('finds exactly the feeds a linear walk finds, for keys, prefixes, nested and unbounded ranges, as feeds come and go', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const key = (): Uint8Array => Uint8Array.from({ length: 1 + Math.floor(r() * 3) }, () => 97 + Math.floor(r() * 4));
      const index = new FeedIndex();
      const all: Feed[] = [];
      for (let i = 0; i < 80; i++) {
        const kind = r();
        let start = key();
        let end: Uint8Array;
        if (kind < 0.4) end = Uint8Array.from([...start, 0]); // one key
        else if (kind < 0.9) {
          end = key();
          if (compareKeys(start, end) > 0) [start, end] = [end, start];
          if (compareKeys(start, end) === 0) end = Uint8Array.from([...start, 0]);
        } else end = new Uint8Array(0); // unbounded
        const f = feed(i + 1, start, end);
        all.push(f);
        index.add(f);
        if (r() < 0.2 && all.length > 1) {
          const gone = all.splice(Math.floor(r() * all.length), 1)[0]!;
          expect(index.delete(gone)).toBe(true);
        }
        for (let q = 0; q < 10; q++) {
          const k = r() < 0.3 ? Uint8Array.from([...all[Math.floor(r() * all.length)]!.start]) : key();
          const got: number[] = [];
          index.covering(k, (x) => got.push(x.id));
          const want = all.filter((x) => x.covers(k)).map((x) => x.id);
          const g = got.sort((a, b) => a - b).join(',');
          const x = want.sort((a, b) => a - b).join(',');
          if (g !== x) expect(g, `seed ${seed}, key ${Buffer.from(k).toString('hex')}`).toBe(x);
        }
      }
      expect(index.size).toBe(all.length);
    }
  });
});

describe('Feed progress', () => {
  it('sends every new resolved ts to a feed with other feeds in its watch, but a sole feed only after events or once per interval', () => {
    const shared = feed(1, Uint8Array.from([1]), Uint8Array.from([2]));
    const sole = feed(2, Uint8Array.from([1]), Uint8Array.from([2]), true);
    for (const f of [shared, sole]) f.finishCatchUp();
    const t0 = 1_000_000;
    expect(shared.takeProgress(20n, t0)).toBe(true);
    expect(sole.takeProgress(20n, t0)).toBe(true); // the first one goes
    expect(shared.takeProgress(30n, t0 + 150)).toBe(true);
    expect(sole.takeProgress(30n, t0 + 150)).toBe(false); // idle: nothing to release
    expect(sole.resolved).toBe(20n);
    sole.live([{ type: 'put', key: Uint8Array.from([1]), value: Uint8Array.from([9]), revision: 35n }]);
    expect(sole.takeProgress(40n, t0 + 300)).toBe(true); // it has an event to release
    expect(sole.takeProgress(50n, t0 + 450)).toBe(false);
    expect(sole.takeProgress(60n, t0 + 300 + WATCH_LIMITS.soleProgressIntervalMs)).toBe(true); // now and then, so its watch's revision moves
    expect(sole.takeProgress(60n, t0 + 5000)).toBe(false); // never the same or a lower ts
    expect(sole.resolved).toBe(60n);
  });
});
