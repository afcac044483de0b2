import type { ChaosFault } from './nemesis';
import { kill, launch, sleep, type Proc } from './procs';
import { log, note, type Chaos } from './run';

// placement-faults.ts: the placement failover nemesis of
// `pnpm chaos --placement-members 3`. Placement is a raft group of three
// member processes; these faults find its current leader (each member's
// /health names its role) and SIGKILL it (restarting it 0.5-2.5 s later on
// the same data directory) or SIGSTOP it for 0.5-3 s (the leader that
// freezes without closing its sockets: its lease must run out before the
// others elect). The stores' heartbeats, the TSO, ID allocation, lease
// keepalives and the reaper all move to the new leader meanwhile.

/** PLACEMENT_FAULTS: the rows a run with a placement group adds to the table (beside the process faults' 100). */
export const PLACEMENT_FAULTS: readonly ChaosFault[] = [
  { name: 'sigkill-placement-leader', weight: 15, run: (run) => sigkillPlacementLeader(run) },
  { name: 'sigstop-placement-leader', weight: 10, run: (run) => sigstopPlacementLeader(run) },
];

/** memberRole is what a member's /health says it is ('' when it does not answer within 1 s: dead, stopped or cut off). */
async function memberRole(p: Proc): Promise<string> {
  const url = p.info?.['httpUrl'];
  if (!p.child || p.stopped || typeof url !== 'string') return '';
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    return ((await r.json()) as { role?: string }).role ?? '';
  } catch {
    return '';
  }
}

/** placementLeader is the member that says it leads (the first, if a deposed one has not noticed yet), or undefined while none does. */
export async function placementLeader(run: Chaos): Promise<Proc | undefined> {
  const roles = await Promise.all(run.placements.map(memberRole));
  return run.placements.find((_, i) => roles[i] === 'leader');
}

async function sigkillPlacementLeader(run: Chaos): Promise<void> {
  const p = await placementLeader(run);
  if (!p) return log(run, 'sigkill-placement-leader skipped: no member says it leads');
  note(run, 'sigkill-placement-leader', p.name);
  await kill(p);
  await sleep(500 + Math.floor(run.rng() * 2000));
  note(run, 'restart-placement', p.name);
  await launch(p);
}

async function sigstopPlacementLeader(run: Chaos): Promise<void> {
  const p = await placementLeader(run);
  if (!p?.child) return log(run, 'sigstop-placement-leader skipped: no member says it leads');
  note(run, 'sigstop-placement-leader', p.name);
  p.child.kill('SIGSTOP');
  p.stopped = true;
  await sleep(500 + Math.floor(run.rng() * 2500));
  p.child?.kill('SIGCONT');
  p.stopped = false;
  note(run, 'sigcont-placement', p.name);
}
