import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { PlacementClient, PlacementError } from '@flotilla/placement/client';
import { waitFor, type CliChild } from './helpers';
import { findLeader, freePort, Phases, role, routingGaps, startMember, TcpProxy, TsoHistory, type Member } from './placement-group';
import { announced, httpJson, spawnStore } from './processes';

// A placement member cut off from the others by TCP proxies on 127.0.0.1.
// Each member is told (--initial-cluster) that every other member lives
// behind a proxy of its own, one proxy per direction, so cutting a member's
// proxies cuts it off from its peers both ways while the test still reaches
// it directly. First a follower is cut (the majority goes on: timestamps,
// splits), then the leader (the majority elects another one; the old leader
// stops serving and never hands out a timestamp below one the new leader
// handed out; TSO linearizability over every answer). Healed, each comes
// back as a follower and catches up.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-pd-partition-'));
const children: CliChild[] = [];
const proxies: TcpProxy[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(proxies.map((p) => p.close()));
  rmSync(dir, { recursive: true, force: true });
});

interface Health {
  role: string;
  term: number;
  applied: number;
}
const health = (m: Member): Promise<Health> => httpJson<Health>(`http://${m.address}/health`);

describe('a partitioned placement member', () => {
  it('the majority keeps serving; a cut-off leader stops serving and hands out no timestamp that goes back; healed members catch up as followers', async () => {
    const phases = new Phases();
    const names = ['p1', 'p2', 'p3'];
    const real = await Promise.all(names.map(async () => `127.0.0.1:${await freePort()}`));
    // link[i][j]: the proxy member i reaches member j through.
    const link = await Promise.all(names.map((_, i) => Promise.all(names.map(async (_, j) => (i === j ? undefined : await TcpProxy.start(real[j]!))))));
    for (const row of link) for (const p of row) if (p) proxies.push(p);
    const members = names.map((n, i) => {
      const view = names.map((m, j) => `${m}=${i === j ? real[j] : link[i]![j]!.address}`).join(',');
      return startMember(dir, n, real[i]!, ['--initial-cluster', view], children);
    });
    await Promise.all(members.map((m) => announced(m.child, `placement ${m.name}`)));
    const others = (m: Member): Member[] => members.filter((x) => x !== m);
    const links = (m: Member): TcpProxy[] => {
      const k = members.indexOf(m);
      return names.flatMap((_, j) => (j === k ? [] : [link[k]![j]!, link[j]![k]!]));
    };
    const cut = (m: Member): void => links(m).forEach((p) => p.cut());
    const heal = (m: Member): void => links(m).forEach((p) => p.heal());

    const tuning = join(dir, 'tuning.json');
    writeFileSync(tuning, JSON.stringify({ regionHeartbeatIntervalMs: 300, storeHeartbeatIntervalMs: 300 }));
    const store = spawnStore(real.join(','), join(dir, 'store-1'), ['--tuning', tuning]);
    children.push(store);
    await announced(store, 'store 1');
    const client = await FlotillaClient.connect({ placement: real.join(','), timeoutMs: 30_000 });
    const tso = new TsoHistory();
    const clientOf = (ms: Member[], timeoutMs = 20_000): PlacementClient =>
      new PlacementClient({ addresses: ms.map((m) => m.address), requestTimeoutMs: timeoutMs, reconnectBackoffMs: { initialMs: 20, maxMs: 200 } });
    const all = clientOf(members);
    let splitN = 0;
    const splitOnce = async (): Promise<void> => {
      await client.split(`s/${String(++splitN).padStart(3, '0')}`);
    };
    await splitOnce();
    phases.mark('start');

    const awaitCaughtUp = async (m: Member, leader: Member): Promise<void> => {
      const target = await health(leader);
      await waitFor(`${m.name} following at term ${target.term}, applied ≥ ${target.applied}`, async () => {
        const h = await health(m);
        return h.role === 'follower' && h.term === target.term && h.applied >= target.applied;
      }, 20_000, 100);
    };

    // 1. A follower cut off: the leader and the other follower go on; the follower does not lead.
    const leader0 = await findLeader(members);
    const follower = others(leader0)[0]!;
    cut(follower);
    const majority0 = clientOf(others(follower));
    for (let i = 0; i < 5; i++) await tso.take('majority', majority0);
    await splitOnce();
    await splitOnce();
    const cutFollower = clientOf([follower], 1500);
    const followerErr = await tso.take('cut-off follower', cutFollower).then(() => undefined, (e: unknown) => e);
    expect(followerErr, 'a cut-off follower hands out no timestamp').toBeInstanceOf(PlacementError);
    expect(await role(follower)).not.toBe('leader');
    expect((await findLeader(members)).name, 'the leader keeps leading').toBe(leader0.name);
    heal(follower);
    await tso.take('majority', majority0);
    await awaitCaughtUp(follower, leader0);
    phases.mark('follower cut and healed');

    // 2. The leader cut off, asked for timestamps directly all along.
    const cutLeader = clientOf([leader0], 1500);
    let asking = true;
    const oldLeaderErrors = new Map<string, number>();
    const askOldLeader = (async () => {
      while (asking) {
        try {
          await tso.take('cut-off leader', cutLeader);
        } catch (e) {
          const code = e instanceof PlacementError ? e.code : String(e);
          oldLeaderErrors.set(code, (oldLeaderErrors.get(code) ?? 0) + 1);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await tso.take('cut-off leader', cutLeader);
    cut(leader0);
    const majority1 = clientOf(others(leader0));
    const leader1 = await findLeader(others(leader0), 20_000);
    phases.mark('new leader');
    for (let i = 0; i < 5; i++) await tso.take('new leader', majority1);
    await waitFor('the cut-off leader to step down', async () => (await role(leader0)) !== 'leader', 20_000, 100);
    const afterStepDown = tso.countBy('cut-off leader');
    const errorsBefore = [...oldLeaderErrors.values()].reduce((a, b) => a + b, 0);
    await splitOnce();
    await tso.take('new leader', majority1);
    // Its HTTP routes that need a leader answer 503 NotLeader (it knows none), and its TSO callers keep failing.
    const status = await fetch(`http://${leader0.address}/status`, { signal: AbortSignal.timeout(5000) });
    expect(status.status).toBe(503);
    expect(((await status.json()) as { error: { code: string } }).error.code).toBe('NotLeader');
    await waitFor('the cut-off old leader refusing more requests', () => [...oldLeaderErrors.values()].reduce((a, b) => a + b, 0) >= errorsBefore + 2, 20_000, 50);
    expect(tso.countBy('cut-off leader'), 'no timestamp from a member that stepped down').toBe(afterStepDown);
    asking = false;
    await askOldLeader;
    phases.mark('old leader stepped down and refused');
    expect([...oldLeaderErrors.keys()].every((c) => ['NotLeader', 'Unavailable', 'Timeout'].includes(c)), JSON.stringify([...oldLeaderErrors])).toBe(true);

    // 3. Healed: the old leader follows the new one and catches up; everything answers through it again.
    heal(leader0);
    await awaitCaughtUp(leader0, leader1);
    phases.mark('old leader healed and caught up');
    const through = clientOf([leader0]);
    await tso.take('through the old leader', through);
    await splitOnce();
    await waitFor('a whole routing table', async () => (await routingGaps(all)) === '', 20_000, 200);
    expect((await all.scanRegions(new Uint8Array(), new Uint8Array(), 100)).length).toBe(splitN + 1);

    expect(tso.violations()).toEqual([]);
    process.stderr.write(`placement partition: ${tso.size} timestamps (${tso.countBy('cut-off leader')} from the cut-off leader before it stepped down); old leader errors ${JSON.stringify([...oldLeaderErrors])}; ${phases}\n`);
    client.close();
    for (const pc of [all, majority0, majority1, cutFollower, cutLeader, through]) pc.close();
  }, 120_000);
});
