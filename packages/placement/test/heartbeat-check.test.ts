import { describe, expect, it } from 'vitest';
import { checkRegionHeartbeat } from '../src/heartbeat-check';
import { regionHeartbeatSchema } from '../src/schema';

// checkRegionHeartbeat must never accept what regionHeartbeatSchema refuses
// or would return changed, and must accept what the schema returns as it is
// (else the fast path is dead). Seeded random heartbeats, valid and mutated.

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

type Json = Record<string, unknown>;

function validHeartbeat(r: () => number): Json {
  const int = (n: number): number => Math.floor(r() * n);
  const n = 1 + int(5);
  const peers = Array.from({ length: n }, (_, i) => ({ id: 100 + i * 7 + int(3), storeId: 1 + i, role: r() < 0.8 ? 'voter' : 'learner' }));
  const start = Buffer.from(`k${int(1000)}`);
  const end = r() < 0.2 ? new Uint8Array() : Buffer.concat([start, Buffer.from('z')]);
  const leader = { ...peers[int(n)]! };
  const hb: Json = {
    region: { id: 1 + int(1e6), startKey: r() < 0.1 ? new Uint8Array() : start, endKey: end, epoch: { confVer: int(10), version: int(10) }, peers },
    leader,
    approximateSizeBytes: int(2 ** 40),
    approximateKeys: int(1e9),
  };
  if (r() < 0.3) hb['downPeers'] = r() < 0.5 ? [] : [{ peer: { ...peers[0]! }, downSeconds: int(1000) }];
  if (r() < 0.3) hb['pendingPeers'] = r() < 0.5 ? [] : [{ ...peers[n - 1]! }];
  if (r() < 0.3) hb['flow'] = { readKeysPerSec: r() * 100, readBytesPerSec: 0, writeKeysPerSec: int(5), writeBytesPerSec: r() };
  return hb;
}

/** WEIRD: values a decoder or a buggy store might put anywhere (made afresh each time: a mutation may change one). */
const WEIRD: (() => unknown)[] = [
  () => undefined, () => null, () => 0, () => -1, () => 1.5, () => NaN, () => Infinity, () => -Infinity, () => 2 ** 53, () => 'voter', () => 'x', () => true,
  () => [], () => ({}), () => new Uint8Array(9000), () => new Uint8Array([1]), () => Buffer.from('k'), () => new Date(0), () => new Map(), () => 7n, () => Object.create({ id: 1 }) as unknown,
];

/** containers: every object and array inside v, with v itself. */
function containers(v: unknown, out: (Json | unknown[])[] = []): (Json | unknown[])[] {
  if (Array.isArray(v)) {
    out.push(v);
    for (const x of v) containers(x, out);
  } else if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
    out.push(v as Json);
    for (const x of Object.values(v)) containers(x, out);
  }
  return out;
}

/** mutate changes one thing somewhere in hb: a value, a removed or added key, a peer made duplicate, keys out of order. */
function mutate(hb: Json, r: () => number): void {
  const all = containers(hb);
  const c = all[Math.floor(r() * all.length)]!;
  const keys = Array.isArray(c) ? c.map((_, i) => String(i)) : Object.keys(c);
  const k = keys[Math.floor(r() * keys.length)];
  const what = r();
  if (what < 0.55 && k !== undefined) (c as Json)[k] = WEIRD[Math.floor(r() * WEIRD.length)]!();
  else if (what < 0.7 && k !== undefined) {
    if (Array.isArray(c)) c.splice(Number(k), 1);
    else delete c[k];
  } else if (what < 0.8) (c as Json)[Array.isArray(c) ? String(c.length + 1) : 'extra'] = 1;
  else {
    // The rules beyond types (an earlier mutation may have broken the shape: then nothing more to do).
    const region = hb['region'];
    if (typeof region !== 'object' || region === null) return;
    const peers = (region as Json)['peers'];
    if (what >= 0.9) (region as Json)['endKey'] = r() < 0.5 ? (region as Json)['startKey'] : Buffer.from('a');
    else if (Array.isArray(peers) && peers.length > 1 && typeof peers[0] === 'object' && typeof peers[1] === 'object' && peers[0] !== null && peers[1] !== null) {
      (peers[1] as Json)[r() < 0.5 ? 'id' : 'storeId'] = (peers[0] as Json)[r() < 0.5 ? 'id' : 'storeId'];
    } else hb['leader'] = { ...(hb['leader'] as Json), id: 99_999 };
  }
}

function agree(hb: unknown): 'accepted' | 'deferred' {
  const fast = checkRegionHeartbeat(hb);
  const slow = regionHeartbeatSchema.safeParse(hb);
  if (fast !== undefined) {
    // Accepted: the schema accepts too and returns the same value.
    expect(slow.success).toBe(true);
    expect(slow.data).toStrictEqual(fast);
    // A copy, as zod's: the caller may change its objects afterwards.
    expect(fast).not.toBe(hb);
    expect(fast.region).not.toBe((hb as Json)['region']);
    expect(fast.leader).not.toBe((hb as Json)['leader']);
    return 'accepted';
  }
  // Deferred: only allowed when the schema refuses or would return something else.
  if (slow.success) expect(slow.data).not.toStrictEqual(hb);
  return 'deferred';
}

describe('checkRegionHeartbeat against regionHeartbeatSchema', () => {
  it('accepts every valid heartbeat, as the schema returns it', () => {
    const r = rng(1);
    for (let i = 0; i < 2000; i++) expect(agree(validHeartbeat(r))).toBe('accepted');
  });

  it('never accepts a mutated heartbeat the schema refuses or changes', () => {
    const r = rng(2);
    const seen = { accepted: 0, deferred: 0 };
    for (let i = 0; i < 5000; i++) {
      const hb = validHeartbeat(r);
      const times = 1 + Math.floor(r() * 3);
      for (let j = 0; j < times; j++) mutate(hb, r);
      seen[agree(hb)]++;
    }
    // Both outcomes occur: the mutations reach harmless spots (an optional field removed) and fatal ones.
    expect(seen.accepted).toBeGreaterThan(100);
    expect(seen.deferred).toBeGreaterThan(2000);
  });

  it('defers non-objects to the schema', () => {
    for (const w of WEIRD) expect(agree(w())).toBe('deferred');
  });
});
