import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { ClusterFile } from './cluster-file';

// How `flotilla up --placements N` lays out its placement members: names,
// data directories, ports, and the --initial-cluster they all get.

/** PlacementSlot is one placement member of a local cluster. */
export interface PlacementSlot {
  /** k: 1..N. */
  k: number;
  /** name: p1..pN (the --name and the --initial-cluster entry). */
  name: string;
  /** processName: `placement` for p1 (as with a single placement), `placement-K` for the others. */
  processName: string;
  /** index in LocalCluster.processes: 0 for p1, 1-K for the others (stores are 1..N). */
  index: number;
  dataDir: string;
  port: number;
}

/** placementPortOffset: p1 on the base port, pK on base + 10·(K−1) (stores take base+1..base+9). */
export const placementPortOffset = (k: number): number => 10 * (k - 1);

/** freePort asks the kernel for a free port on host (members need their ports before any starts). */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * placementSlots lays out N members. With basePort 0 the ports come from
 * the previous cluster.json, else free ones picked now (a member of a
 * group cannot bind port 0: the others must know its address first).
 * Refuses to change the member count of an existing cluster: members are
 * added and removed with `flotilla placement members`, never by restarting
 * with another count (new members would form a group of their own).
 */
export async function placementSlots(dataDir: string, host: string, count: number, basePort: number, existing: ClusterFile | null): Promise<PlacementSlot[]> {
  const before = existing?.placements?.length ?? (existsSync(join(dataDir, 'placement', 'member.json')) ? 1 : 0);
  if (before > 0 && before !== count) {
    throw new Error(`the cluster in ${dataDir} runs ${before} placement member${before === 1 ? '' : 's'}; start it with --placements ${before} (add or remove members online with flotilla placement members)`);
  }
  const slots: PlacementSlot[] = [];
  for (let k = 1; k <= count; k++) {
    const name = `p${k}`;
    const previous = existing?.placements?.find((p) => p.name === name)?.address ?? (k === 1 ? existing?.placement.address : undefined);
    const reused = previous ? Number(previous.split(':').pop()) : NaN;
    const port = basePort !== 0 ? basePort + placementPortOffset(k) : Number.isInteger(reused) && reused > 0 ? reused : count === 1 ? 0 : await freePort(host);
    slots.push({ k, name, processName: k === 1 ? 'placement' : `placement-${k}`, index: 1 - k, dataDir: join(dataDir, k === 1 ? 'placement' : `placement-${k}`), port });
  }
  return slots;
}

/** placementArgs: a member's command line; a single placement keeps the plain form (a group of one, named p1). */
export function placementArgs(slot: PlacementSlot, slots: PlacementSlot[], host: string, listen: string, extra: string[]): string[] {
  const base = ['placement', '--data-dir', slot.dataDir, '--listen', listen, ...extra];
  if (slots.length === 1) return base;
  const initial = slots.map((s) => `${s.name}=${host}:${s.port}`).join(',');
  return [...base, '--name', slot.name, '--initial-cluster', initial];
}
