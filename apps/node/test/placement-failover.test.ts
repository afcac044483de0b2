import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { PlacementClient } from '@flotilla/placement/client';
import { startCli, waitFor, type CliChild } from './helpers';
import { findLeader, freePort, IdLedger, role, routingGaps, startMember } from './placement-group';
import { announced } from './processes';

// A replicated placement with every part a real process: three
// `flotilla placement` members and three demo-profile stores that split
// under load. The placement leader is SIGKILLed in the middle of the
// splits. Checked: splits go on under the new leader; no ID is handed out
// twice (every ID the test allocates, and every Region and peer ID ever
// seen in the routing table, belong to one thing only); the routing table
// ends with no gap and no overlap; timestamps never go back; every
// acknowledged write reads back; the killed member comes back as a follower.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-pd-failover-'));
const children: CliChild[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const key = (i: number): string => `k/${String(i).padStart(7, '0')}`;
const value = (i: number): string => `v-${i}-${'x'.repeat(48)}`;

describe('replicated placement, leader killed during splits', () => {
  it('goes on splitting under a new leader, never repeats an ID, keeps the routing table whole and every acknowledged write', async () => {
    const names = ['p1', 'p2', 'p3'];
    const addresses = await Promise.all(names.map(async () => `127.0.0.1:${await freePort()}`));
    const initial = names.map((n, i) => `${n}=${addresses[i]}`).join(',');
    const members = names.map((n, i) => startMember(dir, n, addresses[i]!, ['--initial-cluster', initial], children));
    await Promise.all(members.map((m) => announced(m.child, `placement ${m.name}`)));
    const placement = addresses.join(',');

    const tuning = join(dir, 'tuning.json');
    writeFileSync(tuning, JSON.stringify({ regionHeartbeatIntervalMs: 300, storeHeartbeatIntervalMs: 300, splitCheckIntervalMs: 200 }));
    const stores = [1, 2, 3].map((i) => {
      const child = startCli(['store', '--placement', placement, '--data-dir', join(dir, `store-${i}`), '--listen', '127.0.0.1:0', '--profile', 'demo', '--tuning', tuning, '--log-level', 'warn']);
      children.push(child);
      return child;
    });
    await Promise.all(stores.map((s, i) => announced(s, `store ${i + 1}`)));

    const client = await FlotillaClient.connect({ placement, timeoutMs: 30_000 });
    const pc = new PlacementClient({ addresses, requestTimeoutMs: 20_000, reconnectBackoffMs: { initialMs: 20, maxMs: 200 } });
    const ledger = new IdLedger();
    let maxRegions = 0;
    let observing = true;
    const observe = async (): Promise<void> => {
      while (observing) {
        try {
          for (const id of await pc.allocId(3)) ledger.record(id, 'allocated by the test');
          const regions = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10_000);
          maxRegions = Math.max(maxRegions, regions.length);
          for (const r of regions) {
            ledger.record(r.region.id, `region ${r.region.id}`);
            for (const p of r.region.peers) ledger.record(p.id, `peer of region ${r.region.id}`);
          }
        } catch {
          // Placement failing over: the next round tries again.
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const observer = observe();

    // Load keys in batches; a write is acknowledged when batchPut resolves.
    const acked: number[] = [];
    const TOTAL = 18_000;
    let next = 0;
    const writer = async (): Promise<void> => {
      while (next < TOTAL) {
        const from = next;
        next += 200;
        const idx = Array.from({ length: Math.min(200, TOTAL - from) }, (_, j) => from + j);
        await client.batchPut(idx.map((i) => ({ key: key(i), value: value(i) })));
        acked.push(...idx);
      }
    };
    const load = Promise.all([writer(), writer(), writer()]);

    // Once the splits are under way, SIGKILL the placement leader.
    await waitFor('a few splits', () => maxRegions >= 4, 40_000, 100);
    const before = await pc.timestamp();
    const leader = await findLeader(members);
    leader.child.kill('SIGKILL');
    const regionsAtKill = maxRegions;
    const killedAt = Date.now();
    expect(await pc.timestamp()).toBeGreaterThan(before);
    const failoverMs = Date.now() - killedAt;

    await load;
    expect(acked.length).toBe(TOTAL);
    // Splits complete under the new leader.
    await waitFor('splits after the failover', () => maxRegions > regionsAtKill, 30_000, 100);

    // The routing table settles whole: sorted, contiguous from "" to "", every Region with a leader.
    await waitFor('a whole routing table', async () => (await routingGaps(pc)) === '', 30_000, 200);

    // Every acknowledged write reads back.
    for (let i = 0; i < acked.length; i += 2000) {
      const ks = acked.slice(i, i + 2000);
      const got = await client.batchGet(ks.map(key));
      ks.forEach((k, j) => expect(got[j] && Buffer.from(got[j]!).toString('utf8'), key(k)).toBe(value(k)));
    }

    // The killed member comes back on its data as a follower.
    const back = startMember(dir, leader.name, leader.address, ['--initial-cluster', initial], children);
    await announced(back.child, `placement ${back.name} again`);
    await waitFor('the old leader following', async () => (await role(back)) === 'follower', 20_000, 100);

    observing = false;
    await observer;
    expect(ledger.violations).toEqual([]);
    expect([...ledger.owner.values()].filter((v) => v === 'allocated by the test').length).toBeGreaterThan(10);
    process.stderr.write(`placement failover: first timestamp ${failoverMs} ms after SIGKILL; ${maxRegions} regions; ${ledger.owner.size} ids\n`);
    client.close();
    pc.close();
  }, 120_000);
});
