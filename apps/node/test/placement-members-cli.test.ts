import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { PlacementClient } from '@flotilla/placement/client';
import { runCli, waitFor, type CliChild } from './helpers';
import { cliMembers, findLeader, freePort, Phases, role, routingGaps, startMember, type Member } from './placement-group';
import { announced, spawnStore } from './processes';

// Placement membership as an operator changes it, through the CLI against
// real `flotilla placement` processes: `placement members add p4` then p4
// started with --join shows up as a learner and then a voter; a member
// whose disk is lost is replaced (remove, then add again on an empty
// directory) with nothing lost (same cluster ID, IDs keep rising, routing
// whole, the store keeps serving); and `members remove` of the leader.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-pd-members-'));
const children: CliChild[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const roles = (view: { members: { name: string; role: string }[] }): Record<string, string> =>
  Object.fromEntries(view.members.filter((m) => m.role !== 'removed').map((m) => [m.name, m.role]));

describe('placement membership through the CLI', () => {
  it('adds a member learner-first, replaces one that lost its disk, removes the leader, and loses nothing', async () => {
    const phases = new Phases();
    const names = ['p1', 'p2', 'p3'];
    const addresses = await Promise.all(names.map(async () => `127.0.0.1:${await freePort()}`));
    const initial = names.map((n, i) => `${n}=${addresses[i]}`).join(',');
    const members = names.map((n, i) => startMember(dir, n, addresses[i]!, ['--initial-cluster', initial], children));
    await Promise.all(members.map((m) => announced(m.child, `placement ${m.name}`)));
    const tuning = join(dir, 'tuning.json');
    writeFileSync(tuning, JSON.stringify({ regionHeartbeatIntervalMs: 300, storeHeartbeatIntervalMs: 300 }));
    const store = spawnStore(addresses.join(','), join(dir, 'store-1'), ['--tuning', tuning]);
    children.push(store);
    await announced(store, 'store 1');

    const live = (): string => members.filter((m) => m.child.exitCode === null && m.child.signalCode === null).map((m) => m.address).join(',');
    const cli = (args: string[]) => runCli([...args, '--placement', live()], { timeoutMs: 30_000 });
    const client = await FlotillaClient.connect({ placement: addresses.join(','), timeoutMs: 30_000 });
    const pc = new PlacementClient({ addresses, requestTimeoutMs: 20_000, reconnectBackoffMs: { initialMs: 20, maxMs: 200 } });
    const clusterId = (await pc.getClusterInfo()).clusterId;
    let lastId = Math.max(...(await pc.allocId(3)));
    let lastTs = await pc.timestamp();
    let written = 0;
    const stillWhole = async (what: string): Promise<void> => {
      expect((await pc.getClusterInfo()).clusterId, `${what}: cluster ID`).toBe(clusterId);
      const ids = await pc.allocId(3);
      expect(Math.min(...ids), `${what}: IDs keep rising`).toBeGreaterThan(lastId);
      lastId = Math.max(...ids);
      const ts = await pc.timestamp();
      expect(ts, `${what}: timestamps keep rising`).toBeGreaterThan(lastTs);
      lastTs = ts;
      await client.put(`w/${++written}`, `v${written}`);
      await client.split(`w/${written}`);
      for (let i = 1; i <= written; i++) expect(Buffer.from((await client.get(`w/${i}`)) ?? []).toString('utf8'), `${what}: w/${i}`).toBe(`v${i}`);
      await waitFor(`${what}: a whole routing table`, async () => (await routingGaps(pc)) === '', 20_000, 200);
    };
    await stillWhole('at the start');
    // Waits poll the API (a CLI process per poll costs a second of CPU on a loaded machine); the CLI then shows the result.
    const apiRoles = async (): Promise<Record<string, string>> => roles(await pc.call('getMembers', {}));
    phases.mark('start');

    // The list, in both spellings.
    expect(Object.values(roles(await cliMembers(live()))).sort()).toEqual(['leader', 'voter', 'voter']);
    const table = await cli(['member', 'list']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/3 members \(answered by p\d\)/);

    // Add p4: a learner until it runs (--join) and catches up, then a voter.
    const p4address = `127.0.0.1:${await freePort()}`;
    const add = await cli(['placement', 'members', 'add', 'p4', p4address]);
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain('as a learner');
    expect(roles(await cliMembers(live()))['p4']).toBe('learner');
    members.push(startMember(dir, 'p4', p4address, ['--join', addresses.join(',')], children));
    await announced(members[3]!.child, 'placement p4');
    await waitFor('p4 a voter', async () => (await apiRoles())['p4'] === 'voter', 30_000, 100);
    expect(roles(await cliMembers(live()))['p4']).toBe('voter');
    await stillWhole('after adding p4');
    phases.mark('p4 added');

    // A follower loses its disk: kill it, wipe it, remove it, add it again under its name on an empty directory.
    const leader = await findLeader(members);
    const victim = members.find((m) => m !== leader && m.name !== 'p4')!;
    victim.child.kill('SIGKILL');
    await waitFor(`${victim.name} dead`, () => victim.child.signalCode !== null, 10_000, 50);
    rmSync(join(dir, victim.name), { recursive: true, force: true });
    const oldId = (await pc.call('getMembers', {})).members.find((m) => m.name === victim.name)!.id;
    const remove = await cli(['placement', 'members', 'remove', victim.name]);
    expect(remove.code, remove.stderr).toBe(0);
    expect((await apiRoles())[victim.name]).toBeUndefined();
    const againAddress = `127.0.0.1:${await freePort()}`;
    const again = await cli(['placement', 'members', 'add', victim.name, againAddress, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const readded = JSON.parse(again.stdout) as { id: number; role: string };
    expect(readded.id, 'a replaced member gets a new ID').toBeGreaterThan(oldId);
    const replacement = startMember(dir, victim.name, againAddress, ['--join', live()], children);
    members[members.indexOf(victim)] = replacement;
    await announced(replacement.child, `placement ${victim.name} again`);
    await waitFor(`${victim.name} a voter again`, async () => (await apiRoles())[victim.name] === 'voter', 30_000, 100);
    expect(roles(await cliMembers(live()))[victim.name]).toBe('voter');
    await stillWhole('after replacing a lost disk');
    phases.mark('lost disk replaced');

    // Remove the leader: it hands over first; the others go on under a new one.
    const removedLeader = await findLeader(members);
    const out = await cli(['placement', 'members', 'remove', removedLeader.name]);
    expect(out.code, out.stderr).toBe(0);
    const rest = members.filter((m) => m !== removedLeader);
    const newLeader = await findLeader(rest, 20_000);
    expect(newLeader.name).not.toBe(removedLeader.name);
    await waitFor(`${removedLeader.name} to know it was removed`, async () => (await role(removedLeader)) === 'removed', 20_000, 100);
    const view = roles(await cliMembers(rest.map((m: Member) => m.address).join(',')));
    expect(view[removedLeader.name]).toBeUndefined();
    expect(Object.values(view).sort()).toEqual(['leader', 'voter', 'voter']);
    await stillWhole('after removing the leader');
    phases.mark('leader removed');
    process.stderr.write(`placement members cli: ${phases}\n`);

    client.close();
    pc.close();
  }, 150_000);
});
