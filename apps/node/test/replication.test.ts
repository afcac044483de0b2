import { describe, expect, it, vi } from 'vitest';
import type { RegionRow } from '../src/commands/info';
import { describeReplication, fullyReplicated, isReplicated, waitReplicated, watchReplication, type ReplicationStatus } from '../src/replication';

// The replica-count rule `flotilla up` uses before it says "up", checked on
// Region rows shaped like placement's /regions; the end-to-end check against
// real processes is in up-signals.test.ts.

const peer = (id: number, role: 'voter' | 'learner' = 'voter') => ({ id, storeId: id, role });
const region = (id: number, peers: RegionRow['peers'], extra: Partial<RegionRow> = {}): RegionRow => ({
  id,
  startKey: '',
  endKey: '',
  epoch: { confVer: 1, version: 1 },
  peers,
  leader: peers[0] ?? null,
  ...extra,
});

describe('fullyReplicated', () => {
  it('needs maxReplicas voters, no learner and no pending or down peer', () => {
    expect(fullyReplicated(region(1, [peer(1), peer(2), peer(3)]), 3)).toBe(true);
    expect(fullyReplicated(region(1, [peer(1), peer(2)]), 3)).toBe(false);
    expect(fullyReplicated(region(1, [peer(1), peer(2), peer(3, 'learner')]), 3)).toBe(false);
    expect(fullyReplicated(region(1, [peer(1), peer(2), peer(3)], { pendingPeers: [peer(3)] }), 3)).toBe(false);
    expect(fullyReplicated(region(1, [peer(1), peer(2), peer(3)], { downPeers: [{ peer: peer(2), downSeconds: 5 }] }), 3)).toBe(false);
    expect(fullyReplicated(region(1, [peer(1)]), 1)).toBe(true);
  });
});

describe('describeReplication', () => {
  it('says what is short, and that nothing is once done', () => {
    const short: ReplicationStatus = { maxReplicas: 3, regionCount: 2, under: [region(2, [peer(1), peer(2, 'learner')])] };
    expect(isReplicated(short)).toBe(false);
    expect(describeReplication(short)).toBe('1 of 2 Regions below 3 replicas (region 2: 1 voter, 1 learner)');
    const done: ReplicationStatus = { maxReplicas: 3, regionCount: 2, under: [] };
    expect(isReplicated(done)).toBe(true);
    expect(describeReplication(done)).toBe('every Region has 3 replicas (2 Regions)');
    expect(isReplicated({ maxReplicas: 3, regionCount: 0, under: [] })).toBe(false);
  });
});

/** checks returns a check that answers with each status in turn (the last one repeats), throwing where a status is an Error. */
function checks(list: (ReplicationStatus | Error)[]): { check: () => Promise<ReplicationStatus>; calls: () => number } {
  let n = 0;
  return {
    check: async () => {
      const s = list[Math.min(n++, list.length - 1)]!;
      if (s instanceof Error) throw s;
      return s;
    },
    calls: () => n,
  };
}

const short: ReplicationStatus = { maxReplicas: 3, regionCount: 1, under: [region(1, [peer(1)])] };
const done: ReplicationStatus = { maxReplicas: 3, regionCount: 1, under: [] };

describe('waitReplicated and watchReplication', () => {
  it('waitReplicated returns once replicated, retrying failed looks', async () => {
    const c = checks([new Error('placement busy'), short, done]);
    expect(await waitReplicated(c.check, 10_000, undefined, 1)).toEqual(done);
    expect(c.calls()).toBe(3);
  });

  it('waitReplicated gives up at its bound with the last status, and stops when aborted', async () => {
    expect(await waitReplicated(checks([short]).check, 20, undefined, 1)).toEqual(short);
    const abort = new AbortController();
    abort.abort();
    const c = checks([short]);
    expect(await waitReplicated(c.check, 10_000, abort.signal, 1)).toBeNull();
    expect(c.calls()).toBe(0);
  });

  it('watchReplication reports once when done, and never after stop', async () => {
    const c = checks([short, new Error('placement busy'), short, done]);
    const seen: ReplicationStatus[] = [];
    const w = watchReplication(c.check, (s) => seen.push(s), 1);
    await expect.poll(() => seen.length, { timeout: 5_000 }).toBe(1);
    expect(seen[0]).toEqual(done);
    expect(c.calls()).toBe(4);
    w.stop();
    // Stopped before its first look: with the clock run far ahead, it never looks or reports.
    vi.useFakeTimers();
    try {
      const stopped = checks([done]);
      const never: ReplicationStatus[] = [];
      watchReplication(stopped.check, (s) => never.push(s), 1).stop();
      await vi.advanceTimersByTimeAsync(1_000);
      expect(never).toEqual([]);
      expect(stopped.calls()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('replicationStatus against a placement group', () => {
  it('asks whichever member leads: p1 down, a follower naming the leader, the leader answering', async () => {
    const { createServer } = await import('node:http');
    const { replicationStatus } = await import('../src/replication');
    const asked: string[] = [];
    const serve = (name: string, answer: (path: string) => [number, unknown]) =>
      new Promise<{ address: string; close: () => void }>((resolve) => {
        const srv = createServer((req, res) => {
          asked.push(`${name} ${req.url!.split('?')[0]}`);
          const [status, body] = answer(req.url!.split('?')[0]!);
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        });
        srv.listen(0, '127.0.0.1', () => resolve({ address: `127.0.0.1:${(srv.address() as { port: number }).port}`, close: () => srv.close() }));
      });
    const leader = await serve('p3', (path) => (path === '/health' ? [200, { role: 'leader' }] : path === '/status' ? [200, { maxReplicas: 3 }] : [200, { regions: [region(1, [peer(1), peer(2), peer(3)])] }]));
    const follower = await serve('p2', (path) => (path === '/health' ? [200, { role: 'follower', leader: leader.address }] : [503, { error: { code: 'NotLeader' } }]));
    const down = await serve('p1', () => [200, {}]);
    down.close();
    try {
      const s = await replicationStatus([down.address, follower.address, leader.address], {}, 1000);
      expect(s).toEqual({ maxReplicas: 3, regionCount: 1, under: [] });
      // The follower was asked only who leads; /status and /regions went to the leader.
      expect(asked.filter((a) => a.startsWith('p2'))).toEqual(['p2 /health']);
      expect(asked).toContain('p3 /status');
      expect(asked).toContain('p3 /regions');
    } finally {
      leader.close();
      follower.close();
    }
  });
});
