import { boolFlag, type CommandSpec } from '../args';
import { UsageError } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { table } from '../format';
import { placementClient, targetFlags } from '../target';

// `flotilla placement members [add NAME HOST:PORT | remove NAME]`: the
// members of a replicated placement and their roles, and online changes.

const membersSpec: CommandSpec = {
  path: ['placement', 'members'],
  summary: 'List the placement members with their roles (leader, voter, learner); add or remove one.',
  description:
    'Without an action, prints every placement member: name, Raft ID, address and role, as the leader sees it. `add NAME HOST:PORT` adds a member as a learner (start it with --join; it becomes a voter once caught up); a member started with --join adds itself, so this is optional. `remove NAME` takes a member out of the group (its ID is never reused; a leader hands leadership over first). One change at a time.',
  positionals: [
    { name: 'action', description: 'add or remove (omit to list)', required: false },
    { name: 'name', description: 'member name (add, remove)', required: false },
    { name: 'address', description: 'HOST:PORT the member serves on (add)', required: false },
  ],
  flags: [...targetFlags, { name: 'json', type: 'boolean', description: 'print JSON instead of a table', schema: boolFlag() }],
  examples: ['flotilla placement members', 'flotilla placement members add p4 127.0.0.1:20190 --placement 127.0.0.1:20160', 'flotilla placement members remove p3'],
};

export const membersCommand: Command = {
  spec: membersSpec,
  async run(ctx: CommandContext) {
    const [action, name, address] = ctx.parsed.positionals;
    if (action !== undefined && action !== 'add' && action !== 'remove') throw new UsageError(`unknown action ${JSON.stringify(action)}; expected add or remove`);
    if (action !== undefined && name === undefined) throw new UsageError(`missing <name> (usage: flotilla placement members ${action} NAME${action === 'add' ? ' HOST:PORT' : ''})`);
    if (action === 'add' && address === undefined) throw new UsageError('missing <address> (usage: flotilla placement members add NAME HOST:PORT)');
    if (action === 'remove' && address !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(address)}`);
    const { client } = await placementClient(ctx);
    const json = ctx.parsed.values['json'] === true;
    try {
      if (action === 'add') {
        const r = await client.call('addMember', { name: name!, address: address! });
        ctx.io.stdout.write(json ? JSON.stringify(r.member) + '\n' : `added ${r.member.name} (id ${r.member.id}) as a ${r.member.role} at ${r.member.address}; start it with --name ${r.member.name} --join <members>\n`);
        return EXIT.ok;
      }
      if (action === 'remove') {
        const r = await client.call('removeMember', { name: name! });
        ctx.io.stdout.write(json ? JSON.stringify(r.member) + '\n' : `removed ${r.member.name} (id ${r.member.id}); stop its process, and wipe its --data-dir before adding it again\n`);
        return EXIT.ok;
      }
      return await listMembers(ctx, client, json);
    } finally {
      client.close();
    }
  },
};

/** listMembers prints every member (any member answers getMembers, from what it has applied). */
async function listMembers(ctx: CommandContext, client: Awaited<ReturnType<typeof placementClient>>['client'], json: boolean): Promise<number> {
  const view = await client.call('getMembers', {});
  if (json) ctx.io.stdout.write(JSON.stringify(view, null, 2) + '\n');
  else {
    const rows = view.members.map((m) => [m.name, m.id, m.address, m.role]);
    ctx.io.stdout.write(table(['NAME', 'ID', 'ADDRESS', 'ROLE'], rows) + `${view.members.length} member${view.members.length === 1 ? '' : 's'} (answered by ${view.answeredBy})\n`);
  }
  return EXIT.ok;
}

/** memberListCommand: `flotilla member list`, etcdctl's and pd-ctl's name for `flotilla placement members`. */
export const memberListCommand: Command = {
  spec: {
    path: ['member', 'list'],
    positionals: [],
    summary: 'List the placement members with their roles (the same as `flotilla placement members`).',
    description: 'Prints every placement member: name, Raft ID, address and role (leader, voter, learner). etcdctl member list and pd-ctl member habits; to add or remove a member use `flotilla placement members add|remove`.',
    flags: [...targetFlags, { name: 'json', type: 'boolean', description: 'print JSON instead of a table', schema: boolFlag() }],
    examples: ['flotilla member list', 'flotilla member list --placement 127.0.0.1:20160,127.0.0.1:20170 --json'],
  },
  async run(ctx: CommandContext) {
    const { client } = await placementClient(ctx);
    try {
      return await listMembers(ctx, client, ctx.parsed.values['json'] === true);
    } finally {
      client.close();
    }
  },
};
