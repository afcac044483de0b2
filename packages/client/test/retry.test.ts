import { afterEach, describe, expect, it } from 'vitest';
import type { ClientRequest, RegionError } from '@flotilla/proto';
import { ClientError, FlotillaClient, type FlotillaClientOptions } from '../src/index';
import { RETRY_ACTIONS, regionErrorCase, type RetryCase } from '../src/retry';
import { FakeCluster, b, s, type ScriptAnswer } from './fake-cluster';

// The retry table (RETRY_ACTIONS in src/retry.ts) checked through the client
// against the fake cluster: the leader is on store 2 and the cache knows it;
// store 2 answers one request with a failure, then serves normally. What the
// client did next shows the table's row: asking placement again means the
// Region was invalidated; trying store 1 (the first peer in turn) means the
// leader was cleared; a second socket to store 2 means the store was
// forgotten.

let cluster: FakeCluster | undefined;
let client: FlotillaClient | undefined;

afterEach(async () => {
  client?.close();
  client = undefined;
  await cluster?.shutdown();
  cluster = undefined;
});

async function setupLeaderOnStore2(opts: Partial<FlotillaClientOptions> = {}): Promise<{ c: FakeCluster; cl: FlotillaClient }> {
  cluster = await FakeCluster.start(3);
  cluster.setLeader(1, 2);
  cluster.syncPlacement();
  client = await FlotillaClient.connect({ routes: cluster, backoff: { baseMs: 1, maxMs: 5 }, ...opts });
  await client.put('k', 'v0'); // fills the cache: Region 1, leader on store 2
  expect(client.cachedRegions()[0]?.leader?.storeId).toBe(2);
  return { c: cluster, cl: client };
}

/** failOnce makes store 2 answer its next request with `answer`, then serve normally. */
function failOnce(c: FakeCluster, answer: (req: ClientRequest) => ScriptAnswer): void {
  let pending = true;
  c.store(2).script = (req) => {
    if (!pending) return undefined;
    pending = false;
    return answer(req);
  };
}

interface Observed {
  asksPlacement: boolean;
  triesOtherPeer: boolean;
  reconnects: boolean;
}

/** observe runs op after failOnce and reports what the client did about the failure. */
async function observe(c: FakeCluster, op: () => Promise<unknown>): Promise<Observed & { error?: ClientError; requests: number }> {
  const regionCalls = c.getRegionCalls;
  const sentTo1 = c.store(1).received.length;
  const connections2 = c.store(2).connections;
  const total = (): number => c.stores.reduce((n, st) => n + st.received.length, 0);
  const before = total();
  const error = await op().then(
    () => undefined,
    (e: unknown) => e as ClientError,
  );
  return {
    asksPlacement: c.getRegionCalls > regionCalls,
    triesOtherPeer: c.store(1).received.length > sentTo1,
    reconnects: c.store(2).connections > connections2,
    requests: total() - before,
    ...(error ? { error } : {}),
  };
}

const region1 = (req: ClientRequest): number => req.header.regionId;

/**
 * Each row: what store 2 answers, and what the documented action makes the
 * client do. A field left out is not checked (the row's action does not
 * decide it).
 */
