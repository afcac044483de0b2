import { WebSocket } from 'ws';
import type { FlotillaClient } from '@flotilla/client';
import { decode, encode, type ClientResponse } from '@flotilla/proto';
import { PARTITION_FAULTS } from './partition';
import { PLACEMENT_FAULTS } from './placement-faults';
import { kill, launch, sleep, type Proc } from './procs';
import { key, log, note, type Chaos } from './run';

// nemesis.ts: the process faults of a chaos run and the weighted table
// every draw picks from (with --partitions, partition.ts's rows too).

/** ChaosFault is one row of the table: a name, its share of the draws and what it does to the run. */
export interface ChaosFault {
  name: string;
  /** weight: the fault's share of the draws (the table need not sum to 100). */
  weight: number;
  run: (run: Chaos, s: Proc, client: FlotillaClient) => Promise<void>;
}

/** PROCESS_FAULTS: every 1.5-4 s one draw, aimed at a random store s (splits and transfers go through placement's view). */
export const PROCESS_FAULTS: readonly ChaosFault[] = [
  { name: 'sigkill', weight: 30, run: sigkillAndRestart },
  { name: 'sigstop', weight: 20, run: sigstopAndContinue },
  { name: 'transfer-leader', weight: 25, run: transferLeader },
  { name: 'split', weight: 25, run: split },
];

/** chaosFaults is the table of a run: the process faults, plus the partitions when the run has namespaces, plus the placement leader's kill and stop when placement is a group. */
export function chaosFaults(partitions: boolean, placementMembers = 1): readonly ChaosFault[] {
  return [...PROCESS_FAULTS, ...(partitions ? PARTITION_FAULTS : []), ...(placementMembers > 1 ? PLACEMENT_FAULTS : [])];
}

async function sigkillAndRestart(run: Chaos, s: Proc): Promise<void> {
  if (!s.child) return;
  note(run, 'sigkill', s.name);
  await kill(s);
  await sleep(500 + Math.floor(run.rng() * 2000));
  note(run, 'restart', s.name);
  await launch(s);
}

async function sigstopAndContinue(run: Chaos, s: Proc): Promise<void> {
  if (!s.child || s.stopped) return;
  note(run, 'sigstop', s.name);
  s.child.kill('SIGSTOP');
  s.stopped = true;
  await sleep(500 + Math.floor(run.rng() * 2500));
  s.child?.kill('SIGCONT');
  s.stopped = false;
  note(run, 'sigcont', s.name);
}

/** adminCall sends one raw client request to a store (leader transfer has no client API). */
function adminCall(address: string, req: object): Promise<ClientResponse | undefined> {
  return new Promise((res) => {
    const ws = new WebSocket(`ws://${address}/client`);
    const t = setTimeout(() => {
      ws.terminate();
      res(undefined);
    }, 3000);
    ws.once('open', () => ws.send(encode({ ...req, id: 1 })));
    ws.once('message', (d: Buffer) => {
      clearTimeout(t);
      ws.close();
      res(decode(d) as ClientResponse);
    });
    ws.once('error', () => {
      clearTimeout(t);
      res(undefined);
    });
  });
}

/** transferLeader sends a raw admin transferLeader to a random Region's leader (the client has no such call). */
async function transferLeader(run: Chaos, _s: Proc, client: FlotillaClient): Promise<void> {
  try {
    const regions = await client.regions();
    const r = regions[Math.floor(run.rng() * regions.length)];
    const leaderStore = r?.leader?.storeId;
    const target = r?.region.peers.find((p) => p.storeId !== leaderStore && p.role === 'voter');
    const leaderProc = run.stores.find((p) => p.info?.storeId === leaderStore);
    if (!r || !target || !leaderProc?.info) return;
    note(run, 'transfer-leader', `region ${r.region.id} to store ${target.storeId}`);
    const res = await adminCall(String(leaderProc.info.address), { header: { regionId: r.region.id, regionEpoch: r.region.epoch }, op: 'admin', admin: { type: 'transferLeader', peer: target } });
    if (!res?.ok) note(run, 'transfer-leader-failed', res ? res.error.type : 'no answer');
  } catch {
    // placement or the leader unreachable: skip this fault.
  }
}

async function split(run: Chaos, _s: Proc, client: FlotillaClient): Promise<void> {
  const k = key(1 + Math.floor(run.rng() * (run.o.keys - 1)));
  note(run, 'split', `at ${k}`);
  await client.split(k).catch(() => undefined);
}

/** drawChaosFault picks the fault of table the uniform draw x in [0, 1) falls in, by cumulative weight. */
export function drawChaosFault(table: readonly ChaosFault[], x: number): ChaosFault {
  let at = x * table.reduce((a, f) => a + f.weight, 0);
  for (const f of table) {
    if (at < f.weight) return f;
    at -= f.weight;
  }
  return table[table.length - 1]!;
}

/** resumeAll heals the network, continues every stopped process (stores and placement members) and starts every dead one. */
export async function resumeAll(run: Chaos): Promise<void> {
  if (run.net && run.net.activeCuts.length > 0) {
    await run.net.heal();
    log(run, 'heal (end of run)');
  }
  for (const s of [...run.placements, ...run.stores]) {
    if (s.stopped) {
      s.child?.kill('SIGCONT');
      s.stopped = false;
    }
    if (!s.child) await launch(s);
  }
}
