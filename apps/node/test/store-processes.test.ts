import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { PlacementClient } from '@flotilla/placement/client';
import { utf8 } from '@flotilla/proto';
import { alive, startCli, waitFor, type CliChild } from './helpers';

// The store issue's core scenarios with every part a real process: one
// placement process and three (then four) `flotilla store` processes
// talking WsTransport over 127.0.0.1, each on its own SQLite files.
//   1. writes and linearizable reads; the leader's store is SIGKILLed in
//      the middle of a load: a new leader takes over, no acknowledged write
//      is lost; the old leader restarts and catches up by log.
//   2. a follower is SIGKILLed, the leader writes past its log GC limit and
//      compacts; the restarted follower catches up by snapshot.
//   3. a fourth store joins: placement moves replicas onto it (add learner,
//      promote to voter, remove a peer elsewhere, whose data is cleaned).

const dir = mkdtempSync(join(tmpdir(), 'flotilla-store-procs-'));
const tuningFile = join(dir, 'tuning.json');
// A small log GC limit: a leader compacts past a follower that is down
// once its log holds more than GC_COUNT_LIMIT entries, so a follower that
// misses more writes than that needs a snapshot, and one that misses far
// fewer catches up by log. Heartbeats to placement every half second.
const GC_COUNT_LIMIT = 1000;
writeFileSync(tuningFile, JSON.stringify({ raftLogGcCountLimit: GC_COUNT_LIMIT, raftLogGcThreshold: 10, raftLogGcIntervalMs: 200, regionHeartbeatIntervalMs: 500, storeHeartbeatIntervalMs: 500 }));

interface StoreProc {
  index: number;
  dataDir: string;
  address: string;
  storeId: number;
  child: CliChild;
}

let placement: CliChild;
let placementAddress: string;
const stores: StoreProc[] = [];
const children: CliChild[] = [];
let client: FlotillaClient;
let pc: PlacementClient;
/** acked: every write the cluster acknowledged, with its value. */
const acked = new Map<string, string>();

/** announced waits for a server process's one-line JSON announcement on stdout. */
async function announced(child: CliChild, what: string): Promise<Record<string, unknown>> {
  return waitFor(`${what} to announce itself`, () => {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${child.out.stderr}`);
    const line = child.out.stdout.split('\n').find((l) => l.startsWith('{'));
    return line ? (JSON.parse(line) as Record<string, unknown>) : null;
  }, 60_000, 50);
}

/** startStore starts (or restarts, on the same data dir and address) store process `index`. */
async function startStore(index: number, address = '127.0.0.1:0'): Promise<StoreProc> {
  const dataDir = join(dir, `store-${index}`);
  const child = startCli(['store', '--placement', placementAddress, '--data-dir', dataDir, '--listen', address, '--tuning', tuningFile, '--log-level', process.env.STORE_LOG_LEVEL ?? 'warn']);
  children.push(child);
  const info = await announced(child, `store ${index}`);
  const s: StoreProc = { index, dataDir, address: info['address'] as string, storeId: info['storeId'] as number, child };
  stores[index] = s;
  return s;
}

function kill(s: StoreProc): void {
  s.child.kill('SIGKILL');
}

async function metric(s: StoreProc, name: string): Promise<number> {
  const text = await (await fetch(`http://${s.address}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`store ${s.index} has no metric ${name}`);
  return Number(line.split(' ')[1]);
}

async function status(s: StoreProc): Promise<{ regions: number; leaders: number }> {
  return (await (await fetch(`http://${s.address}/status`, { signal: AbortSignal.timeout(2000) })).json()) as { regions: number; leaders: number };
}

/** load writes keys prefix/0..n-1 with `workers` puts in flight; an Undetermined put is simply not acknowledged. */
async function load(prefix: string, n: number, workers: number, onAck?: () => void): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const k = `${prefix}/${String(next++).padStart(5, '0')}`;
      const v = `${k}=${'x'.repeat(100)}`;
      try {
        await client.put(k, v);
      } catch (e) {
        if ((e as { code?: string }).code === 'Undetermined') continue;
        throw e;
      }
      acked.set(k, v);
      onAck?.();
    }
  };
  await Promise.all(Array.from({ length: workers }, () => worker()));
}

async function expectEveryAckedWrite(): Promise<void> {
  const keys = [...acked.keys()];
  const values = await client.batchGet(keys);
  const wrong = keys.filter((k, i) => values[i] === null || Buffer.from(values[i]!).toString() !== acked.get(k));
  expect(wrong).toEqual([]);
}

async function leaderStoreOf(key: string): Promise<StoreProc> {
  return waitFor(`a leader for ${key} known to placement`, async () => {
    const r = await pc.getRegion(utf8(key));
    return r?.leader ? stores.find((s) => s?.storeId === r.leader!.storeId && alive(s.child.pid!)) : undefined;
  }, 30_000, 100);
}

beforeAll(async () => {
  placement = startCli(['placement', '--data-dir', join(dir, 'placement'), '--listen', '127.0.0.1:0', '--log-level', 'warn']);
  children.push(placement);
  placementAddress = (await announced(placement, 'placement'))['address'] as string;
  await Promise.all([1, 2, 3].map((i) => startStore(i)));
  client = await FlotillaClient.connect({ placement: placementAddress, timeoutMs: 30_000 });
  pc = new PlacementClient({ addresses: [placementAddress] });
  await waitFor('Region 1 with a voter on each of the three stores', async () => {
    const rs = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10);
    return rs.length === 1 && rs[0]!.region.peers.filter((p) => p.role === 'voter').length === 3 && rs[0]!.leader !== undefined;
  }, 90_000, 200);
}, 150_000);

