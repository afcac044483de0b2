import { compareKeys } from '@flotilla/proto';
import { toBytes, type Bytes } from '../bytes';
import { ClientError } from '../errors';
import type { KeepAlive } from '../lease/keepalive';
import type { LeaseClient } from '../lease/lease';
import type { Snapshot } from '../txn/snapshot';

// The waiting queue under a prefix that the mutex and the election share
// (etcd's concurrency package): each contender writes PREFIX/<lease id> with
// its own lease; its revision (the commit ts of that put) is its place in
// the queue. The contender with the lowest revision holds. Every other one
// waits for the key with the next-lower revision to go (released, or
// deleted by the lease's expiry), then looks again.
//
// Why the order is sound: a look is a snapshot scan at a fresh timestamp s,
// taken after our put committed at r < s. A snapshot read at s sees every
// write committed below s (a lock that may still commit below s is resolved
// or waited for), so no key with a revision below r can appear after a look
// that found none: holders succeed one another in revision order.
//
// Waiting polls with bounded backoff (WAIT_BACKOFF); with client.watch it
// could wait for the delete event instead.

/** WAIT_BACKOFF: how often a waiter looks at its predecessor's key. */
export const WAIT_BACKOFF = { baseMs: 10, maxMs: 250 } as const;
/** MAX_CONTENDERS: a look reads at most this many queue keys. */
export const MAX_CONTENDERS = 10_000;

export interface QueueDeps {
  lease: LeaseClient;
  snapshot: () => Promise<Snapshot>;
}

/** QueuePlace: our key, its revision and the lease keeping it. */
export interface QueuePlace {
  key: Uint8Array;
  revision: bigint;
  leaseId: number;
  keepAlive: KeepAlive;
}

export interface Contender {
  key: Uint8Array;
  value: Uint8Array;
  revision: bigint;
}

/** queuePrefix: NAME then '/', the range every contender's key is in. */
export function queuePrefix(name: Bytes): Uint8Array {
  const n = toBytes(name);
  if (n.length === 0) throw new ClientError('InvalidArgument', 'name: expected a non-empty name');
  return new Uint8Array([...n, 0x2f]);
}

/** prefixEnd: the first key after every key starting with prefix (empty: to the end). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array(0);
}

/** contenders lists the queue's keys at a fresh snapshot, lowest revision first. */
export async function contenders(deps: QueueDeps, prefix: Uint8Array): Promise<Contender[]> {
  const snap = await deps.snapshot();
  const pairs = await snap.scan(prefix, prefixEnd(prefix), MAX_CONTENDERS);
  return pairs.map((p) => ({ key: p.key, value: p.value, revision: p.version })).sort((a, b) => (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : compareKeys(a.key, b.key)));
}

/** join grants a lease, keeps it alive and writes our key with it. */
export async function join(deps: QueueDeps, prefix: Uint8Array, value: Bytes, leaseTtlMs: number): Promise<QueuePlace> {
  const { id } = await deps.lease.grant(leaseTtlMs);
  let ka: KeepAlive | undefined;
  try {
    ka = await deps.lease.keepAlive(id);
    const key = new Uint8Array([...prefix, ...new TextEncoder().encode(id.toString(16).padStart(16, '0'))]);
    const { commitTs } = await deps.lease.put(key, value, id);
    return { key, revision: commitTs, leaseId: id, keepAlive: ka };
  } catch (err) {
    ka?.close();
    await deps.lease.revoke(id).catch(() => {});
    throw err;
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * waitTurn resolves once our key has the lowest revision under prefix.
 * It fails with the loss when our lease is lost, with LeaseNotFound when
 * our key is gone, and with Timeout at the deadline (or when signal aborts).
 */
export async function waitTurn(deps: QueueDeps, prefix: Uint8Array, place: QueuePlace, deadlineMs: number, signal?: AbortSignal): Promise<void> {
  let backoff: number = WAIT_BACKOFF.baseMs;
  for (;;) {
    const all = await contenders(deps, prefix);
    const mine = all.findIndex((c) => compareKeys(c.key, place.key) === 0);
    if (mine < 0) throw new ClientError('LeaseNotFound', `our queue key is gone (lease ${place.leaseId} expired or was revoked)`);
    if (mine === 0) return;
    const pred = all[mine - 1]!;
    // Wait for the predecessor's key to go (or change: a new write is a new place, look again).
    for (;;) {
      if (place.keepAlive.isLost) throw await place.keepAlive.lost;
      if (signal?.aborted) throw new ClientError('Timeout', 'waiting for our turn was aborted');
      if (performance.now() >= deadlineMs) throw new ClientError('Timeout', `still waiting for our turn at the deadline (held by revision ${pred.revision})`);
      await sleep(Math.min(backoff, Math.max(1, deadlineMs - performance.now())), signal ?? place.keepAlive.signal);
      backoff = Math.min(WAIT_BACKOFF.maxMs, backoff * 2);
      const v = await (await deps.snapshot()).getWithVersion(pred.key);
      if (v === null || v.version !== pred.revision) break;
    }
    backoff = WAIT_BACKOFF.baseMs;
  }
}
