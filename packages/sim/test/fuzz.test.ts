// Fuzzing every decoder and API handler with fast-check. The property is the
// same everywhere: hostile input yields a typed error (DecodeError,
// ValidationError, PlacementError, an InvalidRequest response) or a valid
// value, never a crash, a hang or an applied write. Case counts are in
// FUZZ_CASES below (>= 100,000 in total); they fit in ~30 s on the CI box.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import {
  DecodeError,
  ValidationError,
  clientRequestSchema,
  decode,
  encode,
  parseWith,
  raftMessageSchema,
  type ClientRequest,
  type ClientResponse,
  type RaftMessage,
} from '@flotilla/proto';
import { decodeRaftFrame, encodeRaftFrame, LocalNetwork } from '@flotilla/transport';
import { PlacementError } from '@flotilla/placement';
import { PlacementCluster } from '@flotilla/placement/internal';
import { startStore, type StoreHandle } from '@flotilla/store';
import { InProcessPlacement } from '../src/placement-adapter';

export const FUZZ_CASES = {
  protoDecode: 30_000,
  clientSchema: 15_000,
  raftSchema: 10_000,
  raftFrame: 30_000,
  placement: 15_000,
  clientSocket: 1_500,
};

const isTyped = (e: unknown) => e instanceof DecodeError || e instanceof ValidationError;

function validRaftMessage(regionId: number, index: number): RaftMessage {
  return {
    regionId,
    fromPeer: { id: 2, storeId: 1, role: 'voter' },
    toPeer: { id: 3, storeId: 2, role: 'voter' },
    regionEpoch: { confVer: 1, version: 1 },
    message: {
      msgType: 3,
      to: 3,
      from: 2,
      term: 5,
      logTerm: 4,
      index,
      entries: [{ entryType: 0, term: 5, index: index + 1, data: new Uint8Array([1, 2, 3]), context: new Uint8Array(0) }],
      commit: index,
      commitTerm: 0,
      snapshot: undefined,
      reject: false,
      rejectHint: 0,
      context: new Uint8Array(0),
      requestSnapshot: 0,
      priority: 0,
      deprecatedPriority: 0,
    } as unknown as RaftMessage['message'],
    startKey: new Uint8Array([0x61]),
    endKey: new Uint8Array(0),
    isTombstone: false,
  };
}

/** mutate flips, drops or inserts a few bytes: structured inputs reach deeper than pure noise. */
const mutated = (base: Uint8Array) =>
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 })), { minLength: 1, maxLength: 4 }).map((edits) => {
    let b = Array.from(base);
    for (const [pos, byte, kind] of edits) {
      const i = b.length === 0 ? 0 : pos % b.length;
      if (kind === 0 && b.length > 0) b[i] = byte;
      else if (kind === 1) b.splice(i, 1);
      else b.splice(i, 0, byte);
    }
    return Uint8Array.from(b);
  });

/** jsonish produces msgpack-encodable garbage, including byte arrays and near-miss shapes. */
const jsonish = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 8 }),
    fc.uint8Array({ maxLength: 16 }),
    fc.constantFrom('read', 'write', 'admin', 'split', 'get', 'put', 'cas', 'scan', 'delete', 'voter', 'learner'),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom('id', 'op', 'header', 'regionId', 'regionEpoch', 'version', 'confVer', 'read', 'writes', 'type', 'key', 'value', 'admin', 'limit', 'startKey', 'endKey', 'expected'), tie('v'), { maxKeys: 6 }),
  ),
})).v;

describe('fuzz: decoders', () => {
  it(`proto decode: ${FUZZ_CASES.protoDecode} random and mutated byte strings`, () => {
    const valid = encode({ id: 7, header: { regionId: 1, regionEpoch: { confVer: 1, version: 1 } }, op: 'write', writes: [{ type: 'put', key: new Uint8Array([1]), value: new Uint8Array([2]) }] });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated(valid)), (bytes) => {
        try {
          decode(bytes);
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e;
        }
      }),
      { numRuns: FUZZ_CASES.protoDecode },
    );
  });

  it(`clientRequestSchema: ${FUZZ_CASES.clientSchema} near-miss objects`, () => {
    fc.assert(
      fc.property(jsonish, (v) => {
        try {
          const r = parseWith(clientRequestSchema, v, 'client request') as ClientRequest;
          // Whatever passes is a well-formed request.
          expect(typeof r.id).toBe('number');
          expect(['read', 'write', 'admin', 'split']).toContain(r.op);
        } catch (e) {
          if (!isTyped(e)) throw e;
        }
      }),
      { numRuns: FUZZ_CASES.clientSchema },
    );
  });

  it(`raftMessageSchema: ${FUZZ_CASES.raftSchema} decoded-garbage and mutated messages`, () => {
    const valid = encode(validRaftMessage(1, 10));
    fc.assert(
      fc.property(fc.oneof(jsonish, mutated(valid).map((b) => {
        try {
          return decode(b);
        } catch {
          return null;
        }
      })), (v) => {
        try {
          parseWith(raftMessageSchema, v, 'raft message');
        } catch (e) {
          if (!isTyped(e)) throw e;
        }
      }),
      { numRuns: FUZZ_CASES.raftSchema },
    );
  });

  it(`transport decodeRaftFrame: ${FUZZ_CASES.raftFrame} random and mutated frames`, () => {
    const valid = new Uint8Array(encodeRaftFrame([validRaftMessage(1, 10), validRaftMessage(2, 20)]));
    expect(decodeRaftFrame(valid)).toHaveLength(2);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }), mutated(valid), mutated(valid)), (bytes) => {
        try {
          const msgs = decodeRaftFrame(bytes);
          expect(Array.isArray(msgs)).toBe(true);
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e;
        }
      }),
      { numRuns: FUZZ_CASES.raftFrame },
    );
  });
});

