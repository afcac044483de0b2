import type { FlotillaClient } from '@flotilla/client';
import { between, bridge, isolate, type Cut } from '../netns/cuts';
import type { ChaosFault } from './nemesis';
import { sleep, type Proc } from './procs';
import { log, note, type Chaos } from './run';

// partition.ts: the partition nemesis of `pnpm chaos --partitions`. Each
// fault cuts the namespace topology for 2-10 s (several election timeouts;
// sometimes past the transport's 10 s keepalive, which then closes the dead
// connections), then heals it. The clients live in the root namespace and
// keep reaching every process: a client talking to an isolated old leader
// is exactly what a stale read or a lost write would need.

/** PARTITION_FAULTS: the partition rows of the fault table (weights beside the process faults' 100). */
export const PARTITION_FAULTS: readonly ChaosFault[] = [
  { name: 'partition-leader', weight: 20, run: partitionLeader },
  { name: 'partition-halves', weight: 10, run: partitionHalves },
  { name: 'partition-bridge', weight: 10, run: partitionBridge },
  { name: 'partition-placement', weight: 10, run: partitionPlacement },
];

/** holdPartition applies cuts, waits 2-10 s and heals; the fault is counted under kind. */
async function holdPartition(run: Chaos, kind: string, detail: string, cuts: readonly Cut[]): Promise<void> {
  const net = run.net;
  if (!net) return;
  const heldMs = 2000 + Math.floor(run.rng() * 8000);
  note(run, kind, `${detail} for ${(heldMs / 1000).toFixed(1)} s (${cuts.length} one-way cuts)`);
  await net.cut(cuts);
  await sleep(heldMs);
  await net.heal();
  log(run, `heal ${kind}`);
}

/** everyNode is every server process's node: the stores and placement's members. */
function everyNode(run: Chaos): string[] {
  return [...placementNodes(run), ...run.stores.map((p) => p.node)];
}

/** placementNodes are the nodes of placement's members (a group always stays on one side: the placement leader kill is its own fault). */
function placementNodes(run: Chaos): string[] {
  return run.placements.map((p) => p.node);
}

/** shuffled is a seeded Fisher-Yates shuffle. */
function shuffled<T>(run: Chaos, xs: readonly T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(run.rng() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** partitionLeader isolates the store leading a random Region (placement's view; s when it names none) from every other process. */
async function partitionLeader(run: Chaos, s: Proc, client: FlotillaClient): Promise<void> {
  let target = s;
  try {
    const regions = await client.regions();
    const r = regions[Math.floor(run.rng() * regions.length)];
    target = run.stores.find((p) => p.info?.storeId === r?.leader?.storeId) ?? s;
  } catch {
    // placement unreachable: isolate s
  }
  await holdPartition(run, 'partition-leader', `isolate ${target.name}`, isolate(target.node, everyNode(run)));
}

/** partitionHalves splits the stores into a majority of two and a minority of one; placement lands on a random side. */
async function partitionHalves(run: Chaos): Promise<void> {
  const [lone, ...rest] = shuffled(run, run.stores.map((p) => p.node));
  const minority = [lone!];
  const majority = rest;
  (run.rng() < 0.5 ? minority : majority).push(...placementNodes(run));
  await holdPartition(run, 'partition-halves', `${minority.join('+')} | ${majority.join('+')}`, between(minority, majority));
}

/** partitionBridge: s reaches both other stores, which cannot reach each other; placement is with one of them or sees all. */
async function partitionBridge(run: Chaos, s: Proc): Promise<void> {
  const [a, b] = run.stores.filter((p) => p !== s).map((p) => [p.node]) as [string[], string[]];
  const where = Math.floor(run.rng() * 3);
  if (where < 2) (where === 0 ? a : b).push(...placementNodes(run));
  await holdPartition(run, 'partition-bridge', `${a.join('+')} | ${b.join('+')} bridged by ${s.name}`, bridge(s.node, a, b));
}

/** partitionPlacement cuts placement off from every store (clients still reach it, and get its stale view). */
async function partitionPlacement(run: Chaos): Promise<void> {
  const stores = run.stores.map((p) => p.node);
  await holdPartition(run, 'partition-placement', 'placement | stores', between(placementNodes(run), stores));
}
