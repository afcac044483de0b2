import { LIMITS, compareKeys } from '@flotilla/proto';
import type { RegionHeartbeat } from './types';

// checkRegionHeartbeat: a hand-written twin of schema.ts regionHeartbeatSchema
// for the hot path (issue #16: zod cost about a fifth of a heartbeat's CPU).
// It only ever says "valid, and exactly what zod would return" or "ask zod":
// anything it is unsure of (a wrong type, a bound, an unknown key zod would
// strip, an object that is not plain) is left to the schema, which both
// decides and words the refusal. So a bug here can cost speed, never let
// through what zod refuses; test/heartbeat-check.test.ts checks it agrees
// with zod on valid and mutated heartbeats.

const MAX_LIST = 16;

function isPlain(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

const isId = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isU64 = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isRate = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isKey = (v: unknown): v is Uint8Array => v instanceof Uint8Array && v.length <= LIMITS.maxKeyBytes;

function isPeer(v: unknown): boolean {
  if (!isPlain(v)) return false;
  let n = 0;
  for (const k in v) {
    if (k !== 'id' && k !== 'storeId' && k !== 'role') return false;
    n++;
  }
  return n === 3 && isId(v['id']) && isId(v['storeId']) && (v['role'] === 'voter' || v['role'] === 'learner');
}

function isPeerList(v: unknown): v is Record<string, unknown>[] {
  if (!Array.isArray(v) || v.length > MAX_LIST) return false;
  for (let i = 0; i < v.length; i++) if (!isPeer(v[i])) return false;
  return true;
}

function isEpoch(v: unknown): boolean {
  if (!isPlain(v)) return false;
  let n = 0;
  for (const k in v) {
    if (k !== 'confVer' && k !== 'version') return false;
    n++;
  }
  return n === 2 && isU64(v['confVer']) && isU64(v['version']);
}

/** isRegion: proto's regionSchema plus placementRegionSchema's rules (startKey < endKey, distinct peer IDs and stores). */
function isRegion(v: unknown): boolean {
  if (!isPlain(v)) return false;
  let n = 0;
  for (const k in v) {
    if (k !== 'id' && k !== 'startKey' && k !== 'endKey' && k !== 'epoch' && k !== 'peers') return false;
    n++;
  }
  if (n !== 5 || !isId(v['id']) || !isEpoch(v['epoch'])) return false;
  const start = v['startKey'];
  const end = v['endKey'];
  if (!isKey(start) || !isKey(end) || (end.length > 0 && compareKeys(start, end) >= 0)) return false;
  const peers = v['peers'];
  if (!isPeerList(peers)) return false;
  for (let i = 1; i < peers.length; i++) {
    for (let j = 0; j < i; j++) if (peers[i]!['id'] === peers[j]!['id'] || peers[i]!['storeId'] === peers[j]!['storeId']) return false;
  }
  return true;
}

function isDownPeers(v: unknown): boolean {
  if (!Array.isArray(v) || v.length > MAX_LIST) return false;
  for (let i = 0; i < v.length; i++) {
    const d: unknown = v[i];
    if (!isPlain(d)) return false;
    let n = 0;
    for (const k in d) {
      if (k !== 'peer' && k !== 'downSeconds') return false;
      n++;
    }
    if (n !== 2 || !isPeer(d['peer']) || !isU64(d['downSeconds'])) return false;
  }
  return true;
}

function isFlow(v: unknown): boolean {
  if (!isPlain(v)) return false;
  let n = 0;
  for (const k in v) {
    if (k !== 'readKeysPerSec' && k !== 'readBytesPerSec' && k !== 'writeKeysPerSec' && k !== 'writeBytesPerSec') return false;
    n++;
  }
  return n === 4 && isRate(v['readKeysPerSec']) && isRate(v['readBytesPerSec']) && isRate(v['writeKeysPerSec']) && isRate(v['writeBytesPerSec']);
}

type Obj = Record<string, unknown>;

const copyPeer = (p: unknown): Obj => ({ id: (p as Obj)['id'], storeId: (p as Obj)['storeId'], role: (p as Obj)['role'] });

/** copyOf builds the value zod returns for an accepted heartbeat: fresh objects, its key order, keys bytes shared (as z.instanceof does). */
function copyOf(v: Obj): RegionHeartbeat {
  const r = v['region'] as Obj;
  const e = r['epoch'] as Obj;
  const out: Obj = {
    region: { id: r['id'], startKey: r['startKey'], endKey: r['endKey'], epoch: { confVer: e['confVer'], version: e['version'] }, peers: (r['peers'] as unknown[]).map(copyPeer) },
    leader: copyPeer(v['leader']),
    approximateSizeBytes: v['approximateSizeBytes'],
    approximateKeys: v['approximateKeys'],
  };
  // An optional key present as undefined stays present, as zod leaves it.
  if ('downPeers' in v) out['downPeers'] = v['downPeers'] === undefined ? undefined : (v['downPeers'] as Obj[]).map((d) => ({ peer: copyPeer(d['peer']), downSeconds: d['downSeconds'] }));
  if ('pendingPeers' in v) out['pendingPeers'] = v['pendingPeers'] === undefined ? undefined : (v['pendingPeers'] as unknown[]).map(copyPeer);
  if ('flow' in v) {
    const f = v['flow'] as Obj | undefined;
    out['flow'] = f === undefined ? undefined : { readKeysPerSec: f['readKeysPerSec'], readBytesPerSec: f['readBytesPerSec'], writeKeysPerSec: f['writeKeysPerSec'], writeBytesPerSec: f['writeBytesPerSec'] };
  }
  return out as unknown as RegionHeartbeat;
}

/**
 * checkRegionHeartbeat returns what regionHeartbeatSchema would return for
 * v (a copy: in-process callers, the simulation's stores, may change their
 * objects afterwards) when v is certainly a heartbeat the schema accepts as
 * it is (no key it would strip); else undefined: then parse with the
 * schema, which decides and says why.
 */
export function checkRegionHeartbeat(v: unknown): RegionHeartbeat | undefined {
  if (!isPlain(v)) return undefined;
  for (const k in v) {
    switch (k) {
      case 'region':
      case 'leader':
      case 'approximateSizeBytes':
      case 'approximateKeys':
      case 'downPeers':
      case 'pendingPeers':
      case 'flow':
        continue;
      default:
        return undefined;
    }
  }
  if (!isRegion(v['region']) || !isPeer(v['leader']) || !isU64(v['approximateSizeBytes']) || !isU64(v['approximateKeys'])) return undefined;
  if (v['downPeers'] !== undefined && !isDownPeers(v['downPeers'])) return undefined;
  if (v['pendingPeers'] !== undefined && !isPeerList(v['pendingPeers'])) return undefined;
  if (v['flow'] !== undefined && !isFlow(v['flow'])) return undefined;
  const leader = v['leader'] as Obj;
  const peers = (v['region'] as Obj)['peers'] as Obj[];
  for (const p of peers) if (p['id'] === leader['id'] && p['storeId'] === leader['storeId']) return copyOf(v);
  return undefined;
}