describe('fuzz: placement request handler', () => {
  let dir: string;
  let cluster: PlacementCluster;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-fuzz-pd-'));
    cluster = new PlacementCluster({ dataDir: dir, statsPersistIntervalMs: 0 });
  });
  afterAll(() => {
    cluster.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`dispatch: ${FUZZ_CASES.placement} random method/params pairs; only PlacementErrors; tree invariants hold`, () => {
    const methods = ['bootstrap', 'isBootstrapped', 'allocId', 'putStore', 'removeStore', 'storeHeartbeat', 'regionHeartbeat', 'askBatchSplit', 'reportBatchSplit', 'getRegion', 'getRegionById', 'scanRegions', 'getStore', 'getAllStores', 'getClusterInfo', 'getOperator', 'nope', '__proto__', 'constructor'];
    fc.assert(
      fc.property(fc.constantFrom(...methods), jsonish, (method, params) => {
        try {
          cluster.dispatch(method, decode(encode(params)));
        } catch (e) {
          if (!(e instanceof PlacementError)) throw e;
        }
      }),
      { numRuns: FUZZ_CASES.placement },
    );
    cluster.tree.checkInvariants();
    cluster.flush();
  });
});

describe('fuzz: store client API over a real socket', () => {
  let dir: string;
  let pd: PlacementCluster;
  let store: StoreHandle;
  let ws: WebSocket;
  const pending = new Map<number, (r: ClientResponse) => void>();
  let anonymous: ((r: ClientResponse) => void)[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-fuzz-store-'));
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
    ws = new WebSocket(`ws://${store.address}/client`);
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', rej);
    });
    ws.on('message', (d: Buffer) => {
      const r = decode(d) as ClientResponse;
      const cb = pending.get(r.id);
      if (cb) {
        pending.delete(r.id);
        cb(r);
      } else anonymous.shift()?.(r);
    });
    // Wait until the bootstrap Region has a leader.
    const deadline = Date.now() + 20_000;
    while (![...store.store.peers.values()].some((p) => p.isLeader)) {
      if (Date.now() > deadline) throw new Error('no leader');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  afterAll(async () => {
    ws?.close();
    await store?.close();
    pd?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const sendRaw = (bytes: Uint8Array) =>
    new Promise<ClientResponse>((res, rej) => {
      const t = setTimeout(() => rej(new Error('no response within 10 s')), 10_000);
      anonymous.push((r) => {
        clearTimeout(t);
        res(r);
      });
      ws.send(bytes);
    });

  it(`${FUZZ_CASES.clientSocket} malformed frames: each answered InvalidRequest, nothing applied, store still serves`, async () => {
    const region = [...store.store.peers.values()][0]!.region;
    const header = { regionId: region.id, regionEpoch: region.epoch };
    const valid = encode({ id: 0, header, op: 'write', writes: [{ type: 'put', key: new Uint8Array([0x7a]), value: new Uint8Array([1]) }] });
    const samples = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 48 }),
        mutated(valid),
        // Decodable but schema-invalid: msgpack of garbage objects with id 0.
        jsonish.map((v) => encode(typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) ? { ...v, id: 0, op: 'write', writes: 'nope' } : v)),
      ),
      { numRuns: FUZZ_CASES.clientSocket, seed: 42 },
    );
    let invalid = 0;
    let answered = 0;
    anonymous = [];
    for (const bytes of samples) {
      // A mutated frame may still be a valid request; skip those, they would rightly apply.
      let ok = false;
      try {
        const v = decode(bytes) as { id?: unknown };
        parseWith(clientRequestSchema, v, 'x');
        ok = true;
      } catch {
        ok = false;
      }
      if (ok) continue;
      const r = await sendRaw(bytes);
      answered++;
      if (!r.ok && r.error.type === 'InvalidRequest') invalid++;
    }
    expect(answered).toBeGreaterThan(FUZZ_CASES.clientSocket / 2);
    expect(invalid).toBe(answered);
    // Nothing was applied: the KV engine is still empty.
    expect(store.store.stateMachine.scan(new Uint8Array(0), new Uint8Array(0), 10)).toEqual([]);
    // And the store still serves a real request on the same connection.
    const put = await new Promise<ClientResponse>((res) => {
      pending.set(99, res);
      ws.send(encode({ id: 99, header, op: 'write', writes: [{ type: 'put', key: new Uint8Array([0x6b]), value: new Uint8Array([2]) }] }));
    });
    expect(put.ok).toBe(true);
  }, 120_000);
});
