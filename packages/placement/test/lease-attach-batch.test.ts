import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LEASE_LIMITS, PlacementClient, PlacementError, startPlacementServer, type LeaseReaper, type PlacementServer } from '../src';

// leaseAttachBatch: many (lease, key) attaches in one request and one log
// entry, one result per item with the same refusals as leaseAttach
// (LeaseNotFound once revoked, InvalidArgument past the keys per lease),
// the others still attached, durable across a restart and reaped with the
// lease. A fake reaper stands in for the transactional keyspace.

const FAST = { tickMs: 20, electionTicks: 10, heartbeatTicks: 1 };
const dirs: string[] = [];
const servers: PlacementServer[] = [];
const clients: PlacementClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

class FakeReaper implements LeaseReaper {
  readonly reaped: { id: number; keys: string[] }[] = [];
  async install(): Promise<void> {}
  async reap(id: number, keys: readonly Uint8Array[]): Promise<void> {
    this.reaped.push({ id, keys: keys.map((k) => new TextDecoder().decode(k)).sort() });
  }
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const names = (keys: Uint8Array[] | undefined): string[] => (keys ?? []).map((k) => new TextDecoder().decode(k)).sort();

describe('placement leaseAttachBatch', () => {
  it('attaches many keys of several leases in one request, refuses per item, persists and reaps them', async () => {
    const root = mkdtempSync(join(tmpdir(), 'placement-lease-batch-'));
    dirs.push(root);
    const reaper = new FakeReaper();
    const opts = { dataDir: root, listen: '127.0.0.1:0', raftTiming: FAST, lease: { reaper } };
    let s = await startPlacementServer(opts);
    servers.push(s);
    let c = new PlacementClient({ addresses: [s.address], requestTimeoutMs: 5000 });
    clients.push(c);

    const a = await c.leaseGrant(60_000);
    const b = await c.leaseGrant(60_000);
    const gone = await c.leaseGrant(60_000);
    await c.leaseRevoke(gone.id);
    const results = await c.leaseAttachBatch([
      { id: a.id, key: enc('a1') },
      { id: b.id, key: enc('b1') },
      { id: gone.id, key: enc('g1') },
      { id: a.id, key: enc('a2') },
      { id: a.id, key: enc('a1') }, // named twice: attached once
      { id: 987654, key: enc('x') },
    ]);
    expect(results.map((r) => ('error' in r ? r.error : 'ok'))).toEqual(['ok', 'ok', 'LeaseNotFound', 'ok', 'ok', 'LeaseNotFound']);
    expect(names((await c.leaseTimeToLive(a.id, true)).keys)).toEqual(['a1', 'a2']);
    expect(names((await c.leaseTimeToLive(b.id, true)).keys)).toEqual(['b1']);

    // Bad input is refused as a whole, nothing attached: an empty list, an empty key, too many items.
    for (const bad of [[], [{ id: a.id, key: new Uint8Array(0) }], Array.from({ length: LEASE_LIMITS.maxAttachesPerRequest + 1 }, (_, i) => ({ id: a.id, key: enc(`n${i}`) }))]) {
      const err = await c.leaseAttachBatch(bad).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(PlacementError);
      expect((err as PlacementError).code).toBe('InvalidArgument');
    }
    expect(names((await c.leaseTimeToLive(a.id, true)).keys)).toEqual(['a1', 'a2']);

    // The attaches are in the log: a restarted placement has them.
    c.close();
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    s = await startPlacementServer(opts);
    servers.push(s);
    c = new PlacementClient({ addresses: [s.address], requestTimeoutMs: 5000 });
    clients.push(c);
    await expect.poll(async () => names((await c.leaseTimeToLive(a.id, true)).keys), { timeout: 10_000, interval: 50 }).toEqual(['a1', 'a2']);
    expect(names((await c.leaseTimeToLive(b.id, true)).keys)).toEqual(['b1']);
    await c.leaseRevoke(a.id);
    expect(reaper.reaped.find((r) => r.id === a.id)?.keys).toEqual(['a1', 'a2']);
  });

  it('refuses the items past the keys per lease with InvalidArgument and attaches the rest', async () => {
    const root = mkdtempSync(join(tmpdir(), 'placement-lease-batch-'));
    dirs.push(root);
    const s = await startPlacementServer({ dataDir: root, listen: '127.0.0.1:0', raftTiming: FAST, lease: { reaper: new FakeReaper() } });
    servers.push(s);
    const c = new PlacementClient({ addresses: [s.address], requestTimeoutMs: 10_000 });
    clients.push(c);
    const full = await c.leaseGrant(60_000);
    const other = await c.leaseGrant(60_000);
    const per = LEASE_LIMITS.maxAttachesPerRequest;
    for (let i = 0; i < LEASE_LIMITS.maxKeysPerLease; i += per) {
      const items = Array.from({ length: Math.min(per, LEASE_LIMITS.maxKeysPerLease - i) }, (_, j) => ({ id: full.id, key: enc(`k${i + j}`) }));
      expect((await c.leaseAttachBatch(items)).every((r) => !('error' in r))).toBe(true);
    }
    const r = await c.leaseAttachBatch([{ id: full.id, key: enc('over') }, { id: other.id, key: enc('o1') }, { id: full.id, key: enc('k0') }]);
    expect(r[0]).toMatchObject({ error: 'InvalidArgument' });
    expect((r[0] as { message: string }).message).toMatch(/already has \d+ keys/);
    expect(r[1]).toEqual({ attached: true });
    expect(r[2]).toEqual({ attached: true }); // already one of its keys
    expect(names((await c.leaseTimeToLive(other.id, true)).keys)).toEqual(['o1']);
    expect((await c.leaseTimeToLive(full.id, true)).keys).toHaveLength(LEASE_LIMITS.maxKeysPerLease);
  });
});
