import { afterEach, expect, it, vi } from 'vitest';
import { fromUtf8, type Region } from '@flotilla/proto';
import { ClientError, CompactedError, runTxn, type Watch, type WatchItem } from '@flotilla/client';
import { PlacementClient } from '@flotilla/placement';
import { startTestCluster, type TestCluster } from '../src/testing';
import type { CommandResult } from '../src/raft/proposal';

// client.watch on 3 real stores (SQLite, sockets; issue #18): transactions
// write across the Regions of a prefix while Regions split, merge and a
// leader moves; the events the watcher got must be exactly the committed writes
// of its range after its start revision (recorded from runTxn's commit
// ts), in revision order, each once.

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

interface Change {
  revision: bigint;
  key: string;
  line: string;
}

/** collect drains a watch into changes (and the last progress) until stopped. */
function collect(w: Watch): { changes: Change[]; progress: bigint[]; done: Promise<unknown> } {
  const changes: Change[] = [];
  const progress: bigint[] = [];
  const done = (async () => {
    for await (const item of w as AsyncIterable<WatchItem>) {
      if (item.type === 'progress') progress.push(item.revision);
      else changes.push({ revision: item.revision, key: fromUtf8(item.key), line: `${item.revision} ${item.type} ${fromUtf8(item.key)}${item.value ? `=${fromUtf8(item.value)}` : ''}` });
    }
  })().catch((e: unknown) => e);
  return { changes, progress, done };
}

function leaderOf(c: TestCluster, regionId: number): { index: number; region: Region; peers: Region['peers'] } | undefined {
  for (const [index, s] of c.stores.entries()) {
    const v = s?.store.inspectRegion(regionId);
    if (v?.isLeader) return { index, region: v.region, peers: v.region.peers };
  }
  return undefined;
}

