// cuts.ts: partitions as sets of one-way cuts between nodes.
//
// A Cut [from, to] drops every packet from node `from` to node `to` (the
// topology turns it into a blackhole rule in its hub router); a symmetric
// partition is both directions. These functions only compute which cuts a
// partition is, so they are tested without root.

/** Cut drops the packets node `from` sends to node `to`; the other direction is untouched. */
export type Cut = readonly [from: string, to: string];

/** cutKey names a cut for sets and logs: "a>b". */
export function cutKey(c: Cut): string {
  return `${c[0]}>${c[1]}`;
}

/** oneWay cuts every node of `from` off from sending to every node of `to` (an asymmetric partition). */
export function oneWay(from: readonly string[], to: readonly string[]): Cut[] {
  const out: Cut[] = [];
  for (const a of from) for (const b of to) if (a !== b) out.push([a, b]);
  return dedupe(out);
}

/** between separates two groups both ways: nothing crosses from one to the other. */
export function between(left: readonly string[], right: readonly string[]): Cut[] {
  const overlap = left.filter((n) => right.includes(n));
  if (overlap.length > 0) throw new Error(`netns: ${overlap.join(', ')} cannot be on both sides of a partition`);
  return dedupe([...oneWay(left, right), ...oneWay(right, left)]);
}

/** isolate cuts one node off from every other node both ways. */
export function isolate(node: string, others: readonly string[]): Cut[] {
  return between(
    [node],
    others.filter((n) => n !== node),
  );
}

/**
 * bridge: the groups left and right cannot reach each other, and the
 * bridge node (in neither) reaches both: the "bridge" partition of Jepsen,
 * where a majority exists only through one node.
 */
export function bridge(bridgeNode: string, left: readonly string[], right: readonly string[]): Cut[] {
  if (left.includes(bridgeNode) || right.includes(bridgeNode)) throw new Error(`netns: the bridge node ${bridgeNode} must be in neither half`);
  return between(left, right);
}

/** canReach: no cut stops a packet from `from` to `to` (packets go straight through the hub, so one hop). */
export function canReach(cuts: readonly Cut[], from: string, to: string): boolean {
  return !cuts.some((c) => c[0] === from && c[1] === to);
}

function dedupe(cuts: Cut[]): Cut[] {
  const seen = new Set<string>();
  return cuts.filter((c) => {
    const k = cutKey(c);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