afterAll(async () => {
  // STORE_LOG_DIR=dir (with STORE_LOG_LEVEL=info) keeps every child's log for a post-mortem.
  if (process.env.STORE_LOG_DIR) children.forEach((c, i) => writeFileSync(join(process.env.STORE_LOG_DIR!, `child-${i}.log`), c.out.stderr));
  client?.close();
  pc?.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('store processes over WebSocket on 127.0.0.1', () => {
  it('the leader store is killed mid-load: a new leader, no acknowledged write lost; the old leader catches up by log', async () => {
    const victim = await leaderStoreOf('a');
    let killedAt = -1;
    await load('a', 260, 4, () => {
      if (killedAt < 0 && acked.size >= 200) {
        killedAt = acked.size;
        kill(victim);
      }
    });
    expect(killedAt).toBeGreaterThan(0);
    const next = await waitFor('placement to report a leader on another store', async () => {
      const s = await leaderStoreOf('a');
      return s !== victim ? s : undefined;
    }, 30_000, 200);
    expect(next.storeId).not.toBe(victim.storeId);
    await expectEveryAckedWrite();

    // Far fewer writes than the log GC limit while it was down (the whole
    // log so far is shorter than it): it catches up by log, applying at
    // least every write acknowledged since it died.
    expect(acked.size).toBeLessThan(GC_COUNT_LIMIT / 2);
    const back = await startStore(victim.index, victim.address);
    expect(back.storeId).toBe(victim.storeId);
    await load('b', 50, 2);
    const missed = acked.size - killedAt;
    expect(missed).toBeGreaterThan(50);
    // Up to `workers` (4) of those were in flight when it died and may have applied there already.
    await waitFor(`the restarted store to apply the ${missed} writes it missed (less the 4 in flight at the kill)`, async () => (await metric(back, 'flotilla_entries_applied_total')) >= missed - 4, 30_000, 100);
    expect(await metric(back, 'flotilla_snapshots_applied_total')).toBe(0);
    // With another store down, every commit needs the restarted one.
    const other = stores.find((s) => s && s !== back && alive(s.child.pid!))!;
    kill(other);
    await load('c', 50, 2);
    expect(await metric(back, 'flotilla_snapshots_applied_total')).toBe(0);
    await expectEveryAckedWrite();
    await startStore(other.index, other.address);
  }, 120_000);

  it('a follower misses writes past the log GC limit and catches up by snapshot', async () => {
    const leader = await leaderStoreOf('a');
    const follower = stores.find((s) => s && s !== leader)!;
    kill(follower);
    await waitFor('the follower to be gone', () => !alive(follower.child.pid!), 10_000, 50);
    await load('d', GC_COUNT_LIMIT + 300, 8);
    const back = await startStore(follower.index, follower.address);
    await waitFor('a snapshot applied on the restarted follower', async () => (await metric(back, 'flotilla_snapshots_applied_total')) > 0, 60_000, 200);
    // Again: with the other follower down, commits need the restarted one.
    const other = stores.find((s) => s && s !== back && s !== leader)!;
    kill(other);
    await load('e', 50, 2);
    await expectEveryAckedWrite();
    await startStore(other.index, other.address);
  }, 150_000);

  it('a fourth store joins: placement adds learners there, promotes them and removes peers elsewhere, whose data is cleaned', async () => {
    // Four Regions on three stores (12 peers); balance-region moves some onto the new store.
    for (const key of ['b', 'c', 'd']) await client.split(key);
    await waitFor('four fully replicated Regions', async () => {
      const rs = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10);
      return rs.length === 4 && rs.every((r) => r.region.peers.length === 3 && r.region.peers.every((p) => p.role === 'voter'));
    }, 60_000, 200);
    const fourth = await startStore(4);
    const placed = await waitFor('replicas moved onto the fourth store, three voters per Region, no learner left', async () => {
      const rs = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10);
      const onFourth = rs.filter((r) => r.region.peers.some((p) => p.storeId === fourth.storeId && p.role === 'voter')).length;
      const settled = rs.length === 4 && rs.every((r) => r.region.peers.length === 3 && r.region.peers.every((p) => p.role === 'voter'));
      return settled && onFourth >= 2 ? onFourth : undefined;
    }, 90_000, 250);
    expect(placed).toBeGreaterThanOrEqual(2);
    // Every removed peer is gone from its store: each store hosts exactly the
    // peers placement lists for it (balancing may still be moving a Region,
    // so compare against placement's current view each time).
    await waitFor('each store to host exactly the peers placement lists for it', async () => {
      const rs = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10);
      for (const s of stores.filter(Boolean)) {
        const listed = rs.filter((r) => r.region.peers.some((p) => p.storeId === s.storeId)).length;
        if ((await status(s)).regions !== listed) return false;
      }
      return rs.reduce((n, r) => n + r.region.peers.length, 0) === 12;
    }, 60_000, 250);
    await expectEveryAckedWrite();
    await load('f', 40, 4);
    await expectEveryAckedWrite();
  }, 180_000);
});