it('delivers exactly the committed writes of its range, in revision order, across splits, a leader transfer and a merge', { timeout: 90_000 }, async () => {
  cluster = await startTestCluster({ stores: 3, splitKeys: ['p/2', 'p/4', 'p/6', 'q'], client: { timeoutMs: 20_000 } });
  const c = cluster;
  const t = c.client.txnTransport();
  // Written before the watch starts: must not show.
  await runTxn(t, (tx) => tx.put('p/0a', 'before'));
  const w = await c.client.watch('p/', { progressNotify: true });
  const got = collect(w);
  const expected: Change[] = [];
  let writing = true;
  const writer = async (id: number) => {
    for (let i = 0; writing; i++) {
      const keys = [0, 1, 2, 3].map((j) => `p/${(i * 3 + j * 2 + id) % 8}${String.fromCharCode(97 + ((i + id) % 3))}`);
      const uniq = [...new Set(keys)];
      const del = i % 5 === 4;
      try {
        const r = await runTxn(t, (tx) => {
          for (const k of uniq) del && k === uniq[0] ? tx.delete(k) : tx.put(k, `w${id}-${i}`);
          tx.put(`z/${id}`, 'outside'); // outside the prefix: never an event
        });
        for (const k of uniq) expected.push({ revision: r.commitTs!, key: k, line: `${r.commitTs} ${del && k === uniq[0] ? 'delete' : 'put'} ${k}${del && k === uniq[0] ? '' : `=w${id}-${i}`}` });
      } catch (e) {
        if (!(e instanceof ClientError)) throw e;
        if (e.code === 'Undetermined') throw new Error(`a transaction's outcome is unknown; the test cannot check the watch exactly: ${e.message}`);
      }
    }
  };
  const writers = [writer(1), writer(2)];
  // Splits under the writers (more Regions of the prefix), then a leader transfer of one of them.
  await expect.poll(() => expected.length, { timeout: 20_000 }).toBeGreaterThan(20);
  await c.client.split('p/1');
  await c.client.split('p/5');
  const target = (await c.client.regions()).find((r) => r.region.startKey.length > 0 && fromUtf8(r.region.startKey) === 'p/4')!.region;
  // Placement may move leaders too; ask whichever store leads now until one transfer is accepted.
  const from = await vi.waitFor(
    async () => {
      const l = leaderOf(c, target.id);
      if (!l) throw new Error('no leader yet');
      const to = l.peers.find((p) => p.storeId !== c.stores[l.index]!.storeId && p.role === 'voter')!;
      const r = await new Promise<CommandResult>((resolve) =>
        c.stores[l.index]!.store.handleClientRequest({ id: 1, header: { regionId: target.id, regionEpoch: l.region.epoch }, op: 'admin', admin: { type: 'transferLeader', peer: to } }, resolve),
      );
      if (!r.ok) throw new Error(`transfer refused: ${r.error.type}`);
      return l;
    },
    { timeout: 20_000, interval: 100 },
  );
  await expect.poll(() => leaderOf(c, target.id)?.index, { timeout: 20_000 }).not.toBe(from.index);
  // And a merge: the Region [p/1, p/2) goes back into its left neighbour.
  await c.client.merge('p/1', 'p/0a');
  const mark = expected.length;
  await expect.poll(() => expected.length, { timeout: 20_000 }).toBeGreaterThan(mark + 20);
  writing = false;
  await Promise.all(writers);
  const end = await c.client.timestamp();
  await expect.poll(() => w.revision, { timeout: 30_000 }).toBeGreaterThanOrEqual(end);
  // The splits, the transfer and the merge ended feeds, and the watch subscribed again each time.
  expect(w.stats.resubscribes).toBeGreaterThanOrEqual(4);
  w.close();
  expect(await got.done).toBeUndefined();
  const want = expected.sort((a, b) => (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : a.key < b.key ? -1 : 1)).map((x) => x.line);
  const have = got.changes.filter((x) => x.revision <= end).map((x) => x.line);
  expect(have.length).toBe(want.length);
  expect(have).toEqual(want);
  // Progress only grows, and the regions really split (6+ Regions under the prefix).
  expect(got.progress.every((p, i) => i === 0 || p > got.progress[i - 1]!)).toBe(true);
  expect((await c.client.regions()).filter((r) => fromUtf8(r.region.startKey).startsWith('p/')).length).toBeGreaterThanOrEqual(4);
});

it('refuses a revision in the future, an empty range and a compacted start with typed errors', { timeout: 45_000 }, async () => {
  cluster = await startTestCluster({ stores: 1, placement: { gc: { lifeTimeMs: 200, intervalMs: 50 } } });
  const c = cluster;
  const now = await c.client.timestamp();
  await expect(c.client.watch('a/', { fromRevision: now + (3_600_000n << 18n) })).rejects.toMatchObject({ code: 'FutureRevision' });
  await expect(c.client.watch({ start: 'b', end: 'a' })).rejects.toMatchObject({ code: 'InvalidArgument' });
  // Let GC's safe point pass `now`: a watch from below it is Compacted and names the oldest revision it could start from.
  const pd = new PlacementClient({ addresses: [c.placementAddress] });
  try {
    await expect.poll(() => pd.getGcSafePoint(), { timeout: 20_000, interval: 100 }).toBeGreaterThan(now);
  } finally {
    pd.close();
  }
  const err = await c.client.watch('a/', { fromRevision: now }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CompactedError);
  expect((err as CompactedError).compactRevision).toBeGreaterThan(now);
  // From the revision it names, the watch opens (GC moves on every 50 ms here, so a named revision can
  // itself be passed before the next call: then the new error names a newer one; a few tries are enough).
  let named = (err as CompactedError).compactRevision;
  let opened: Watch | undefined;
  for (let i = 0; i < 20 && opened === undefined; i++) {
    opened = await c.client.watch('a/', { fromRevision: named }).catch((e: unknown) => {
      expect(e).toBeInstanceOf(CompactedError);
      named = (e as CompactedError).compactRevision;
      return undefined;
    });
  }
  expect(opened).toBeDefined();
  opened!.close();
});
