// Replica convergence at the end of a power-loss run: wait until every
// Region's replicas report the same applied index (GET /regions/ID on each
// store), stop the stores cleanly, then compare what each store's kv.db
// holds: the digest of every key/value pair, and each Region's applied index.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { FlotillaClient } from '@flotilla/client';
import { KvEngineStateMachine } from '@flotilla/store';

interface RegionProbe {
  appliedIndex: number;
  commitIndex: number;
}

async function probe(address: string, regionId: number): Promise<RegionProbe | undefined> {
  try {
    const res = await fetch(`http://${address}/regions/${regionId}`, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) return undefined;
    return (await res.json()) as RegionProbe;
  } catch {
    return undefined;
  }
}

/** observe returns one line per Region ("id:applied") when every replica has applied all it committed and they agree, else undefined. */
async function observe(client: FlotillaClient, addressOf: Map<number, string>): Promise<string | undefined> {
  const regions = await client.regions().catch(() => undefined);
  if (!regions) return undefined;
  const lines: string[] = [];
  for (const { region } of regions) {
    const seen = new Set<number>();
    for (const peer of region.peers) {
      const address = addressOf.get(peer.storeId);
      const p = address === undefined ? undefined : await probe(address, region.id);
      if (!p || p.appliedIndex !== p.commitIndex) return undefined;
      seen.add(p.appliedIndex);
    }
    if (seen.size !== 1) return undefined;
    lines.push(`${region.id}:${[...seen][0]}`);
  }
  return lines.join(',');
}

/**
 * waitQuiescent waits (at most timeoutMs) until two observations 1 s apart
 * find every Region's replicas at one applied index; returns that view, or
 * undefined when it never settled.
 */
export async function waitQuiescent(client: FlotillaClient, addressOf: Map<number, string>, timeoutMs: number): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  let last: string | undefined;
  while (Date.now() < end) {
    const now = await observe(client, addressOf);
    if (now !== undefined && now === last) return now;
    last = now;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return undefined;
}

/** ReplicaDigest is what one stopped store's kv.db holds. */
export interface ReplicaDigest {
  /** pairs: sha256 over every key/value pair, in key order. */
  pairs: string;
  keys: number;
  /** applied: Region ID -> applied index, for the Regions the store holds (not tombstones). */
  applied: Map<number, number>;
}

/** SCAN_PAGE is how many pairs one scan reads while digesting. */
const SCAN_PAGE = 1000;

/** digestReplica reads a stopped store's kv.db (dataDir/kv.db) in full. */
export function digestReplica(dataDir: string): ReplicaDigest {
  const sm = new KvEngineStateMachine(join(dataDir, 'kv.db'), () => {
    throw new Error('digestReplica reads no raft terms');
  });
  try {
    const hash = createHash('sha256');
    let keys = 0;
    let from: Uint8Array = new Uint8Array(0);
    for (;;) {
      const page = sm.scan(from, new Uint8Array(0), SCAN_PAGE);
      for (const { key, value } of page) {
        hash.update(`${key.length}:`).update(key).update(`${value.length}:`).update(value);
        keys++;
      }
      const last = page[page.length - 1];
      if (!last || page.length < SCAN_PAGE) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    const applied = new Map<number, number>();
    for (const r of sm.engine.loadRegionStates()) if (r.regionState.state !== 'tombstone' && r.applyState) applied.set(r.regionId, r.applyState.appliedIndex);
    return { pairs: hash.digest('hex'), keys, applied };
  } finally {
    sm.close();
  }
}

/** compareReplicas lists how the stores' digests differ (empty: they converged). */
export function compareReplicas(digests: { name: string; digest: ReplicaDigest }[]): string[] {
  const out: string[] = [];
  const [first, ...rest] = digests;
  if (!first) return out;
  for (const d of rest) {
    if (d.digest.pairs !== first.digest.pairs) out.push(`${d.name} holds ${d.digest.keys} pairs (digest ${d.digest.pairs.slice(0, 12)}), ${first.name} ${first.digest.keys} (${first.digest.pairs.slice(0, 12)})`);
    for (const [id, idx] of d.digest.applied) {
      const other = first.digest.applied.get(id);
      if (other !== undefined && other !== idx) out.push(`region ${id}: applied ${idx} on ${d.name}, ${other} on ${first.name}`);
    }
  }
  return out;
}
