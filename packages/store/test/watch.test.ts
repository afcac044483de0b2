import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { decode, encode, fromUtf8, utf8, WATCH_PATH, type Region, type TxnCommand, type WatchClientFrame, type WatchServerFrame } from '@flotilla/proto';
import { runTxn } from '@flotilla/client';
import { startTestCluster, type TestCluster } from '../src/testing';
import type { CommandResult } from '../src/raft/proposal';

// The store's change feed (issue #18) on a real one-store cluster (SQLite
// files, sockets): catch-up from a revision, live events pushed from apply,
// and the resolved ts held below a pending lock until it commits; bad
// subscriptions get typed end frames.

let cluster: TestCluster | undefined;
const sockets: RawWatch[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await cluster?.close();
  cluster = undefined;
});

/** RawWatch speaks the /watch protocol directly and records every frame per feed. */
class RawWatch {
  private readonly ws: WebSocket;
  private readonly ready: Promise<void>;
  readonly frames = new Map<number, WatchServerFrame[]>();
  /** maxFramesPerMessage: the most frames one WebSocket message carried (a pass's progress for many feeds goes as one). */
  maxFramesPerMessage = 0;
  constructor(address: string) {
    this.ws = new WebSocket(`ws://${address}${WATCH_PATH}`);
    this.ready = new Promise((res, rej) => {
      this.ws.once('open', () => res());
      this.ws.once('error', rej);
    });
    this.ws.on('message', (d: Buffer) => {
      // One frame per message, or an array of frames (the progress of several feeds of the connection from one pass).
      const raw = decode(d) as WatchServerFrame | WatchServerFrame[];
      const list = Array.isArray(raw) ? raw : [raw];
      this.maxFramesPerMessage = Math.max(this.maxFramesPerMessage, list.length);
      for (const f of list) {
        const list = this.frames.get(f.id) ?? [];
        list.push(f);
        this.frames.set(f.id, list);
      }
    });
    sockets.push(this);
  }
  async send(f: WatchClientFrame): Promise<void> {
    await this.ready;
    this.ws.send(encode(f));
  }
  events(id: number): string[] {
    return (this.frames.get(id) ?? []).flatMap((f) => (f.t === 'events' ? f.events.map((e) => `${e.type} ${fromUtf8(e.key)}${e.value ? `=${fromUtf8(e.value)}` : ''} @${e.revision}`) : []));
  }
  resolved(id: number): bigint[] {
    return (this.frames.get(id) ?? []).flatMap((f) => (f.t === 'progress' ? [f.resolved] : []));
  }
  end(id: number): WatchServerFrame | undefined {
    return (this.frames.get(id) ?? []).find((f) => f.t === 'end');
  }
  close(): void {
    this.ws.close();
  }
}

function leaderRegion(c: TestCluster): Region {
  const v = c.stores[0]!.store.inspect().find((p) => p.isLeader);
  if (!v) throw new Error('no leader');
  return v.region;
}

/** onStore runs one Percolator command through the store's own request path. */
function onStore(c: TestCluster, region: Region, txn: TxnCommand): Promise<CommandResult> {
  const store = c.stores[0]!.store;
  return new Promise((resolve) => store.handleClientRequest({ id: 1, header: { regionId: region.id, regionEpoch: region.epoch }, op: 'txn', txn }, resolve));
}

