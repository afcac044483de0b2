import { describe, expect, it, vi } from 'vitest';
import { silentLogger, type Peer, type Region, type RegionEpoch, type WatchFeedError } from '@flotilla/proto';
import { Watch, type WatchEnv, type WatchItem } from '../src/watch/watch';
import type { FeedHandlers, FeedSocket } from '../src/watch/socket';

// A feed that ends NotLeader (a leader move) is subscribed again at once on
// the new leader from its own resolved ts (WatchOptions.fastResubscribe),
// keeping the events it already had at or below it; the previous path
// (fastResubscribe: false) scans placement and starts from the watch's revision.

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const peers: Peer[] = [1, 2, 3].map((s) => ({ id: 10 + s, storeId: s, role: 'voter' }));
const regionA: Region = { id: 1, startKey: enc('a'), endKey: enc('m'), epoch: { confVer: 1, version: 2 }, peers };
const regionB: Region = { id: 2, startKey: enc('m'), endKey: enc('z'), epoch: { confVer: 1, version: 2 }, peers };

interface Sub {
  store: string;
  regionId: number;
  from: bigint;
  h: FeedHandlers;
}

class Socket implements FeedSocket {
  usable = true;
  constructor(
    readonly address: string,
    private readonly subs: Sub[],
  ) {}
  subscribe(_id: number, regionId: number, _epoch: RegionEpoch, _s: Uint8Array, _e: Uint8Array, from: bigint, _pv: boolean, h: FeedHandlers): void {
    this.subs.push({ store: this.address, regionId, from, h });
  }
  unsubscribe(): void {}
  pause(): void {}
  resume(): void {}
  close(): void {
    this.usable = false;
  }
}

function env(subs: Sub[], scans: { n: number }): WatchEnv {
  return {
    scanRegions: async () => {
      scans.n++;
      return [
        { region: regionA, leader: peers[0]! },
        { region: regionB, leader: peers[0]! },
      ];
    },
    storeAddress: async (id) => `s${id}`,
    timestamp: async () => 100n,
    dial: { connectTimeoutMs: 1000, logger: silentLogger },
    logger: silentLogger,
    openSocket: (address) => new Socket(address, subs),
  };
}

const put = (key: string, revision: bigint) => ({ type: 'put' as const, key: enc(key), value: enc('v'), revision });

async function setUp(fast: boolean) {
  const subs: Sub[] = [];
  const scans = { n: 0 };
  const w = await Watch.open(env(subs, scans), enc('a'), enc('z'), { fromRevision: 100n, ...(fast ? {} : { fastResubscribe: false }) });
  await vi.waitFor(() => expect(subs.length).toBe(2), { timeout: 2000 });
  const items: WatchItem[] = [];
  void (async () => {
    for await (const e of w) items.push(e);
  })();
  const [a, b] = subs as [Sub, Sub];
  // Region A's feed has events at 110 and 130 and resolved 120; B resolved 105: the watch delivered up to 105.
  a.h.onEvents([put('b', 110n), put('c', 130n)]);
  a.h.onProgress(120n);
  b.h.onProgress(105n);
  expect(w.revision).toBe(105n);
  return { w, subs, scans, items, a, b };
}

const notLeader = (leader?: Peer): WatchFeedError => (leader ? { type: 'NotLeader', regionId: 1, leader } : { type: 'NotLeader', regionId: 1 });

describe('watch re-subscribe after a leader move', () => {
  it('goes straight to the hinted leader from the feed resolved ts and keeps the events at or below it', async () => {
    const { w, subs, scans, items, a, b } = await setUp(true);
    a.h.onEnd(notLeader(peers[1]));
    await vi.waitFor(() => expect(subs.length).toBe(3), { timeout: 2000 });
    const again = subs[2]!;
    expect(again).toMatchObject({ store: 's2', regionId: 1, from: 120n });
    expect(scans.n).toBe(1); // no placement scan for the move
    // B moves on while A is re-subscribed: the watch releases A's kept event at 110 without waiting for A's new feed.
    b.h.onProgress(125n);
    expect(w.revision).toBe(120n);
    again.h.onEvents([put('c', 130n)]);
    again.h.onProgress(140n);
    expect(w.revision).toBe(125n);
    b.h.onProgress(150n);
    expect(w.revision).toBe(140n);
    await vi.waitFor(() => expect(items.map((e) => (e.type === 'progress' ? 'p' : `${new TextDecoder().decode(e.key)}@${e.revision}`))).toEqual(['b@110', 'c@130']));
    expect(w.stats).toMatchObject({ resubscribes: 1, fastResubscribes: 1 });
    // The move is logged once, at the new feed's first progress: end -> subscribe -> progress.
    expect(w.leaderMoveStalls).toHaveLength(1);
    const [stall] = w.leaderMoveStalls;
    expect(stall!.fast).toBe(true);
    expect(stall!.toSubscribeMs).toBeGreaterThanOrEqual(0);
    expect(stall!.toProgressMs).toBeGreaterThanOrEqual(stall!.toSubscribeMs);
    w.close();
  });

  it('without a hint tries the next voter after a short wait, holding the range at its resolved ts meanwhile', async () => {
    const { w, subs, scans, a, b } = await setUp(true);
    a.h.onEnd(notLeader());
    b.h.onProgress(125n);
    expect(w.revision).toBe(120n); // held at A's resolved, not at the watch's 105 and not past 120
    await vi.waitFor(() => expect(subs.length).toBe(3), { timeout: 2000 });
    expect(subs[2]).toMatchObject({ store: 's2', from: 120n });
    // s2 is still campaigning: the next try goes to s3.
    subs[2]!.h.onEnd(notLeader());
    await vi.waitFor(() => expect(subs.length).toBe(4), { timeout: 2000 });
    expect(subs[3]).toMatchObject({ store: 's3', from: 120n });
    expect(scans.n).toBe(1);
    w.close();
  });

  it('gives up the fast path after a bounded number of tries without progress and scans placement', async () => {
    const { w, subs, scans, a } = await setUp(true);
    a.h.onEnd(notLeader(peers[1]));
    for (let i = 0; i < 4; i++) {
      await vi.waitFor(() => expect(subs.length).toBe(3 + i), { timeout: 2000 });
      subs[subs.length - 1]!.h.onEnd(notLeader(peers[(i + 2) % 3]));
    }
    await vi.waitFor(() => expect(scans.n).toBe(2), { timeout: 2000 });
    await vi.waitFor(() => expect(subs.length).toBe(7), { timeout: 2000 });
    expect(subs[6]!.from).toBe(105n); // the ordinary path starts from the watch's revision
    w.close();
  });

  it('fastResubscribe false keeps the previous path: placement scan, from the watch revision', async () => {
    const { w, subs, scans, a } = await setUp(false);
    a.h.onEnd(notLeader(peers[1]));
    await vi.waitFor(() => expect(subs.length).toBe(3), { timeout: 2000 });
    expect(scans.n).toBe(2);
    expect(subs[2]).toMatchObject({ store: 's2', from: 105n });
    expect(w.stats.fastResubscribes).toBe(0);
    w.close();
  });
});