const ROWS: { name: string; answer: (req: ClientRequest, c: FakeCluster) => ScriptAnswer; expect: Partial<Observed> }[] = [
  {
    // Clear the leader, back off, try the peers in turn.
    name: 'NotLeader without a hint',
    answer: (req) => ({ type: 'NotLeader', regionId: region1(req) }),
    expect: { asksPlacement: false, triesOtherPeer: true, reconnects: false },
  },
  {
    // Follow the hint at once; placement is not asked.
    name: 'NotLeader naming another peer',
    answer: (req, c) => {
      c.setLeader(1, 3);
      return { type: 'NotLeader', regionId: region1(req), leader: c.leaderPeer(c.regions[0]!) };
    },
    expect: { asksPlacement: false, triesOtherPeer: false, reconnects: false },
  },
  {
    // Invalidate, then learn the Regions the store holds now: no placement call.
    name: 'EpochNotMatch',
    answer: (_req, c) => ({ type: 'EpochNotMatch', currentRegions: c.regions.map((r) => structuredClone(r.region)) }),
    expect: { asksPlacement: false, reconnects: false },
  },
  {
    name: 'KeyNotInRegion',
    answer: (req, c) => ({ type: 'KeyNotInRegion', key: b('k'), regionId: region1(req), startKey: c.regions[0]!.region.startKey, endKey: c.regions[0]!.region.endKey }),
    expect: { asksPlacement: true, triesOtherPeer: false, reconnects: false },
  },
  {
    name: 'RegionNotFound',
    answer: (req) => ({ type: 'RegionNotFound', regionId: region1(req) }),
    expect: { asksPlacement: true, triesOtherPeer: false, reconnects: false },
  },
  {
    // Only back off; the leader and the Region stay cached.
    name: 'ServerIsBusy',
    answer: () => ({ type: 'ServerIsBusy', reason: 'test', backoffMs: 30 }),
    expect: { asksPlacement: false, triesOtherPeer: false, reconnects: false },
  },
  {
    // Forget the store's socket and address, and the Region.
    name: 'StoreNotMatch',
    answer: () => ({ type: 'StoreNotMatch', requestStoreId: 2, actualStoreId: 3 }),
    expect: { asksPlacement: true, triesOtherPeer: false, reconnects: true },
  },
  {
    // A read may be sent again after Undetermined: clear the leader and retry.
    name: 'Undetermined (a read)',
    answer: (req) => ({ type: 'Undetermined', regionId: region1(req), message: 'proposal lost' }),
    expect: { asksPlacement: false, triesOtherPeer: true, reconnects: false },
  },
  {
    name: 'StaleCommand',
    answer: () => ({ type: 'StaleCommand' }),
    expect: { asksPlacement: false, triesOtherPeer: true, reconnects: false },
  },
  {
    name: 'Unavailable',
    answer: () => ({ type: 'Unavailable', message: 'applying a snapshot' }),
    expect: { asksPlacement: false, triesOtherPeer: true, reconnects: false },
  },
  {
    // Store down for a while, its leaders and the Region forgotten, a fresh socket later.
    name: 'unreachable (socket dropped with a read in flight)',
    answer: () => 'drop',
    expect: { asksPlacement: true, triesOtherPeer: true, reconnects: true },
  },
];

describe('retry table: each failure of a read gets its documented action', () => {
  for (const row of ROWS) {
    it(row.name, async () => {
      const { c, cl } = await setupLeaderOnStore2();
      failOnce(c, (req) => row.answer(req, c));
      const t0 = Date.now();
      let value: string | null = null;
      const seen = await observe(c, async () => (value = s(await cl.get('k'))));
      expect(seen.error).toBeUndefined();
      expect(value).toBe('v0');
      expect(seen).toMatchObject(row.expect);
      if (row.name === 'ServerIsBusy') expect(Date.now() - t0).toBeGreaterThanOrEqual(30);
      if (row.name === 'NotLeader naming another peer') expect(cl.cachedRegions()[0]?.leader?.storeId).toBe(3);
    });
  }

  it('InvalidRequest ends the call with InvalidArgument and is not sent again', async () => {
    const { c, cl } = await setupLeaderOnStore2();
    failOnce(c, () => ({ type: 'InvalidRequest', message: 'nope' }));
    const seen = await observe(c, () => cl.get('k'));
    expect(seen.error).toBeInstanceOf(ClientError);
    expect(seen.error?.code).toBe('InvalidArgument');
    expect(seen.requests).toBe(1);
  });
});

describe('retry table: a write that may have applied is not sent again', () => {
  const undetermined = (req: ClientRequest): RegionError => ({ type: 'Undetermined', regionId: req.header.regionId, message: 'proposal lost' });

  it('an Undetermined put ends in Undetermined after one request (default: retryWritesInFlight off)', async () => {
    const { c, cl } = await setupLeaderOnStore2();
    failOnce(c, undetermined);
    const seen = await observe(c, () => cl.put('k', 'v1'));
    expect(seen.error).toBeInstanceOf(ClientError);
    expect(seen.error?.code).toBe('Undetermined');
    expect(seen.error?.lastRegionError?.type).toBe('Undetermined');
    expect(seen.requests).toBe(1);
    expect(s(c.kv.get(Buffer.from('k').toString('hex')))).toBe('v0'); // the fake never applied it, and nothing resent it
  });

  it('an Undetermined put is sent again when retryWritesInFlight is on', async () => {
    const { c, cl } = await setupLeaderOnStore2({ retryWritesInFlight: true });
    failOnce(c, undetermined);
    const seen = await observe(c, () => cl.put('k', 'v1'));
    expect(seen.error).toBeUndefined();
    expect(seen.requests).toBeGreaterThan(1);
    expect(s(await cl.get('k'))).toBe('v1');
  });

  it('an Undetermined cas is never sent again, even with retryWritesInFlight on', async () => {
    const { c, cl } = await setupLeaderOnStore2({ retryWritesInFlight: true });
    failOnce(c, undetermined);
    const seen = await observe(c, () => cl.cas('k', 'v0', 'v1'));
    expect(seen.error?.code).toBe('Undetermined');
    expect(seen.requests).toBe(1);
  });

  it('a put whose socket dropped in flight ends in Undetermined and is not resent', async () => {
    const { c, cl } = await setupLeaderOnStore2();
    failOnce(c, () => 'drop');
    const seen = await observe(c, () => cl.put('k', 'v1'));
    expect(seen.error?.code).toBe('Undetermined');
    expect(seen.requests).toBe(1);
  });
});

