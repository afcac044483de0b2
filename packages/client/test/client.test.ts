import { afterEach, describe, expect, it } from 'vitest';
import { LIMITS, type ClientRequest } from '@flotilla/proto';
import { ClientError, FlotillaClient } from '../src/index';
import { FakeCluster, b, s } from './fake-cluster';

let cluster: FakeCluster | undefined;
let client: FlotillaClient | undefined;

afterEach(async () => {
  client?.close();
  client = undefined;
  await cluster?.shutdown();
  cluster = undefined;
});

// These tests exercise routing and retries, so writes are retried after an
// in-flight connection failure (retryWritesInFlight); the default (off) is
// tested on its own below.
async function setup(
  stores = 3,
  opts: { timeoutMs?: number; maxRetries?: number; attemptTimeoutMs?: number; retryWritesInFlight?: boolean } = {},
): Promise<{ c: FakeCluster; cl: FlotillaClient }> {
  cluster = await FakeCluster.start(stores);
  client = await FlotillaClient.connect({ routes: cluster, backoff: { baseMs: 1, maxMs: 20 }, retryWritesInFlight: true, ...opts });
  return { c: cluster, cl: client };
}

const regionOf = (req: ClientRequest): number => req.header.regionId;

describe('FlotillaClient basics', () => {
  it('puts, gets, deletes with string and byte keys', async () => {
    const { cl } = await setup();
    await cl.put('a', 'apple');
    await cl.put(b('b'), new Uint8Array([0, 1, 2]));
    expect(s(await cl.get('a'))).toBe('apple');
    expect([...(await cl.get('b'))!]).toEqual([0, 1, 2]);
    await cl.delete('a');
    expect(await cl.get('a')).toBeNull();
  });

  it('rejects bad arguments before sending anything', async () => {
    const { c, cl } = await setup();
    const sent = () => c.stores.reduce((n, st) => n + st.received.length, 0);
    const before = sent();
    await expect(cl.put('', 'x')).rejects.toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('key must not be empty') });
    await expect(cl.get(new Uint8Array(LIMITS.maxKeyBytes + 1))).rejects.toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('exceeds the limit') });
    await expect(cl.put('k', new Uint8Array(LIMITS.maxValueBytes + 1))).rejects.toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('value') });
    await expect(cl.scan('z', 'a', 10)).rejects.toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('end') });
    await expect(cl.scan('a', 'z', 0)).rejects.toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('limit') });
    await expect(cl.batchPut([{ key: 'ok', value: 'v' }, { key: '', value: 'v' }])).rejects.toMatchObject({ message: expect.stringContaining('pairs[1].key') });
    await expect(cl.get(42 as unknown as string)).rejects.toBeInstanceOf(ClientError);
    expect(sent()).toBe(before);
  });

  it('compare-and-swap reports success and the previous value', async () => {
    const { cl } = await setup();
    expect(await cl.cas('c', null, '1')).toEqual({ succeeded: true, previous: null });
    const miss = await cl.cas('c', '0', '2');
    expect(miss.succeeded).toBe(false);
    expect(s(miss.previous)).toBe('1');
    const hit = await cl.cas('c', '1', null);
    expect(hit.succeeded).toBe(true);
    expect(await cl.get('c')).toBeNull();
  });

  it('fails connect with a typed error when placement never answers', async () => {
    await expect(FlotillaClient.connect({ placement: '127.0.0.1:1', timeoutMs: 300 })).rejects.toMatchObject({ code: 'Timeout' });
    await expect(FlotillaClient.connect({ placement: '' })).rejects.toMatchObject({ code: 'InvalidArgument' });
  });
});

