// Faults of the 3-member placement group (placements: 3), drawn from the
// same seeded PRNG as the rest of the plan:
//   placement-crash      kill one member (the leader half of the time) with no
//                        hand-over; at most one of three down, so a quorum stays
//   placement-restart    (not drawn) a member down for 0.5-2 s restarts from its
//                        data directory (raft log, state machine, member.json)
//   placement-partition  isolate one member (the leader half of the time) from
//                        the other two (a 1 + 2 split: the two keep a quorum)
//   placement-store-cut  cut one store off from one member, or from all of them
//   placement-clock-jump one member's wall clock jumps back 0.5-3 s (at most 10 s
//                        behind in all): the TSO must not go back with it
// A heal (the plan's 'heal' row, and the liveness phase) clears them all.
import type { FaultContext } from './faults';

/** memberIndex picks a live member: the leader with probability 1/2, else any live one. */
function pickMember(ctx: FaultContext): number | undefined {
  const g = ctx.cluster.group!;
  const up = g.up();
  if (up.length === 0) return undefined;
  const leader = g.leader();
  const li = leader ? up.findIndex((s) => s.member === leader) : -1;
  if (li >= 0 && ctx.rng() < 0.5) return up[li]!.index;
  return up[Math.floor(ctx.rng() * up.length)]!.index;
}

/** crashMember kills a member while all three are up. */
export async function crashMember(ctx: FaultContext): Promise<void> {
  const g = ctx.cluster.group!;
  if (!ctx.switches.placementCrashes || g.down().length > 0) return;
  const i = pickMember(ctx);
  if (i === undefined) return;
  const wasLeader = g.slots[i]!.member === g.leader();
  ctx.recorder.fault('placement-crash', `member ${g.slots[i]!.name}${wasLeader ? ' (leader)' : ''}`);
  await g.crashMember(i);
}

/** restartMembers restarts each member down for 0.5-2 s (its start finishes on the clock; a failure fails the run). */
export function restartMembers(ctx: FaultContext, always = false): void {
  const g = ctx.cluster.group!;
  for (const s of g.down()) {
    if (!always && Date.now() - s.downSince < 500 + ctx.rng() * 1500) continue;
    ctx.recorder.fault('placement-restart', `member ${s.name}${always ? ' (liveness)' : ''}`);
    g.startMember(s.index).catch((e: Error) => ctx.recorder.fail(`placement member ${s.name} failed to restart: ${e.stack ?? e.message}`));
  }
}

/** partitionMembers isolates one member from the others (the group keeps a quorum of two). */
export function partitionMembers(ctx: FaultContext): void {
  const g = ctx.cluster.group!;
  const i = pickMember(ctx);
  if (i === undefined) return;
  // Member raft IDs are 1..3 in name order (initialMemberRecords), the IDs on the members' network.
  const id = i + 1;
  ctx.recorder.fault('placement-partition', `member ${g.slots[i]!.name} cut off from the other members`);
  g.network.isolate(id);
}

/** cutStoreFromPlacement cuts one store's link to one member (or, one time in three, to every member). */
export function cutStoreFromPlacement(ctx: FaultContext): void {
  const { cluster } = ctx;
  const up = cluster.up();
  const g = cluster.group!;
  if (up.length === 0) return;
  const storeId = up[Math.floor(ctx.rng() * up.length)]!;
  const caller = `store#${cluster.indexOf.get(storeId)!}`;
  if (ctx.rng() < 1 / 3) {
    ctx.recorder.fault('placement-store-cut', `store ${storeId} cut off from every placement member`);
    cluster.rpc!.cutAll(caller);
    return;
  }
  const i = Math.floor(ctx.rng() * g.slots.length);
  ctx.recorder.fault('placement-store-cut', `store ${storeId} cut off from member ${g.slots[i]!.name}`);
  cluster.rpc!.cut(caller, i);
}

/** healPlacementLinks heals the members' network and every store-placement cut. */
export function healPlacementLinks(ctx: Pick<FaultContext, 'cluster'>): void {
  ctx.cluster.group?.network.heal();
  ctx.cluster.rpc?.heal();
}

/** MAX_CLOCK_BEHIND_MS bounds how far behind the virtual clock jumps may set a member's wall clock. */
const MAX_CLOCK_BEHIND_MS = 10_000;

/** jumpMemberClock sets one member's wall clock back 0.5-3 s (the leader half of the time). */
export function jumpMemberClock(ctx: FaultContext): void {
  const g = ctx.cluster.group!;
  const i = pickMember(ctx);
  if (i === undefined) return;
  const slot = g.slots[i]!;
  const back = 500 + Math.floor(ctx.rng() * 2500);
  if (slot.clockOffsetMs - back < -MAX_CLOCK_BEHIND_MS) return;
  slot.clockOffsetMs -= back;
  ctx.recorder.fault('placement-clock-jump', `member ${slot.name} wall clock back ${back} ms (now ${slot.clockOffsetMs} ms off)`);
}
