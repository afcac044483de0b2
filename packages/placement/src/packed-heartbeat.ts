import { decode, encode, type Region } from '@flotilla/proto';
import type { RegionHeartbeat, RegionHeartbeatResult } from './types';

// The packed Region heartbeat (method regionHeartbeatsPacked, issue #16).
//
// A store's heartbeat mostly repeats a Region placement already knows, with
// new statistics. As a msgpack map per heartbeat (regionHeartbeats) the
// leader spent about a quarter of its CPU decoding maps and the client as
// much encoding them. A packed heartbeat is a flat array:
//
//   [regionId, meta, leaderPeerId, approximateSizeBytes, approximateKeys]
//   [..., readKeysPerSec, readBytesPerSec, writeKeysPerSec, writeBytesPerSec]   (with flow)
//
// where meta is encodeRegionMeta(region): the Region's range, epoch and
// peers as one canonical msgpack array in a bin. The leader compares those
// bytes with the same encoding of the Region it holds: equal, the report
// changes statistics only and is applied without decoding the Region at
// all; different (a split, a conf change, a Region it does not know), the
// meta is decoded and the heartbeat takes the ordinary path, with the
// ordinary checks and errors. A heartbeat with down or pending peers is
// sent as the ordinary object in the same batch (both shapes are accepted
// there). A placement too old to know the method answers UnknownMethod and
// the client falls back to regionHeartbeats.

/** PackedHeartbeat is one packed heartbeat on the wire (see above). */
export type PackedHeartbeat = [number, Uint8Array, number, number, number] | [number, Uint8Array, number, number, number, number, number, number, number];

/** PackedResult is one answer of regionHeartbeatsPacked: 0 / 1 for a plain {stale: false} / {stale: true}, else the result itself. */
export type PackedResult = 0 | 1 | RegionHeartbeatResult;

/** expandResults turns regionHeartbeatsPacked's answers back into regionHeartbeats' (undefined when one is neither shape). */
export function expandResults(results: unknown): RegionHeartbeatResult[] | undefined {
  if (!Array.isArray(results)) return undefined;
  const out = new Array<RegionHeartbeatResult>(results.length);
  for (let i = 0; i < results.length; i++) {
    const r: unknown = results[i];
    if (r === 0) out[i] = { stale: false };
    else if (r === 1) out[i] = { stale: true };
    else if (typeof r === 'object' && r !== null && (typeof (r as { stale?: unknown }).stale === 'boolean' || typeof (r as { error?: unknown }).error === 'object')) out[i] = r as RegionHeartbeatResult;
    else return undefined;
  }
  return out;
}

const ROLE_CODE = { voter: 0, learner: 1 } as const;

/**
 * encodeRegionMeta is the canonical bytes of a Region's meta: msgpack of
 * [id, startKey, endKey, version, confVer, peer1Id, peer1Store, peer1Role, ...]
 * (role 0 voter, 1 learner). Canonical: the same Region gives the same
 * bytes whatever the key order of its objects, on the client and the server.
 */
export function encodeRegionMeta(r: Region): Uint8Array {
  const t: unknown[] = [r.id, r.startKey, r.endKey, r.epoch.version, r.epoch.confVer];
  for (const p of r.peers) t.push(p.id, p.storeId, ROLE_CODE[p.role] ?? p.role);
  // A copy: the codec's output is a view of a buffer it goes on filling.
  return Uint8Array.prototype.slice.call(encode(t));
}

/**
 * decodeRegionMeta reads encodeRegionMeta's bytes back into a Region as
 * they came, unchecked (the schema checks it next and words what is wrong);
 * a string when the bytes are not such an array at all.
 */
export function decodeRegionMeta(bytes: Uint8Array): Region | string {
  let t: unknown;
  try {
    t = decode(bytes);
  } catch (err) {
    return `meta is not msgpack: ${(err as Error).message}`;
  }
  if (!Array.isArray(t) || t.length < 5 || (t.length - 5) % 3 !== 0) return 'meta is not [id, startKey, endKey, version, confVer, (peerId, storeId, role)...]';
  const peers: unknown[] = [];
  for (let i = 5; i < t.length; i += 3) peers.push({ id: t[i], storeId: t[i + 1], role: t[i + 2] === 0 ? 'voter' : t[i + 2] === 1 ? 'learner' : t[i + 2] });
  return { id: t[0], startKey: t[1], endKey: t[2], epoch: { version: t[3], confVer: t[4] }, peers } as unknown as Region;
}

/** packable: a heartbeat the packed shape carries (no down or pending peers; those go as the object). */
export function packable(hb: RegionHeartbeat): boolean {
  return (hb.downPeers === undefined || hb.downPeers.length === 0) && (hb.pendingPeers === undefined || hb.pendingPeers.length === 0);
}