describe('store change feed', () => {
  it('catches up from a revision, then streams live events; the resolved ts waits below a pending lock', { timeout: 45_000 }, async () => {
    cluster = await startTestCluster({ stores: 1 });
    const c = cluster;
    const t = c.client.txnTransport();
    const first = await runTxn(t, (tx) => {
      tx.put('w/a', '1');
      tx.put('w/b', '1');
    });
    const second = await runTxn(t, (tx) => {
      tx.put('w/a', '2');
      tx.delete('w/b');
      tx.put('x/outside', 'no');
    });
    const region = leaderRegion(c);
    const w = new RawWatch(c.stores[0]!.address);
    await w.send({ t: 'subscribe', id: 1, regionId: region.id, epoch: region.epoch, start: utf8('w/'), end: utf8('w0'), fromRevision: first.commitTs! });
    // Catch-up: only what committed after fromRevision, only inside the range.
    await expect.poll(() => w.events(1), { timeout: 10_000 }).toEqual([`put w/a=2 @${second.commitTs}`, `delete w/b @${second.commitTs}`]);
    await expect.poll(() => w.resolved(1).at(-1) ?? 0n, { timeout: 10_000 }).toBeGreaterThan(second.commitTs!);

    // A prewritten lock holds the resolved ts at or below its start_ts, however long the store advances.
    const s = await c.client.timestamp();
    expect(await onStore(c, region, { type: 'prewrite', mutations: [{ op: 'put', key: utf8('w/c'), value: utf8('3') }], primary: utf8('w/c'), startTs: s, lockTtlMs: 20_000, txnSize: 1 })).toMatchObject({ ok: true, txn: { errors: [] } });
    // A second feed of the same Region, on a range without locks, shows the store kept advancing meanwhile.
    const later = await c.client.timestamp();
    await w.send({ t: 'subscribe', id: 2, regionId: region.id, epoch: region.epoch, start: utf8('z/'), end: utf8('z0'), fromRevision: later });
    await expect.poll(() => w.resolved(2).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(5);
    expect(w.resolved(2).at(-1)!).toBeGreaterThan(s);
    expect(w.resolved(1).filter((r) => r > s)).toEqual([]); // never past the lock's start_ts while the lock is there
    const commitTs = await c.client.timestamp();
    expect(await onStore(c, region, { type: 'commit', keys: [utf8('w/c')], startTs: s, commitTs })).toMatchObject({ ok: true });
    await expect.poll(() => w.events(1).at(-1), { timeout: 10_000 }).toBe(`put w/c=3 @${commitTs}`);
    await expect.poll(() => w.resolved(1).at(-1) ?? 0n, { timeout: 10_000 }).toBeGreaterThan(commitTs);
    // The event came before the progress that passed it (frame order on one feed).
    const frames = w.frames.get(1)!;
    const eventAt = frames.findIndex((f) => f.t === 'events' && f.events.some((e) => e.revision === commitTs));
    const progressAt = frames.findIndex((f) => f.t === 'progress' && f.resolved >= commitTs);
    expect(eventAt).toBeGreaterThanOrEqual(0);
    expect(eventAt).toBeLessThan(progressAt);
    // A 1PC write (one Region) arrives live too.
    const onePc = await runTxn(t, (tx) => tx.put('w/d', '4'));
    await expect.poll(() => w.events(1).at(-1), { timeout: 10_000 }).toBe(`put w/d=4 @${onePc.commitTs}`);
    expect(w.events(1)).toHaveLength(4);
    expect(w.end(1)).toBeUndefined();
    // With prevValue, each change carries the value before it, in the catch-up and live alike.
    await w.send({ t: 'subscribe', id: 3, regionId: region.id, epoch: region.epoch, start: utf8('w/'), end: utf8('w0'), fromRevision: first.commitTs!, prevValue: true });
    const prevs = () => (w.frames.get(3) ?? []).flatMap((f) => (f.t === 'events' ? f.events.map((e) => `${fromUtf8(e.key)}:${e.prevValue ? fromUtf8(e.prevValue) : '-'}`) : []));
    await expect.poll(() => prevs().length, { timeout: 10_000 }).toBe(4);
    await runTxn(t, (tx) => tx.put('w/a', '5'));
    await expect.poll(() => prevs(), { timeout: 10_000 }).toEqual(['w/a:1', 'w/b:1', 'w/c:-', 'w/d:-', 'w/a:2']);
  });

  it('serves many single-key feeds on one connection: each gets exactly its own changes, a pass\'s progress goes as one message, sole feeds get progress after their events', { timeout: 45_000 }, async () => {
    cluster = await startTestCluster({ stores: 1 });
    const c = cluster;
    const region = leaderRegion(c);
    const from = await c.client.timestamp();
    const w = new RawWatch(c.stores[0]!.address);
    const N = 300;
    const key = (i: number): string => `k/${String(i).padStart(3, '0')}`;
    // Feeds 1..N watch one key each (the odd ones sole); feed N+1 the whole prefix, over all of them (nested ranges).
    for (let i = 0; i < N; i++) {
      await w.send({ t: 'subscribe', id: i + 1, regionId: region.id, epoch: region.epoch, start: utf8(key(i)), end: utf8(`${key(i)}\0`), fromRevision: from, ...(i % 2 === 1 ? { sole: true } : {}) });
    }
    await w.send({ t: 'subscribe', id: N + 1, regionId: region.id, epoch: region.epoch, start: utf8('k/'), end: utf8('k0'), fromRevision: from });
    // Non-sole feeds get every pass's progress, in messages of many frames.
    await expect.poll(() => w.resolved(1).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    await expect.poll(() => w.maxFramesPerMessage, { timeout: 10_000 }).toBeGreaterThanOrEqual(N / 2);
    const t = c.client.txnTransport();
    const one = await runTxn(t, (tx) => {
      for (let i = 0; i < N; i++) tx.put(key(i), `v${i}`);
    });
    const two = await runTxn(t, (tx) => tx.put(key(7), 'again'));
    await expect.poll(() => w.events(N + 1).length, { timeout: 10_000 }).toBe(N + 1);
    for (let i = 0; i < N; i++) {
      const want = [`put ${key(i)}=v${i} @${one.commitTs}`, ...(i === 7 ? [`put ${key(i)}=again @${two.commitTs}`] : [])];
      await expect.poll(() => w.events(i + 1), { timeout: 10_000 }).toEqual(want);
    }
    // A sole feed's progress passes its events soon after them (its watcher can release them) ...
    const last = two.commitTs!;
    await expect.poll(() => w.resolved(8).at(-1) ?? 0n, { timeout: 10_000 }).toBeGreaterThanOrEqual(last);
    for (let i = 1; i < N; i += 2) await expect.poll(() => w.resolved(i + 1).at(-1) ?? 0n, { timeout: 10_000 }).toBeGreaterThanOrEqual(one.commitTs!);
    expect(w.end(1)).toBeUndefined();
  });

  it('answers bad subscriptions with typed end frames', { timeout: 30_000 }, async () => {
    cluster = await startTestCluster({ stores: 1, splitKeys: ['m'] });
    const c = cluster;
    const regions = c.stores[0]!.store.inspect().map((p) => p.region).sort((a, b) => a.startKey.length - b.startKey.length);
    const left = regions[0]!;
    const w = new RawWatch(c.stores[0]!.address);
    const now = await c.client.timestamp();
    await w.send({ t: 'subscribe', id: 1, regionId: left.id, epoch: left.epoch, start: utf8('x'), end: utf8('y'), fromRevision: now });
    await w.send({ t: 'subscribe', id: 2, regionId: left.id, epoch: left.epoch, start: utf8('a'), end: utf8('b'), fromRevision: now + (3_600_000n << 18n) });
    await w.send({ t: 'subscribe', id: 3, regionId: left.id, epoch: { ...left.epoch, version: left.epoch.version + 7 }, start: utf8('a'), end: utf8('b'), fromRevision: now });
    await w.send({ t: 'subscribe', id: 4, regionId: 999_999, epoch: left.epoch, start: utf8('a'), end: utf8('b'), fromRevision: now });
    await w.send({ t: 'subscribe', id: 5, regionId: left.id, epoch: left.epoch, start: utf8('b'), end: utf8('a'), fromRevision: now });
    await w.send({ t: 'bogus', id: 6 } as unknown as WatchClientFrame);
    await expect.poll(() => [1, 2, 3, 4, 5, 6].map((id) => (w.end(id) as { error?: { type: string } } | undefined)?.error?.type), { timeout: 10_000 }).toEqual([
      'InvalidRequest',
      'InvalidRequest',
      'EpochNotMatch',
      'RegionNotFound',
      'InvalidRequest',
      'InvalidRequest',
    ]);
    expect((w.end(2) as { error: { message: string } }).error.message).toMatch(/in the future/);
  });
});
