import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { FlotillaClient } from '@flotilla/client';
import type { NetnsTopology } from '../netns/topology';
import { direct, launch, newProc, sleep, type Proc } from './procs';
import type { Chaos } from './run';

// cluster.ts: where the chaos run's processes live and how they are told
// their addresses.
//
// Without --partitions every process is on 127.0.0.1 with port 0 (and the
// public development secret, which loopback allows). With --partitions each
// is in its own namespace of a NetnsTopology, as on separate machines:
// placement on <its address>:20160, each store binding every interface
// (0.0.0.0:20161 client API, 0.0.0.0:20162 raft) and announcing its
// namespace address with --advertise / --advertise-raft, which binding
// 0.0.0.0 requires; the stores share a random cluster secret (the
// development one is refused off loopback). Fixed ports: a restarted store
// comes back where it was, as a real one would.
//
// --placement-members 3 runs placement as a replicated group of three
// `flotilla placement --name pI --initial-cluster ...` processes (nodes
// placement0..2 in the topology, fixed loopback ports otherwise, which
// --initial-cluster needs up front); every store and client is given all
// three addresses, and placement-faults.ts kills and stops the leader.

/** NETNS_PORTS are the ports every namespace uses (one machine each, so they never clash). */
export const NETNS_PORTS = { placement: 20160, client: 20161, raft: 20162 } as const;

/** STORE_NODES are the topology's store node names. */
export const STORE_NODES = ['store0', 'store1', 'store2'] as const;

/** placementNodes are the topology's placement node names: 'placement' alone, or placement0..N-1 for a group. */
export function placementNodes(members: number): string[] {
  return members === 1 ? ['placement'] : Array.from({ length: members }, (_, i) => `placement${i}`);
}

/** netnsNodes are every node of a run's topology: placement's members, then the three stores. */
export function netnsNodes(members: number): string[] {
  return [...placementNodes(members), ...STORE_NODES];
}

/** freeLoopbackPort asks the kernel for a free 127.0.0.1 port (closed again before the member binds it). */
async function freeLoopbackPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * placementProcs are the placement processes of a run in dir: one (port 0
 * on loopback, or its namespace's fixed port), or a group of `members`,
 * each told the whole --initial-cluster.
 */
export async function placementProcs(dir: string, net: NetnsTopology | undefined, members: number): Promise<Proc[]> {
  const nodes = placementNodes(members);
  const wrapOf = (node: string) => (net ? (argv: readonly string[]) => net.command(node, argv) : direct);
  if (members === 1) {
    const listen = net ? `${net.address('placement')}:${NETNS_PORTS.placement}` : '127.0.0.1:0';
    return [newProc('placement', 'placement', ['placement', '--data-dir', join(dir, 'pd'), '--listen', listen], wrapOf('placement'))];
  }
  const addrs: string[] = [];
  for (const node of nodes) addrs.push(net ? `${net.address(node)}:${NETNS_PORTS.placement}` : `127.0.0.1:${await freeLoopbackPort()}`);
  const initial = nodes.map((_, i) => `p${i + 1}=${addrs[i]}`).join(',');
  return nodes.map((node, i) => newProc(`placement-${i}`, node, ['placement', '--name', `p${i + 1}`, '--initial-cluster', initial, '--data-dir', join(dir, `pd-${i}`), '--listen', addrs[i]!, '--log-level', 'warn'], wrapOf(node)));
}

/** pdAddrs is every placement member's address, comma-separated, as stores and clients take it. */
export function pdAddrs(run: Chaos): string {
  return run.placements.map((p) => String(p.info!.address)).join(',');
}

/** storeProcs are the three store processes, dialing placement at pdAddr. */
function storeProcs(run: Chaos, pdAddr: string, tuning: string): Proc[] {
  const { net } = run;
  const secret = { FLOTILLA_CLUSTER_SECRET: randomBytes(32).toString('hex') };
  return [0, 1, 2].map((i) => {
    const node = `store${i}`;
    const common = ['store', '--placement', pdAddr, '--data-dir', join(run.dir, `store-${i}`), '--profile', 'demo', '--enable-admin-api', '--tuning', tuning];
    if (!net) return newProc(`store-${i}`, node, [...common, '--listen', '127.0.0.1:0']);
    const host = net.address(node);
    const addrs = ['--listen', `0.0.0.0:${NETNS_PORTS.client}`, '--advertise', `${host}:${NETNS_PORTS.client}`, '--raft-listen', `0.0.0.0:${NETNS_PORTS.raft}`, '--advertise-raft', `${host}:${NETNS_PORTS.raft}`];
    return newProc(`store-${i}`, node, [...common, ...addrs], (argv) => net.command(node, argv), secret);
  });
}

/** startCluster launches placement (its members together: a group elects once a majority is up) and three stores, and waits (at most ~20 s) until the cluster takes a write. */
export async function startCluster(run: Chaos): Promise<FlotillaClient> {
  await Promise.all(run.placements.map(launch));
  const pdAddr = pdAddrs(run);
  // --lease-reads: the stores serve reads on the leader lease (SIGSTOP faults are the stall that lease must survive).
  const tuning = join(run.dir, 'tuning.json');
  writeFileSync(tuning, JSON.stringify(run.o.leaseReads ? { readOnly: 'lease-based' } : {}));
  for (const p of storeProcs(run, pdAddr, tuning)) {
    run.stores.push(p);
    await launch(p);
  }
  const client = await FlotillaClient.connect({ placement: pdAddr, timeoutMs: 5000 });
  for (let i = 0; ; i++) {
    try {
      await client.put('chaos-ready', 'y');
      return client;
    } catch (e) {
      if (i > 100) throw e;
      await sleep(200);
    }
  }
}