/** packHeartbeat is the packed form of a packable heartbeat. */
export function packHeartbeat(hb: RegionHeartbeat): PackedHeartbeat {
  const meta = encodeRegionMeta(hb.region);
  const f = hb.flow;
  if (f === undefined) return [hb.region.id, meta, hb.leader.id, hb.approximateSizeBytes, hb.approximateKeys];
  return [hb.region.id, meta, hb.leader.id, hb.approximateSizeBytes, hb.approximateKeys, f.readKeysPerSec, f.readBytesPerSec, f.writeKeysPerSec, f.writeBytesPerSec];
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isU64 = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isRate = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** META_BYTES: where MetaBytesCache keeps a Region's packed meta, on the Region object itself (non-enumerable: codecs, JSON and equality never see it). */
const META_BYTES = Symbol('flotilla.packedMeta');

/**
 * MetaBytesCache keeps encodeRegionMeta of the Regions the routing table
 * holds, on each Region object: a Region whose meta changes is a new
 * object (the tree replaces it), so cached bytes are never out of date,
 * and they go with the object. On the object rather than in a WeakMap: at
 * 100,000 Regions the WeakMap lookup and its ephemeron table in every
 * major GC cost a tenth of the leader's CPU per heartbeat (issue #16). A
 * Region that cannot take the property (frozen) is kept in a WeakMap.
 * `useWeakMap` selects the WeakMap for every Region (the previous cache,
 * kept to measure against).
 */
export class MetaBytesCache {
  private readonly bytes = new WeakMap<Region, Uint8Array>();
  constructor(private readonly useWeakMap = false) {}
  of(r: Region): Uint8Array {
    const own = (r as { [META_BYTES]?: Uint8Array })[META_BYTES];
    if (own !== undefined) return own;
    let b = this.bytes.get(r);
    if (b !== undefined) return b;
    b = encodeRegionMeta(r);
    if (!this.useWeakMap && Object.isExtensible(r)) Object.defineProperty(r, META_BYTES, { value: b, enumerable: false, writable: false, configurable: false });
    else this.bytes.set(r, b);
    return b;
  }
}

/**
 * unpackHeartbeat turns one item of a regionHeartbeatsPacked batch into a
 * heartbeat object. `known` looks up the Region placement holds by ID. The
 * fast case (a packed item whose meta bytes equal the known Region's, a
 * leader among its peers, statistics in range) returns a heartbeat sharing
 * the known Region, already valid: `checked` true. Anything else returns
 * the object the ordinary path checks (`checked` false): the item itself
 * when it is not an array (the old shape), else the packed fields rebuilt
 * as a heartbeat object, so the schema decides and words any refusal; a
 * string when the item is not a packed heartbeat at all.
 */
export function unpackHeartbeat(item: unknown, known: (regionId: number) => Region | undefined, cache: MetaBytesCache): { hb: unknown; checked: boolean } | string {
  if (!Array.isArray(item)) return { hb: item, checked: false };
  if (item.length !== 5 && item.length !== 9) return `a packed heartbeat has 5 or 9 fields, not ${item.length}`;
  const [id, meta, leaderId, size, keys] = item as unknown[];
  if (!(meta instanceof Uint8Array)) return 'meta (field 2) is not bytes';
  const hasFlow = item.length === 9;
  const flowOk = !hasFlow || (isRate(item[5]) && isRate(item[6]) && isRate(item[7]) && isRate(item[8]));
  if (isId(id) && isId(leaderId) && isU64(size) && isU64(keys) && flowOk) {
    const region = known(id);
    if (region !== undefined && bytesEqual(cache.of(region), meta)) {
      for (const p of region.peers) {
        if (p.id !== leaderId) continue;
        const hb: RegionHeartbeat = { region, leader: { id: p.id, storeId: p.storeId, role: p.role }, approximateSizeBytes: size, approximateKeys: keys };
        if (hasFlow) hb.flow = { readKeysPerSec: item[5] as number, readBytesPerSec: item[6] as number, writeKeysPerSec: item[7] as number, writeBytesPerSec: item[8] as number };
        return { hb, checked: true };
      }
    }
  }
  const region = decodeRegionMeta(meta);
  if (typeof region === 'string') return region;
  // The leader travels as its peer ID: its store and role are those of the Region's peer with that ID.
  const peer = Array.isArray(region.peers) ? region.peers.find((p) => p.id === leaderId) : undefined;
  const hb: Record<string, unknown> = { region, leader: peer ? { ...peer } : { id: leaderId, storeId: 0, role: 'voter' }, approximateSizeBytes: size, approximateKeys: keys };
  if (hasFlow) hb['flow'] = { readKeysPerSec: item[5], readBytesPerSec: item[6], writeKeysPerSec: item[7], writeBytesPerSec: item[8] };
  return { hb, checked: false };
}
