import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, ClientLeaseReaper, FlotillaClient, INTERNAL_PREFIX } from '@flotilla/client';
import { startTestCluster, type TestCluster } from '@flotilla/store/testing';
import { waitFor } from './helpers';

// Leases, locks and elections end to end: placement (in process, with the
// client's reaper, as `flotilla placement` runs it) and three stores over
// two Regions, real SQLite files and sockets (the CLI: lease-cli.test.ts).

let cluster: TestCluster;
let address = '';
beforeAll(async () => {
  const reaper = new ClientLeaseReaper(() => FlotillaClient.connect({ placement: address }));
  cluster = await startTestCluster({ stores: 3, splitKeys: ['m'], placement: { lease: { reaper } } });
  address = cluster.placementAddress;
}, 60_000);
afterAll(async () => {
  await cluster?.close();
});

const str = (x: Uint8Array | null | undefined): string | null => (x ? Buffer.from(x).toString('utf8') : null);

async function readNow(keys: string[]): Promise<(string | null)[]> {
  return (await (await cluster.client.snapshot()).batchGet(keys)).map(str);
}

/** deletedAt finds the commit ts that deleted key: the smallest ts in (lo, hi] at which it reads absent (binary search over snapshot reads). */
async function deletedAt(key: string, lo: bigint, hi: bigint): Promise<bigint> {
  expect(await (await cluster.client.snapshot(lo)).get(key)).not.toBeNull();
  expect(await (await cluster.client.snapshot(hi)).get(key)).toBeNull();
  while (hi - lo > 1n) {
    const mid = (lo + hi) / 2n;
    if ((await (await cluster.client.snapshot(mid)).get(key)) === null) hi = mid;
    else lo = mid;
  }
  return hi;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(ClientError);
    return (err as ClientError).code;
  }
}

