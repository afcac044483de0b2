// Semantic fuzzing of the store's request handler: schema-VALID but hostile
// client requests (random admin commands — conf changes, compactions, splits
// with made-up Region and peer IDs, merges with made-up Regions — random
// epochs, keys and values), sent straight to Store.handleClientRequest the
// way ClientServer does after validation. Biased towards the real Region's
// ID and epoch so requests get past routing. Property: no throw, no crash
// of the poll loop (an assertion there fails the run as an uncaught error),
// and afterwards the store still serves a write and a read.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { clientRequestSchema, keyInRegion, parseWith, type ClientRequest } from '@flotilla/proto';
import { PlacementCluster } from '@flotilla/placement/internal';
import { startStore, type StoreHandle } from '@flotilla/store';
import { LocalNetwork } from '@flotilla/transport';
import { InProcessPlacement } from '../src/placement-adapter';

export const SEMANTIC_CASES = 1_500;

describe('fuzz: schema-valid hostile requests against a live store', () => {
  let dir: string;
  let pd: PlacementCluster;
  let store: StoreHandle;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-fuzz-sem-'));
    pd = new PlacementCluster({ dataDir: join(dir, 'pd'), maxReplicas: 1 });
    const network = new LocalNetwork({ seed: 1 });
    store = await startStore({
      dataDir: join(dir, 'store'),
      listen: '127.0.0.1:0',
      placement: 'in-process',
      profile: 'demo',
      tickIntervalMs: 20,
      transportFactory: (id) => network.transport(id),
      placementClient: new InProcessPlacement(() => pd),
    });
    const deadline = Date.now() + 20_000;
    while (![...store.store.peers.values()].some((p) => p.isLeader)) {
      if (Date.now() > deadline) throw new Error('no leader');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  afterAll(async () => {
    await store?.close();
    pd?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${SEMANTIC_CASES} schema-valid hostile requests: no throw, store still serves`, async () => {
    const s = store.store;
    const region = () => [...s.peers.values()][0]!.region;
    const key = fc.oneof(fc.constantFrom('a', 'k', 'm', 'z').map((x) => new TextEncoder().encode(x)), fc.uint8Array({ minLength: 1, maxLength: 6 }));
    const value = fc.uint8Array({ maxLength: 8 });
    const idArb = fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 2 ** 40 }));
    const peer = fc.record({ id: idArb, storeId: idArb, role: fc.constantFrom('voter' as const, 'learner' as const) });
    const epoch = fc.record({ confVer: fc.integer({ min: 0, max: 10 }), version: fc.integer({ min: 0, max: 10 }) });
    const regionArb = fc.record({ id: idArb, startKey: key, endKey: fc.oneof(fc.constant(new Uint8Array(0)), key), epoch, peers: fc.array(peer, { maxLength: 3 }) });
    // Conf changes are limited to ones that cannot legitimately cost the Region its quorum:
    // learners on other stores and removals of peers that do not exist. Adding voters on
    // stores that do not exist, or removing the only voter, kills a Region by design (and
    // adding a second peer on the same store was accepted: STORE_BUGS.md #5, now refused and
    // covered by test/store-regressions.test.ts).
    const otherStorePeer = fc.record({ id: fc.integer({ min: 10_000, max: 2 ** 40 }), storeId: fc.integer({ min: 2, max: 2 ** 40 }), role: fc.constant('learner' as const) });
    const change = fc.oneof(
      fc.record({ changeType: fc.constant(2 as const), peer: otherStorePeer }),
      fc.record({ changeType: fc.constant(1 as const), peer: otherStorePeer }),
    );
    const admin = fc.oneof(
      change.map((c) => ({ type: 'changePeer' as const, ...c })),
      fc.array(change, { minLength: 1, maxLength: 3 }).map((changes) => ({ type: 'changePeerV2' as const, changes })),
      fc.record({ type: fc.constant('transferLeader' as const), peer }),
      fc.record({ type: fc.constant('compactLog' as const), compactIndex: fc.integer({ min: 0, max: 10_000 }), compactTerm: fc.integer({ min: 0, max: 100 }) }),
      fc.record({
        type: fc.constant('batchSplit' as const),
        splits: fc.array(fc.record({ splitKey: key, newRegionId: idArb, newPeerIds: fc.array(idArb, { maxLength: 3 }) }), { minLength: 1, maxLength: 3 }),
        rightDerive: fc.boolean(),
      }),
      fc.record({ type: fc.constant('prepareMerge' as const), target: regionArb, minIndex: fc.integer({ min: 0, max: 1000 }) }),
      fc.record({ type: fc.constant('commitMerge' as const), source: regionArb, commit: fc.integer({ min: 0, max: 1000 }), entries: fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 2 }) }),
      fc.record({ type: fc.constant('rollbackMerge' as const), commit: fc.integer({ min: 0, max: 1000 }) }),
    );
    const write = fc.oneof(
      fc.record({ type: fc.constant('put' as const), key, value }),
      fc.record({ type: fc.constant('delete' as const), key }),
      fc.record({ type: fc.constant('deleteRange' as const), startKey: key, endKey: key }),
      fc.record({ type: fc.constant('cas' as const), key, expected: fc.option(value, { nil: null }), value: fc.option(value, { nil: null }) }),
    );
    const read = fc.oneof(
      fc.record({ type: fc.constant('get' as const), key }),
      fc.record({ type: fc.constant('batchGet' as const), keys: fc.array(key, { minLength: 1, maxLength: 3 }) }),
      fc.record({ type: fc.constant('scan' as const), startKey: key, endKey: key, limit: fc.integer({ min: 1, max: 100 }) }),
    );
    // Half the headers name the real Region with its current epoch, so requests reach the deep paths.
    const header = fc.oneof(
      fc.constant(null),
      fc.record({ regionId: idArb, regionEpoch: epoch }),
    );
    const body = fc.oneof(
      { weight: 3, arbitrary: admin.map((a) => ({ op: 'admin' as const, admin: a })) },
      { weight: 2, arbitrary: fc.array(write, { minLength: 1, maxLength: 3 }).map((w) => ({ op: 'write' as const, writes: w })) },
      { weight: 1, arbitrary: read.map((r) => ({ op: 'read' as const, read: r })) },
      { weight: 1, arbitrary: fc.array(key, { minLength: 1, maxLength: 2 }).map((k) => ({ op: 'split' as const, splitKeys: k })) },
      { weight: 1, arbitrary: idArb.map((t) => ({ op: 'merge' as const, targetRegionId: t })) },
    );
    const cases = fc.sample(fc.tuple(header, body), { numRuns: SEMANTIC_CASES, seed: 7 });
    let answered = 0;
    let sent = 0;
    for (let i = 0; i < cases.length; i += 25) {
      const batch = cases.slice(i, i + 25);
      const waits: Promise<void>[] = [];
      for (const [h, b] of batch) {
        const r = region();
        const raw = { id: i, header: h ?? { regionId: r.id, regionEpoch: r.epoch }, ...b };
        // Only what ClientServer would let through reaches the store.
        let req: ClientRequest;
        try {
          req = parseWith(clientRequestSchema, raw, 'client request') as ClientRequest;
        } catch {
          continue;
        }
        sent++;
        waits.push(
          new Promise<void>((res) => {
            const t = setTimeout(res, 300);
            s.handleClientRequest(req, () => {
              answered++;
              clearTimeout(t);
              res();
            });
          }),
        );
      }
      await Promise.all(waits);
      if (process.env.FUZZ_TRACE) {
        const regs = [...s.peers.values()].map((x) => `${x.regionId}${x.initialized ? '' : '?'}[${Buffer.from(x.region.startKey).toString('hex')},${Buffer.from(x.region.endKey).toString('hex')})v${x.region.epoch.version}c${x.region.epoch.confVer}p${x.region.peers.map((q) => q.id + '@' + q.storeId).join('/')}`);
        console.log(`batch ${i}: ${regs.join(' ')} :: ${batch.map(([h, b]) => JSON.stringify({ h: h ? 'rand' : 'real', ...b }, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))).join(' | ').slice(0, 3000)}`);
      }
    }
    expect(sent).toBeGreaterThan(SEMANTIC_CASES / 2);
    expect(answered).toBeGreaterThan(sent / 2);
    // The store still serves: write and read back a key through whichever Region now holds it.
    const k = new TextEncoder().encode('after-fuzz');
    const deadline = Date.now() + 20_000;
    for (;;) {
      const p = [...s.peers.values()].find((x) => x.initialized && keyInRegion(k, x.region));
      if (p?.isLeader) {
        const h = { regionId: p.regionId, regionEpoch: p.region.epoch };
        const put = await new Promise<{ ok: boolean }>((res) => s.handleClientRequest({ id: 1, header: h, op: 'write', writes: [{ type: 'put', key: k, value: new Uint8Array([1]) }] }, res));
        if (put.ok) {
          const got = await new Promise<{ ok: boolean; value?: Uint8Array | null }>((res) => s.handleClientRequest({ id: 2, header: h, op: 'read', read: { type: 'get', key: k } }, res));
          expect(got.ok).toBe(true);
          expect(Array.from(got.value ?? [])).toEqual([1]);
          break;
        }
      }
      if (Date.now() > deadline) throw new Error(`store no longer serves key after-fuzz: ${p ? `region ${p.regionId} leader=${p.isLeader}` : 'no Region holds it'}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 120_000);
});
