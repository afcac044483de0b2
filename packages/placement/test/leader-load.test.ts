import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Peer, Region } from '@flotilla/proto';
import { PlacementMember } from '../src/internal';
import { PlacementError, PlacementErrorCode } from '../src/errors';
import { Slicer, sortInSlices } from '../src/cluster-load';
import { PlacementStorage } from '../src/storage';
import type { RegionInfo, RegionWithLeader, SplitId } from '../src/types';

// issue #16: a member that becomes leader with a large persisted routing
// table loads it in slices between event-loop turns. Here 40,000 Regions
// are written straight into a member's database (as if they had come
// through the log), then the member restarts as its group's only voter and
// must lead without blocking its event loop, serve timestamps while it
// loads, refuse heartbeats retryably, hold other requests, and then route
// exactly as the table says.

const FAST = { tickMs: 20, electionTicks: 10, heartbeatTicks: 1 };
// 40,000: at once that blocked 2-4 s at load 13; in slices the test stays well under a minute on a loaded machine.
const REGIONS = 40_000;
const empty = new Uint8Array();
const keyOf = (i: number): Uint8Array => Buffer.from(`t_${String(i).padStart(8, '0')}`);
const dirs: string[] = [];
const members: PlacementMember[] = [];

afterEach(async () => {
  for (const m of members.splice(0)) await m.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const loadLogs: object[] = [];
const noop = (): void => {};
const logger = { debug: noop, warn: noop, error: noop, info: (obj: object, msg?: string): void => void (msg === 'placement leader loaded its state' && loadLogs.push(obj)) };

function newMember(dataDir: string): PlacementMember {
  const m = new PlacementMember({ dataDir, raftTiming: FAST, logger, clusterId: 7, mergeChecker: false, balanceLeader: false, balanceRegion: false });
  members.push(m);
  return m;
}

async function call<T>(m: PlacementMember, method: string, params: unknown): Promise<T> {
  return (await m.dispatch(method, params)) as T;
}

describe('a new placement leader with a large routing table', () => {
  it('leads, serves timestamps and refuses heartbeats retryably while it loads 40,000 Regions in slices, then routes as persisted', async () => {
    const t0 = performance.now();
    const phases: string[] = [];
    const phase = (name: string): number => phases.push(`${name} ${Math.round(performance.now() - t0)} ms`);
    const dataDir = mkdtempSync(join(tmpdir(), 'placement-leader-load-'));
    dirs.push(dataDir);
    // A bootstrapped single-member group; IDs for every Region and peer are issued (and so persisted) first.
    const first = newMember(dataDir);
    await first.start('127.0.0.1:1');
    const storeIds = (await call<{ ids: number[] }>(first, 'allocId', { count: 3 })).ids;
    const ids: number[] = [];
    while (ids.length < REGIONS * 4) ids.push(...(await call<{ ids: number[] }>(first, 'allocId', { count: 10_000 })).ids);
    const maxIssued = ids.reduce((a, b) => Math.max(a, b), 0);
    const peersOf = (i: number): Peer[] => [0, 1, 2].map((j) => ({ id: ids[REGIONS + i * 3 + j]!, storeId: storeIds[j]!, role: 'voter' as const }));
    // Region IDs in an order unrelated to key order, so the load must really sort.
    const regionAt = (i: number): Region => ({ id: ids[(i * 7919) % REGIONS]!, startKey: i === 0 ? empty : keyOf(i), endKey: i === REGIONS - 1 ? empty : keyOf(i + 1), epoch: { version: 2, confVer: 1 }, peers: peersOf(i) });
    const boot = regionAt(0);
    await call(first, 'bootstrap', { store: { id: storeIds[0]!, address: '127.0.0.1:20160' }, region: { ...boot, endKey: empty, epoch: { version: 1, confVer: 1 }, peers: [boot.peers[0]!] } });
    for (const j of [1, 2]) await call(first, 'putStore', { store: { id: storeIds[j]!, address: `127.0.0.1:${20160 + j}` } });
    await first.close();
    members.splice(0);

    const { storage } = PlacementStorage.open(dataDir, { clusterId: 7, maxReplicas: 3 }, { regions: false });
    // Written in chunks and not kept: the test's own heap stays small (a major GC over millions of objects is
    // itself an event-loop pause on a loaded machine).
    const infoAt = (i: number): RegionInfo => {
      const region = regionAt(i);
      return { region, leader: region.peers[i % 3]!, approximateSizeBytes: 1 << 20, approximateKeys: i, downPeers: [], pendingPeers: [] };
    };
    for (let lo = 0; lo < REGIONS; lo += 10_000) {
      const rows = new Map<number, RegionInfo>();
      for (let i = lo; i < Math.min(REGIONS, lo + 10_000); i++) rows.set(regionAt(i).id, infoAt(i));
      storage.writeBatch(rows, new Map(), new Map());
    }
    storage.close();
    phase('written');

    const member = newMember(dataDir);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    await new Promise((r) => setTimeout(r, 30)); // the histogram's first sample: only later turns count
    const started = member.start('127.0.0.1:1');
    let term = 0;
    let timestampsWhileLoading = 0;
    let refusedWhileLoading = 0;
    const held: Promise<{ region: RegionWithLeader | null }>[] = [];
    // The persisted row's own statistics: once applied, the table still equals what was written.
    const heartbeat = { region: regionAt(5), leader: regionAt(5).peers[2]!, approximateSizeBytes: 1 << 20, approximateKeys: 5 };
    await vi.waitFor(
      async () => {
        const h = member.health();
        if (h['role'] === 'leader (catching up)') {
          term ||= h['term'] as number;
          expect(h['term']).toBe(term);
          try {
            await call(member, 'getTimestamps', { count: 1 });
            if (!member.isServing) timestampsWhileLoading++;
          } catch (err) {
            // Only a confirmation round that outlived its bound may fail; anything else is a bug.
            expect((err as PlacementError).retryable).toBe(true);
          }
          try {
            await call(member, 'regionHeartbeats', { heartbeats: [heartbeat] });
          } catch (err) {
            expect(err).toBeInstanceOf(PlacementError);
            expect((err as PlacementError).code).toBe(PlacementErrorCode.TooManyPending);
            expect((err as PlacementError).retryable).toBe(true);
            refusedWhileLoading++;
          }
          if (held.length < 3 && !member.isServing) held.push(call<{ region: RegionWithLeader | null }>(member, 'getRegion', { key: keyOf(5 + held.length) }));
        }
        expect(member.isServing).toBe(true);
      },
      { timeout: 60_000, interval: 50 },
    );
    await started;
    delay.disable();
    phase('serving');
    const maxDelayMs = delay.max / 1e6;
    process.stderr.write(`leader-load: ${REGIONS} regions; max event-loop delay ${maxDelayMs.toFixed(0)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(0)} ms; ${timestampsWhileLoading} timestamps and ${refusedWhileLoading} refused heartbeats while loading; ${phases.join(', ')}; ${JSON.stringify(loadLogs.at(-1))}\n`);
    // Loading at once blocked 6-15 s (issue #16). Each slice is budgeted at 10 ms; what remains at load 15-20 on
    // 2 cores is preemption and GC pauses (150-750 ms seen), still under the 1 s production election timeout.
    expect(maxDelayMs).toBeLessThan(1000);
    expect(member.health()['term']).toBe(term);
    expect(timestampsWhileLoading).toBeGreaterThan(0);
    expect(refusedWhileLoading).toBeGreaterThan(0);
    expect(held.length).toBeGreaterThan(0);
    // Requests held during the load are answered from the loaded table.
    for (const [k, p] of held.entries()) expect((await p).region?.region.id).toBe(regionAt(5 + k).id);
    // A heartbeat refused during the load is accepted now.
    const hb = await call<{ results: unknown[] }>(member, 'regionHeartbeats', { heartbeats: [heartbeat] });
    expect(hb.results).toHaveLength(1);
    expect(hb.results[0]).not.toHaveProperty('error');

    // The routing table is the persisted one, Region for Region.
    const tree = member.leaderCluster!.tree;
    expect(tree.size).toBe(REGIONS);
    tree.checkInvariants();
    for (let i = 0; i < REGIONS; i++) {
      const got = tree.at(i)!;
      const want = infoAt(i);
      if (got.region.id !== want.region.id || got.leader?.id !== want.leader?.id || got.approximateKeys !== want.approximateKeys) throw new Error(`slot ${i}: region ${got.region.id}, want ${want.region.id}`);
    }
    for (const i of [0, 1, 4_999, 27_777, REGIONS - 1]) {
      const r = (await call<{ region: RegionWithLeader }>(member, 'getRegion', { key: i === 0 ? empty : keyOf(i) })).region;
      const want = regionAt(i);
      expect({ ...r.region, startKey: Buffer.from(r.region.startKey), endKey: Buffer.from(r.region.endKey) }).toEqual({ ...want, startKey: Buffer.from(want.startKey), endKey: Buffer.from(want.endKey) });
      expect(r.leader).toEqual(regionAt(i).peers[i % 3]);
    }
    // No ID already issued is issued again, and a stale split report loses to the persisted Region.
    const fresh = (await call<{ ids: number[] }>(member, 'allocId', { count: 3 })).ids;
    expect(Math.min(...fresh)).toBeGreaterThan(maxIssued);
    const split = await call<{ ids: SplitId[] }>(member, 'askBatchSplit', { region: regionAt(9), count: 1 });
    expect(split.ids[0]!.newRegionId).toBeGreaterThan(maxIssued);
    const stale = { ...regionAt(9), epoch: { version: 1, confVer: 1 } };
    expect(await call(member, 'reportBatchSplit', { regions: [stale] })).toEqual({ accepted: 0 });
    expect((await call<{ region: RegionWithLeader }>(member, 'getRegion', { key: keyOf(9) })).region.region.epoch.version).toBe(2);
  }, 120_000);

  it('sortInSlices sorts stably and yields between slices', async () => {
    const items = Array.from({ length: 5000 }, (_, i) => ({ k: (i * 7919) % 997, i }));
    const s = new Slicer({ sliceOps: 500 });
    const sorted = await sortInSlices(items.slice(), (a, b) => a.k - b.k, s);
    expect(sorted).toEqual(items.slice().sort((a, b) => a.k - b.k));
    expect(s.slices).toBeGreaterThan(10);
  });
});