describe('leases on a real cluster', () => {
  it('keys in two Regions live while keepalives flow, and go within TTL + 1.5 s of the last keepalive, in one revision', async () => {
    const c = cluster.client;
    const ttl = 2000; // refreshed every 667 ms: room for a loaded machine's pauses
    const { id } = await c.lease.grant(ttl);
    const ka = await c.lease.keepAlive(id);
    await c.put('a/svc', 'a', { lease: id });
    await c.lease.put('z/svc', 'z', id);
    expect(await c.get('a/svc')).toBeNull(); // a leased put writes the transactional keyspace
    // Two TTLs of keepalives: every look finds both keys.
    const until = performance.now() + 2 * ttl;
    let looks = 0;
    while (performance.now() < until) {
      expect(await readNow(['a/svc', 'z/svc'])).toEqual(['a', 'z']);
      looks++;
    }
    expect(looks).toBeGreaterThan(3);
    expect(ka.isLost).toBe(false);
    const before = await c.timestamp();
    ka.close();
    const stoppedAt = performance.now();
    await waitFor('the leased keys to go', async () => (await readNow(['a/svc', 'z/svc'])).every((v) => v === null), 10_000, 20);
    const goneAfterMs = performance.now() - stoppedAt;
    expect(goneAfterMs).toBeLessThan(ttl + 1500);
    const after = await c.timestamp();
    const [da, dz] = [await deletedAt('a/svc', before, after), await deletedAt('z/svc', before, after)];
    expect(da).toBe(dz);
    expect(await code(c.lease.keepAliveOnce(id))).toBe('LeaseNotFound');
  }, 40_000);

  it('revoke deletes every attached key in one revision; a revoked or unknown lease gives typed errors', async () => {
    const c = cluster.client;
    const { id } = await c.lease.grant(30_000);
    const keys = ['b/1', 'c/2', 'n/3', 'y/4'];
    for (const k of keys) await c.put(k, 'v', { lease: id });
    // Inside a transaction: attach, then put (the guard read makes the put fail if the lease went first).
    await c.txn(async (tx) => {
      await c.lease.attach(tx, 'q/5', id);
      tx.put('q/5', 'v');
    });
    const info = await c.lease.timeToLive(id, { keys: true });
    expect(info.keys!.map((k) => str(k)).sort()).toEqual([...keys, 'q/5'].sort());
    expect((await c.lease.list()).map((l) => l.id)).toContain(id);
    const before = await c.timestamp();
    await c.lease.revoke(id);
    const after = await c.timestamp();
    expect(await readNow([...keys, 'q/5'])).toEqual([null, null, null, null, null]);
    const revs = new Set<bigint>();
    for (const k of [...keys, 'q/5']) revs.add(await deletedAt(k, before, after));
    expect(revs.size).toBe(1);

    expect(await code(c.put('b/1', 'again', { lease: id }))).toBe('LeaseNotFound');
    expect(await readNow(['b/1'])).toEqual([null]);
    expect(await code(c.lease.keepAliveOnce(id))).toBe('LeaseNotFound');
    expect(await code(c.lease.revoke(id))).toBe('LeaseNotFound');
    expect(await code(c.lease.keepAliveOnce(424242))).toBe('LeaseNotFound');
    expect(await code(c.lease.timeToLive(424242))).toBe('LeaseNotFound');
    expect(await code(c.lease.grant(0))).toBe('InvalidArgument');
    expect(await code(c.lease.grant(50))).toBe('InvalidArgument');
    const { id: other } = await c.lease.grant(30_000);
    expect(await code(c.put(new Uint8Array([...INTERNAL_PREFIX, 1]), 'x', { lease: other }))).toBe('InvalidArgument');
    await c.lease.revoke(other);
  }, 40_000);
  it('puts racing a revocation never leave a key behind: each one fails with LeaseNotFound or is deleted by it', async () => {
    const clients = await Promise.all([0, 1, 2].map(() => cluster.connect()));
    const { id } = await cluster.client.lease.grant(30_000);
    const keys: string[] = [];
    const outcomes = new Map<string, number>();
    let revoked = false;
    const writers = clients.map(async (c, w) => {
      for (let i = 0; !revoked || i < 3; i++) {
        const k = `${'dkw'[w]}/race/${i}`;
        keys.push(k);
        let outcome = 'ok';
        try {
          await c.put(k, 'v', { lease: id });
        } catch (err) {
          outcome = (err as ClientError).code;
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (i > 200) break;
      }
    });
    await waitFor('some leased puts', () => (outcomes.get('ok') ?? 0) >= 6, 20_000, 5);
    await cluster.client.lease.revoke(id);
    revoked = true;
    await Promise.all(writers);
    expect(outcomes.get('ok')).toBeGreaterThan(0);
    expect(outcomes.get('LeaseNotFound')).toBeGreaterThan(0);
    expect([...outcomes.keys()].every((o) => o === 'ok' || o === 'LeaseNotFound' || o === 'TxnAborted'), JSON.stringify([...outcomes])).toBe(true);
    const left = (await (await cluster.client.snapshot()).batchGet(keys)).filter((v) => v !== null);
    expect(left).toEqual([]);
    for (const c of clients) c.close();
  }, 40_000);

  it('a put that attached and read the guard before the revocation, and writes after it, conflicts with it and ends in LeaseNotFound', async () => {
    const c = cluster.client;
    const { id } = await c.lease.grant(30_000);
    let revoked: Promise<void> | undefined;
    let runs = 0;
    const put = c.txn(async (tx) => {
      runs++;
      await c.lease.attach(tx, 'r/conflict', id); // first run: attached, guard present at start_ts
      revoked ??= c.lease.revoke(id); // the revocation commits (deleting r/conflict) after our start_ts
      await revoked;
      tx.put('r/conflict', 'v');
    });
    expect(await code(put)).toBe('LeaseNotFound');
    expect(runs).toBe(2); // the first run's prewrite met the revocation's delete (WriteConflict); the second found the lease gone
    expect(await readNow(['r/conflict'])).toEqual([null]);
  }, 30_000);
});

describe('lock and election recipes', () => {
  it('N clients contending for a lock never overlap; a fenced register sees only rising tokens', async () => {
    const N = 4;
    const ROUNDS = 3;
    const clients = await Promise.all(Array.from({ length: N }, () => cluster.connect()));
    const sections: { who: number; token: bigint; start: number; end: number }[] = [];
    const rejected: string[] = [];
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      clients.map(async (c, who) => {
        for (let r = 0; r < ROUNDS; r++) {
          const h = await c.lock('locks/register', { leaseTtlMs: 3000, timeoutMs: 30_000 });
          const start = performance.now();
          inside++;
          maxInside = Math.max(maxInside, inside);
          // The fenced register: a write with a token below the highest seen is rejected.
          await c.txn(async (tx) => {
            const cur = await tx.get('fenced/register');
            const seen = cur ? BigInt(str(cur)!.split(' ')[0]!) : 0n;
            if (h.fencingToken < seen) {
              rejected.push(`${who}: ${h.fencingToken} < ${seen}`);
              return;
            }
            tx.put('fenced/register', `${h.fencingToken} ${who}`);
          });
          inside--;
          sections.push({ who, token: h.fencingToken, start, end: performance.now() });
          await h.release();
        }
      }),
    );
    expect(maxInside).toBe(1);
    expect(rejected).toEqual([]);
    expect(sections).toHaveLength(N * ROUNDS);
    const byStart = [...sections].sort((a, b) => a.start - b.start);
    for (let i = 1; i < byStart.length; i++) {
      expect(byStart[i]!.start).toBeGreaterThanOrEqual(byStart[i - 1]!.end);
      expect(byStart[i]!.token).toBeGreaterThan(byStart[i - 1]!.token);
    }
    expect(str((await (await cluster.client.snapshot()).get('fenced/register')))!.split(' ')[0]).toBe(byStart.at(-1)!.token.toString());
  }, 50_000);

  it('a holder that dies releases on lease expiry; an election follows its leader and the next candidate takes over', async () => {
    const dying = await cluster.connect();
    const held = await dying.lock('locks/expiry', { leaseTtlMs: 1000 });
    const next = cluster.client.lock('locks/expiry', { leaseTtlMs: 3000, timeoutMs: 20_000 });
    dying.close(); // no more keepalives: the lease expires
    const h = await next;
    expect(h.fencingToken).toBeGreaterThan(held.fencingToken);
    await h.release();

    const e1 = (await cluster.connect()).election('elect/svc', { leaseTtlMs: 1000 });
    const e2 = cluster.client.election('elect/svc', { leaseTtlMs: 3000 });
    expect(await e2.leader()).toBeNull();
    const l1 = await e1.campaign('node-1');
    const second = e2.campaign('node-2');
    expect(str((await e2.leader())!.value)).toBe('node-1');
    const ac = new AbortController();
    const seen: (string | null)[] = [];
    const watching = (async () => {
      for await (const l of e2.observe({ signal: ac.signal, intervalMs: 20 })) {
        seen.push(l ? str(l.value) : null);
        if (seen.at(-1) === 'node-2') ac.abort();
      }
    })();
    await l1.resign();
    const l2 = await second;
    expect(l2.revision).toBeGreaterThan(l1.revision);
    await watching;
    expect(seen[0]).toBe('node-1');
    expect(seen.at(-1)).toBe('node-2');
    await l2.resign();
    expect(await e2.leader()).toBeNull();
  }, 40_000);
  it('the fenced-register checker catches a planted bug: a holder that ignores the loss of its lease', async () => {
    // The planted bug: holder A keeps writing after its lease is gone (its keepalives stop: its lock
    // client is closed, while it still writes through another client), as a holder that ignores `lost` would.
    const aLock = await cluster.connect();
    const aWrites = await cluster.connect();
    const a = await aLock.lock('locks/planted', { leaseTtlMs: 1000 });
    const history: { who: string; token: bigint }[] = [];
    const fencedWrite = (c: FlotillaClient, who: string, token: bigint): Promise<boolean> =>
      c.txn(async (tx) => {
        const cur = await tx.get('fenced/planted');
        if (cur && BigInt(str(cur)!.split(' ')[0]!) > token) return false; // the fence: a lower token than seen is refused
        tx.put('fenced/planted', `${token} ${who}`);
        history.push({ who, token });
        return true;
      });
    expect(await fencedWrite(aWrites, 'A', a.fencingToken)).toBe(true);
    aLock.close();
    const b = await cluster.client.lock('locks/planted', { leaseTtlMs: 3000, timeoutMs: 20_000 });
    expect(await fencedWrite(cluster.client, 'B', b.fencingToken)).toBe(true);
    // A, ignoring that its lease is lost, writes again: the fence refuses it...
    expect(await fencedWrite(aWrites, 'A', a.fencingToken)).toBe(false);
    // ...and the checker, run over what an unfenced register would have taken, reports the interleaving.
    const unfenced = [...history, { who: 'A', token: a.fencingToken }];
    const violations = unfenced.filter((w, i) => unfenced.slice(0, i).some((earlier) => earlier.token > w.token));
    expect(violations).toEqual([{ who: 'A', token: a.fencingToken }]);
    await b.release();
    aWrites.close();
  }, 30_000);
});
