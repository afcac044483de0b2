import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { PlacementClient } from '@flotilla/placement/client';
import { waitFor, type CliChild } from './helpers';
import { findLeader, freePort, IdLedger, Phases, routingGaps, startMember, TsoHistory } from './placement-group';
import { announced, spawnStore } from './processes';

// Three `flotilla placement` processes and three stores; the test drives a
// storm of splits and merges (client.split / client.merge, the operator's
// commands) while writers load keys, and SIGKILLs the placement leader in
// the middle of it. Checked: splits and merges both complete after the
// failover and placement's routing table learns every merge (a merged
// source Region never comes back); no ID is given to two things; the
// routing table ends whole; timestamps are linearizable; every
// acknowledged write reads back.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-pd-merge-failover-'));
const children: CliChild[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const key = (i: number): string => `k/${String(i).padStart(6, '0')}`;
const value = (i: number): string => `v-${i}-${'y'.repeat(32)}`;

describe('replicated placement, leader killed during splits and merges', () => {
  it('splits and merges go on under a new leader; no ID twice, a whole routing table, every acknowledged write', async () => {
    const phases = new Phases();
    const names = ['p1', 'p2', 'p3'];
    const addresses = await Promise.all(names.map(async () => `127.0.0.1:${await freePort()}`));
    const initial = names.map((n, i) => `${n}=${addresses[i]}`).join(',');
    const members = names.map((n, i) => startMember(dir, n, addresses[i]!, ['--initial-cluster', initial], children));
    await Promise.all(members.map((m) => announced(m.child, `placement ${m.name}`)));
    const placement = addresses.join(',');

    const tuning = join(dir, 'tuning.json');
    writeFileSync(tuning, JSON.stringify({ regionHeartbeatIntervalMs: 300, storeHeartbeatIntervalMs: 300 }));
    const stores = [1, 2, 3].map((i) => spawnStore(placement, join(dir, `store-${i}`), ['--tuning', tuning]));
    children.push(...stores);
    await Promise.all(stores.map((s, i) => announced(s, `store ${i + 1}`)));

    const client = await FlotillaClient.connect({ placement, timeoutMs: 30_000 });
    const pc = new PlacementClient({ addresses, requestTimeoutMs: 20_000, reconnectBackoffMs: { initialMs: 20, maxMs: 200 } });
    // Merges need voters on the same stores: wait for the first Region's three.
    await waitFor('the first Region on three stores', async () => {
      const rs = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10);
      return rs.length === 1 && rs[0]!.region.peers.filter((p) => p.role === 'voter').length === 3 && rs[0]!.leader;
    }, 40_000, 200);
    phases.mark('start');

    const ledger = new IdLedger();
    const tso = new TsoHistory();
    let observing = true;
    const observe = async (): Promise<void> => {
      while (observing) {
        try {
          for (const id of await pc.allocId(2)) ledger.record(id, 'allocated by the test');
          await tso.take('observer', pc);
          for (const r of await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10_000)) {
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

    const acked: number[] = [];
    const TOTAL = 6000;
    let next = 0;
    const writer = async (): Promise<void> => {
      while (next < TOTAL) {
        const from = next;
        next += 100;
        const idx = Array.from({ length: Math.min(100, TOTAL - from) }, (_, j) => from + j);
        await client.batchPut(idx.map((i) => ({ key: key(i), value: value(i) })));
        acked.push(...idx);
      }
    };
    const load = Promise.all([writer(), writer()]);

    // The storm: split at fresh points, merge away random earlier ones (source: the Region starting at the
    // point, target: its left neighbour). Every outcome is recorded with the time it was asked.
    let killedAt = Infinity;
    const points = new Set<number>();
    const splits: { at: number; ok: boolean }[] = [];
    const merges: { at: number; ok: boolean; source?: number; error?: string }[] = [];
    let storming = true;
    let seed = 16;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const splitter = async (): Promise<void> => {
      while (storming) {
        const p = 1 + rand(TOTAL - 1);
        if (points.has(p)) continue;
        const at = Date.now();
        try {
          await client.split(key(p));
          points.add(p);
          splits.push({ at, ok: true });
        } catch {
          splits.push({ at, ok: false });
        }
      }
    };
    const merger = async (): Promise<void> => {
      while (storming) {
        const sorted = [...points].sort((a, b) => a - b);
        if (sorted.length < 3) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const j = rand(sorted.length);
        const p = sorted[j]!;
        const at = Date.now();
        try {
          const r = await client.merge(key(p), j === 0 ? 'a' : key(sorted[j - 1]!));
          points.delete(p);
          merges.push({ at, ok: true, source: r.sourceRegionId });
        } catch (e) {
          merges.push({ at, ok: false, error: (e as Error).message });
        }
      }
    };
    const storm = Promise.all([splitter(), merger()]);

    await waitFor('splits and merges under way', () => splits.filter((s) => s.ok).length >= 4 && merges.some((m) => m.ok), 40_000, 100);
    phases.mark('storm under way');
    const leader = await findLeader(members);
    leader.child.kill('SIGKILL');
    killedAt = Date.now();
    await waitFor('splits and merges after the failover', () => splits.filter((s) => s.ok && s.at > killedAt).length >= 3 && merges.filter((m) => m.ok && m.at > killedAt).length >= 2, 40_000, 100);
    phases.mark('splits and merges after the kill');
    storming = false;
    await storm;
    await load;
    phases.mark('load done');
    expect(acked.length).toBe(TOTAL);

    // Placement learns every merge: no merged source Region is routed to any more, and the table is whole.
    const mergedAway = merges.filter((m) => m.ok).map((m) => m.source!);
    await waitFor('a whole routing table without the merged Regions', async () => {
      const ids = new Set((await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10_000)).map((r) => r.region.id));
      return mergedAway.every((id) => !ids.has(id)) && (await routingGaps(pc)) === '';
    }, 30_000, 200);
    phases.mark('routing whole');

    for (let i = 0; i < acked.length; i += 2000) {
      const ks = acked.slice(i, i + 2000);
      const got = await client.batchGet(ks.map(key));
      ks.forEach((k, j) => expect(got[j] && Buffer.from(got[j]!).toString('utf8'), key(k)).toBe(value(k)));
    }

    observing = false;
    await observer;
    expect(ledger.violations).toEqual([]);
    expect(tso.violations()).toEqual([]);
    expect(tso.size).toBeGreaterThan(10);
    const after = (xs: { at: number; ok: boolean }[]): string => `${xs.filter((x) => x.ok && x.at > killedAt).length}/${xs.filter((x) => x.at > killedAt).length}`;
    process.stderr.write(`placement merge failover: ${splits.filter((s) => s.ok).length} splits, ${mergedAway.length} merges (after the kill: splits ${after(splits)}, merges ${after(merges)}); ${ledger.owner.size} ids; ${tso.size} timestamps; ${phases}\n`);
    client.close();
    pc.close();
  }, 120_000);
});