describe('retry table: rows', () => {
  it('only Undetermined and a failed socket end a call depending on whether it may be resent; InvalidRequest and Unauthorized always end it', () => {
    const failing = Object.entries(RETRY_ACTIONS)
      .filter(([, a]) => a.fail)
      .map(([name, a]) => [name, a.fail!.code, a.fail!.when]);
    expect(failing.sort()).toEqual(
      [
        ['InvalidRequest', 'InvalidArgument', 'always'],
        ['Unauthorized', 'Unauthorized', 'always'],
        ['Undetermined', 'Undetermined', 'unlessResendable'],
        ['Unreachable', 'Undetermined', 'unlessResendable'],
      ].sort(),
    );
    for (const [name, a] of Object.entries(RETRY_ACTIONS)) {
      if (a.fail?.when === 'always') expect(a.backoff, name).toBe('never');
      else expect(a.backoff, name).not.toBe('never');
    }
  });

  it('a NotLeader is a hint to follow only when it names another peer', () => {
    const self = { id: 101, storeId: 2, role: 'voter' as const };
    const other = { id: 102, storeId: 3, role: 'voter' as const };
    const cases: [RegionError, RetryCase][] = [
      [{ type: 'NotLeader', regionId: 1, leader: other }, 'NotLeaderWithHint'],
      [{ type: 'NotLeader', regionId: 1, leader: self }, 'NotLeader'],
      [{ type: 'NotLeader', regionId: 1 }, 'NotLeader'],
      [{ type: 'StaleCommand' }, 'StaleCommand'],
    ];
    for (const [e, want] of cases) expect(regionErrorCase(e, self)).toBe(want);
  });
});

describe('retry table: NotLeader without a leader from every cached peer', () => {
  // Found by the namespace partition test (packages/sim/test/netns.test.ts):
  // a client that cached Region 1 while it had one replica kept asking that
  // replica's store after it was cut off from the other two, which had
  // elected a leader; the cut-off peer knows no leader, so its NotLeader
  // names none, and the client rotated through its one cached peer until
  // every call timed out (a fresh client, asking placement, succeeded).
  it('reloads the Region from placement once every peer it lists has answered without a leader', async () => {
    cluster = await FakeCluster.start(3);
    const c = cluster;
    const full = c.regions[0]!.region;
    c.regions[0]!.region = { ...full, peers: [full.peers[0]!] }; // cached while only store 1 had a replica
    c.setLeader(1, 1);
    c.syncPlacement();
    client = await FlotillaClient.connect({ routes: c, backoff: { baseMs: 1, maxMs: 5 }, timeoutMs: 3000 });
    const cl = client;
    await cl.put('k', 'v0');
    expect(cl.cachedRegions()[0]?.region.peers.map((p) => p.storeId)).toEqual([1]);
    // Two replicas joined (confVer 3) and elected store 2; store 1 is cut off and knows no leader.
    c.regions[0]!.region = { ...full, epoch: { confVer: 3, version: 1 } };
    c.setLeader(1, 2);
    c.syncPlacement();
    c.store(1).script = (req) => ({ type: 'NotLeader', regionId: req.header.regionId });
    const regionCalls = c.getRegionCalls;
    expect(s(await cl.get('k'))).toBe('v0');
    await cl.put('k', 'v1'); // a NotLeader write never reached raft, so resending it is safe
    expect(s(await cl.get('k'))).toBe('v1');
    expect(c.getRegionCalls).toBeGreaterThan(regionCalls);
    expect(cl.cachedRegions()[0]?.leader?.storeId).toBe(2);
  });
});
