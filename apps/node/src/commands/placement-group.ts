import { hostPortFlag, hostPortListFlag, UsageError, type FlagSpec } from '../args';
import { z } from 'zod';

// The flags that make `flotilla placement` one member of a replicated
// placement group (etcd's and PD's names), and how they combine.

const nameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { message: "expected 1-64 letters, digits, '.', '_' or '-'" });

export const placementGroupFlags: FlagSpec[] = [
  { name: 'name', type: 'string', placeholder: 'NAME', description: 'this member\'s name in --initial-cluster (etcd/PD --name)', default: 'p1', schema: nameSchema },
  {
    name: 'initial-cluster',
    type: 'string',
    placeholder: 'NAME=HOST:PORT,..',
    description: "the initial members of a new replicated placement, each with the address it serves on; give every initial member the same list (default: this member alone, a group of one). Only read on a member's first start",
    schema: z.string().min(3),
  },
  { name: 'initial-cluster-token', type: 'string', placeholder: 'TOKEN', description: "the group's name; members with different tokens refuse each other", default: 'flotilla-placement', schema: nameSchema },
  { name: 'join', type: 'string', placeholder: 'HOST:PORT[,..]', description: 'add this new member to a running placement group through these members (PD --join): it joins as a learner and becomes a voter once caught up. Only read on its first start', schema: hostPortListFlag() },
  { name: 'advertise', type: 'string', placeholder: 'HOST:PORT', description: 'address peers and redirected clients reach this member at (default: its --initial-cluster address, else the bound --listen address)', schema: hostPortFlag() },
];

/** PlacementGroup is what startPlacementServer takes from these flags. */
export interface PlacementGroup {
  listen: string;
  name: string;
  clusterToken: string;
  initialCluster?: string;
  join?: string[];
  advertise?: string;
}

/**
 * placementGroup checks the flags against each other: --join and
 * --initial-cluster exclude each other; with --initial-cluster this member
 * must be in it, and it listens on (and advertises) its own entry unless
 * --listen / --advertise say otherwise.
 */
export function placementGroup(v: Record<string, unknown>): PlacementGroup {
  const name = v['name'] as string;
  const initial = v['initialCluster'] as string | undefined;
  const join = v['join'] as string | undefined;
  const listen = v['listen'] as string | undefined;
  const advertise = v['advertise'] as string | undefined;
  const out: PlacementGroup = { listen: listen ?? '127.0.0.1:20160', name, clusterToken: v['initialClusterToken'] as string };
  if (initial !== undefined && join !== undefined) throw new UsageError('--initial-cluster starts a new group and --join enters a running one: give one of them');
  if (join !== undefined) out.join = join.split(',').map((a) => a.trim());
  if (initial !== undefined) {
    const entries = initial.split(',').map((e) => e.trim()).filter((e) => e !== '');
    const own = entries.find((e) => e.startsWith(`${name}=`));
    if (!own) throw new UsageError(`--initial-cluster has no entry for --name ${name}`);
    const address = own.slice(name.length + 1);
    if (!hostPortFlag().safeParse(address).success) throw new UsageError(`--initial-cluster: ${JSON.stringify(own)}: expected NAME=HOST:PORT`);
    out.initialCluster = initial;
    if (listen === undefined) out.listen = address;
    out.advertise = advertise ?? address;
  } else if (advertise !== undefined) out.advertise = advertise;
  return out;
}
