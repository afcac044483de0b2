// bench/vs-etcd-flotilla.ts — the Flotilla side of `pnpm bench:vs-etcd`:
// placement + 3 stores as child processes (LocalCluster, as bench/cluster.ts
// starts them), production profile, default durability, and the client calls
// the cases use.
import { FlotillaClient } from '@flotilla/client';
import { LocalCluster, makeLogger } from '@flotilla/node';
import { waitFor } from './vs-etcd-run';

export const progress = (s: string): boolean => process.stderr.write(`[bench:vs-etcd] ${s}\n`);
export const keyOf = (i: number): Buffer => Buffer.from(`bench/${String(i).padStart(8, '0')}`);

/** Kv is what a case needs of a system: the same three calls on both. */
export interface Kv {
  put(key: Uint8Array, value: Uint8Array): Promise<void>;
  /** get resolves to the value's length, -1 when the key is absent. */
  get(key: Uint8Array): Promise<number>;
  batchPut(pairs: [Uint8Array, Uint8Array][]): Promise<void>;
}

/** load writes keys 0..n-1 in batches of 100. */
export async function load(kv: Kv, n: number, value: Uint8Array): Promise<void> {
  for (let i = 0; i < n; i += 100) {
    const pairs: [Uint8Array, Uint8Array][] = [];
    for (let j = i; j < Math.min(n, i + 100); j++) pairs.push([keyOf(j), value]);
    await kv.batchPut(pairs);
  }
}

export interface Flotilla {
  cluster: LocalCluster;
  client: FlotillaClient;
  kv: Kv;
  /** pids: placement's and the stores' processes (the server side). */
  pids: () => number[];
}

/** startFlotilla starts placement + 3 stores and waits until Region 1 has a voter on each store. */
export async function startFlotilla(dir: string): Promise<Flotilla> {
  const logger = makeLogger('warn', 'bench-vs-etcd');
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger });
  const client = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
  try {
    await waitFor(180_000, 'Region 1 replicated to 3 stores', async () => {
      const rs = await client.regions();
      return rs.length === 1 && rs[0]!.region.peers.filter((p) => p.role === 'voter').length === 3;
    });
  } catch (err) {
    client.close();
    await cluster.stop();
    throw err;
  }
  const kv: Kv = {
    put: (k, v) => client.put(k, v),
    get: async (k) => {
      const v = await client.get(k);
      return v === null ? -1 : v.length;
    },
    batchPut: (pairs) => client.batchPut(pairs),
  };
  return { cluster, client, kv, pids: () => cluster.processes.map((p) => p.proc.pid ?? 0) };
}
