import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
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

/** NETNS_PORTS are the ports every namespace uses (one machine each, so they never clash). */
export const NETNS_PORTS = { placement: 20160, client: 20161, raft: 20162 } as const;

/** NETNS_NODES are the topology's node names: placement and three stores. */
export const NETNS_NODES = ['placement', 'store0', 'store1', 'store2'] as const;

/** placementProc is the placement process of a run in dir (on net's placement node, or on loopback). */
export function placementProc(dir: string, net: NetnsTopology | undefined): Proc {
  const listen = net ? `${net.address('placement')}:${NETNS_PORTS.placement}` : '127.0.0.1:0';
  const wrap = net ? (argv: readonly string[]) => net.command('placement', argv) : direct;
  return newProc('placement', 'placement', ['placement', '--data-dir', join(dir, 'pd'), '--listen', listen], wrap);
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

/** startCluster launches placement and three stores, and waits (at most ~20 s) until the cluster takes a write. */
export async function startCluster(run: Chaos): Promise<FlotillaClient> {
  await launch(run.placement);
  const pdAddr = String(run.placement.info!.address);
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