describe('FlotillaClient retries', () => {
  it('follows a NotLeader hint and caches the new leader', async () => {
    const { c, cl } = await setup();
    c.setLeader(1, 2); // placement still says store 1
    await cl.put('k', 'v');
    expect(c.store(1).received).toHaveLength(1);
    expect(c.store(2).received).toHaveLength(1);
    expect(cl.cachedRegions()[0]?.leader?.storeId).toBe(2);
    await cl.get('k');
    expect(c.store(1).received).toHaveLength(1); // went straight to the cached leader
    expect(c.store(2).received).toHaveLength(2);
  });

  it('tries other peers when NotLeader comes without a hint', async () => {
    const { c, cl } = await setup();
    c.setLeader(1, 3);
    c.store(1).script = (req) => ({ type: 'NotLeader', regionId: req.header.regionId });
    c.store(2).script = (req) => ({ type: 'NotLeader', regionId: req.header.regionId });
    await cl.put('k', 'v');
    expect(c.store(3).received.length).toBe(1);
    expect(s(c.kv.get(Buffer.from('k').toString('hex')))).toBe('v');
  });

  it('refreshes the cache from EpochNotMatch without asking placement', async () => {
    const { c, cl } = await setup();
    await cl.put('a', '1'); // caches Region 1 = everything
    const calls = c.getRegionCalls;
    c.splitAt('m'); // placement is NOT told
    await cl.put('x', '2');
    expect(c.getRegionCalls).toBe(calls);
    expect(cl.cachedRegions().map((r) => r.region.id)).toEqual([1, c.regions[1]!.region.id]);
    expect(cl.cachedRegions()[0]?.region.epoch.version).toBe(2);
    expect(s(await cl.get('x'))).toBe('2');
  });

  it('refreshes from placement after KeyNotInRegion / RegionNotFound', async () => {
    const { c, cl } = await setup();
    await cl.put('a', '1');
    c.splitAt('m');
    c.syncPlacement();
    const right = c.regions[1]!.region.id;
    let once = true;
    // The store (stale on our side) says the Region is gone; placement knows the new layout.
    c.store(1).script = (req) => {
      if (once && req.header.regionId === 1) {
        once = false;
        return { type: 'RegionNotFound', regionId: 1 };
      }
      return undefined;
    };
    const calls = c.getRegionCalls;
    await cl.put('z', '3');
    expect(c.getRegionCalls).toBeGreaterThan(calls);
    expect(cl.cachedRegions().some((r) => r.region.id === right)).toBe(true);
  });

  it('waits the backoff ServerIsBusy asks for, then succeeds', async () => {
    const { c, cl } = await setup();
    let busy = 2;
    c.store(1).script = () => (busy-- > 0 ? { type: 'ServerIsBusy', reason: 'test', backoffMs: 60 } : undefined);
    const t0 = Date.now();
    await cl.put('k', 'v');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(120);
    expect(c.store(1).received).toHaveLength(3);
  });

  it('retries an idempotent write on a dropped connection, reports cas as Undetermined', async () => {
    const { c, cl } = await setup();
    let drops = 1;
    c.store(1).script = () => (drops-- > 0 ? 'drop' : undefined);
    await cl.put('k', 'v');
    expect(s(await cl.get('k'))).toBe('v');
    drops = 1;
    const err = await cl.cas('k', 'v', 'w').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe('Undetermined');
  });

  it('by default reports a put whose connection dropped in flight as Undetermined instead of retrying it', async () => {
    const { c, cl } = await setup(3, { retryWritesInFlight: false });
    let drops = 1;
    c.store(1).script = () => (drops-- > 0 ? 'drop' : undefined);
    const err = await cl.put('k', 'v').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe('Undetermined');
    // Not sent twice: only a retry could have applied it after the drop.
    await cl.put('k2', 'v2');
    expect(s(await cl.get('k2'))).toBe('v2');
  });

  it('routes around a store that is down and learns the new leader', async () => {
    const { c, cl } = await setup();
    await cl.put('a', '1');
    await c.store(1).close(); // leader's store dies; placement still names it
    c.setLeader(1, 2);
    await cl.put('b', '2');
    expect(s(await cl.get('b'))).toBe('2');
    expect(cl.cachedRegions()[0]?.leader?.storeId).toBe(2);
  });

  it('ends in Timeout carrying the last region error when the deadline passes', async () => {
    const { c, cl } = await setup(3, { timeoutMs: 300, maxRetries: 1000 });
    for (const st of c.stores) st.script = (req) => ({ type: 'NotLeader', regionId: req.header.regionId });
    const t0 = Date.now();
    const err = (await cl.get('k').catch((e: unknown) => e)) as ClientError;
    expect(err).toBeInstanceOf(ClientError);
    expect(err.code).toBe('Timeout');
    expect(err.lastRegionError?.type).toBe('NotLeader');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('ends in RetriesExhausted after maxRetries', async () => {
    const { c, cl } = await setup(3, { maxRetries: 4, timeoutMs: 10_000 });
    c.store(1).script = () => ({ type: 'ServerIsBusy', reason: 'always', backoffMs: 1 });
    const err = (await cl.put('k', 'v').catch((e: unknown) => e)) as ClientError;
    expect(err.code).toBe('RetriesExhausted');
    expect(err.lastRegionError?.type).toBe('ServerIsBusy');
    expect(c.store(1).received).toHaveLength(5);
  });

  it('gives up on a store that never answers within attemptTimeoutMs', async () => {
    const { c, cl } = await setup(3, { attemptTimeoutMs: 100, timeoutMs: 5000 });
    c.store(1).script = () => 'ignore';
    c.setLeader(1, 2);
    await cl.put('k', 'v');
    expect(c.store(2).received.length).toBeGreaterThan(0);
  });

  it('drops a connection that sends an undecodable frame and retries on a fresh one', async () => {
    const { c, cl } = await setup();
    let once = true;
    c.store(1).script = () => {
      if (!once) return undefined;
      once = false;
      return 'garbage';
    };
    await cl.put('k', 'v');
    expect(c.store(1).connections).toBe(2);
    expect(s(await cl.get('k'))).toBe('v');
  });

  it('uses a stale placement answer once and lets the store correct it', async () => {
    const { c, cl } = await setup();
    await cl.put('a', '1');
    c.splitAt('m'); // placement keeps the old single Region
    await cl.put('b', '2'); // EpochNotMatch teaches the cache both halves
    const right = c.regions[1]!.region.id;
    // Forget the right half; placement now answers with the stale whole-range Region, which the cache refuses.
    let once = true;
    c.store(1).script = (req) => {
      if (once && req.header.regionId === right) {
        once = false;
        return { type: 'RegionNotFound', regionId: right };
      }
      return undefined;
    };
    await cl.put('x', '3');
    expect(s(await cl.get('x'))).toBe('3');
    expect(cl.cachedRegions().map((r) => r.region.id)).toEqual([1, right]);
    expect(cl.cachedRegions().every((r) => r.region.epoch.version === 2)).toBe(true);
  });

  it('surfaces InvalidRequest from the store as InvalidArgument without retrying', async () => {
    const { c, cl } = await setup();
    c.store(1).script = () => ({ type: 'InvalidRequest', message: 'nope' });
    await expect(cl.put('k', 'v')).rejects.toMatchObject({ code: 'InvalidArgument', message: expect.stringContaining('nope') });
    expect(c.store(1).received).toHaveLength(1);
  });
});

describe('FlotillaClient multi-Region operations', () => {
  async function threeRegions(): Promise<{ c: FakeCluster; cl: FlotillaClient }> {
    const r = await setup();
    r.c.splitAt('h');
    r.c.splitAt('q');
    r.c.syncPlacement();
    // Leaders on different stores so each Region's traffic is visible per store.
    r.c.setLeader(r.c.regions[1]!.region.id, 2);
    r.c.setLeader(r.c.regions[2]!.region.id, 3);
    r.c.syncPlacement();
    return r;
  }

  it('scans across Regions in order and respects the limit', async () => {
    const { c, cl } = await threeRegions();
    const keys = ['a', 'c', 'g', 'h', 'i', 'p', 'q', 'r', 'z'];
    for (const k of keys) await cl.put(k, k.toUpperCase());
    const all = await cl.scan('', '', 100);
    expect(all.map((p) => s(p.key))).toEqual(keys);
    expect(all.map((p) => s(p.value))).toEqual(keys.map((k) => k.toUpperCase()));
    const five = await cl.scan('b', '', 5);
    expect(five.map((p) => s(p.key))).toEqual(['c', 'g', 'h', 'i', 'p']);
    const bounded = await cl.scan('d', 'r', 100);
    expect(bounded.map((p) => s(p.key))).toEqual(['g', 'h', 'i', 'p', 'q']);
    // The scan that stopped inside Region 2 never asked Region 3.
    for (const st of c.stores) st.received.length = 0;
    await cl.scan('a', '', 3);
    expect(c.store(3).received).toHaveLength(0);
  });

  it('continues a scan past a Region that hits the per-request limit', async () => {
    const { cl } = await setup(1);
    const keys = Array.from({ length: 50 }, (_, i) => `k${String(i).padStart(3, '0')}`);
    await cl.batchPut(keys.map((k) => [k, 'v'] as [string, string]));
    expect((await cl.scan('', '', 50)).map((p) => s(p.key))).toEqual(keys);
    expect((await cl.scan('k010', 'k020', 1000)).length).toBe(10);
  });

  it('splits batches by Region and reassembles batchGet in order', async () => {
    const { c, cl } = await threeRegions();
    const keys = ['z', 'a', 'm', 'b', 'r', 'i'];
    await cl.batchPut(keys.map((k) => ({ key: k, value: `v-${k}` })));
    const byStore = c.stores.map((st) => st.received.filter((r) => r.op === 'write').map((r) => st.keysOf(r).sort()));
    expect(byStore).toEqual([[['a', 'b']], [['i', 'm']], [['r', 'z']]]);
    const values = await cl.batchGet(['r', 'nope', 'a', 'i']);
    expect(values.map(s)).toEqual(['v-r', null, 'v-a', 'v-i']);
    for (const st of c.stores) for (const req of st.received) expect(new Set([regionOf(req)]).size).toBe(1);
  });

  it('re-groups a batch when a Region split under it', async () => {
    const { c, cl } = await setup();
    await cl.put('a', '0');
    c.splitAt('m'); // the client still thinks one Region covers everything
    await cl.batchPut([
      ['a', '1'],
      ['z', '2'],
    ]);
    expect(s(await cl.get('a'))).toBe('1');
    expect(s(await cl.get('z'))).toBe('2');
    expect(cl.cachedRegions()).toHaveLength(2);
  });

  it('oneRequest: a batch of one Region is one request; keys of several Regions, or a split found while retrying, fail SpansRegions with nothing written', async () => {
    const { c, cl } = await setup();
    c.splitAt('m');
    c.syncPlacement();
    await cl.batchPut([['a', '1'], ['b', '2']], { oneRequest: true });
    expect((await cl.batchGet(['b', 'a', 'x'], { oneRequest: false })).map(s)).toEqual(['2', '1', null]);
    await expect(cl.batchPut([['c', '1'], ['n', '2']], { oneRequest: true })).rejects.toMatchObject({ code: 'SpansRegions' });
    await expect(cl.batchGet(['a', 'z'], { oneRequest: true })).rejects.toMatchObject({ code: 'SpansRegions' });
    expect(await cl.batchGet(['c', 'n'])).toEqual([null, null]);
    c.splitAt('b'); // the client's cache still has [.., m) as one Region: the first request meets EpochNotMatch
    await expect(cl.batchPut([['a', '3'], ['c', '3']], { oneRequest: true })).rejects.toMatchObject({ code: 'SpansRegions' });
    expect((await cl.batchGet(['a', 'c'])).map(s)).toEqual(['1', null]);
  });

  it('deleteRange covers every Region the range touches and nothing outside it', async () => {
    const { cl } = await threeRegions();
    for (const k of ['a', 'c', 'g', 'h', 'i', 'p', 'q', 'r', 'z']) await cl.put(k, '1');
    await cl.deleteRange('c', 'r');
    expect((await cl.scan('', '', 100)).map((p) => s(p.key))).toEqual(['a', 'r', 'z']);
  });

  it('merge sends the merge op to the source Region with the target Region id and drops both from the cache', async () => {
    const { c, cl } = await threeRegions();
    const [left, middle] = [c.regions[0]!.region.id, c.regions[1]!.region.id];
    await cl.put('a', '1');
    await cl.put('i', '2');
    const r = await cl.merge('i', 'a');
    expect(r).toEqual({ sourceRegionId: middle, targetRegionId: left });
    const sent = c.store(2).received.find((q) => q.op === 'merge');
    expect(sent).toMatchObject({ op: 'merge', targetRegionId: left, header: { regionId: middle } });
    expect(cl.cachedRegions().some((e) => e.region.id === middle || e.region.id === left)).toBe(false);
    c.syncPlacement();
    expect(s(await cl.get('i'))).toBe('2');
    expect(c.regions.map((x) => x.region.id)).toEqual([left, c.regions[1]!.region.id]);
    await expect(cl.merge('a', 'b')).rejects.toMatchObject({ code: 'InvalidArgument' });
  });

  it('split asks the leader and caches the resulting Regions; regions() lists placement', async () => {
    const { c, cl } = await setup();
    const regions = await cl.split('m');
    expect(regions).toHaveLength(2);
    expect(s(regions[0]!.endKey)).toBe('m');
    expect(cl.cachedRegions().map((r) => s(r.region.startKey))).toEqual(['', 'm']);
    c.syncPlacement();
    const listed = await cl.regions();
    expect(listed.map((r) => r.region.id)).toEqual(regions.map((r) => r.id));
  });
});
