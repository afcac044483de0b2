import { fetchRegions, type RegionRow } from './commands/info';
import { httpGet, httpScheme, type ClientSecurity } from './security';

// replication.ts: is every Region at its full replica count? `flotilla up`
// asks before it says "up": a fresh cluster bootstraps one Region with a
// single voter, and placement's replica checker adds the others (learner,
// catch up, promote) only after the stores' first heartbeats.

/** ReplicationStatus is one look at placement: the voters it keeps per Region, and the Regions short of them. */
export interface ReplicationStatus {
  maxReplicas: number;
  regionCount: number;
  /** under: Regions that are not fully replicated (see fullyReplicated). */
  under: RegionRow[];
}

/**
 * fullyReplicated: at least maxReplicas voters, no learner still catching
 * up, and no peer placement reports as pending (lagging) or down.
 */
export function fullyReplicated(r: RegionRow, maxReplicas: number): boolean {
  const voters = r.peers.filter((p) => p.role === 'voter').length;
  const learners = r.peers.length - voters;
  return voters >= maxReplicas && learners === 0 && (r.pendingPeers?.length ?? 0) === 0 && (r.downPeers?.length ?? 0) === 0;
}

/**
 * leaderFirst orders the placement members so the one that leads comes
 * first: asks /health of each in turn until one says it leads or names the
 * leader. A group's HTTP reads are answered by the leader (a follower
 * relays them), so asking it directly works whichever member leads and
 * while p1 is down. Members that do not answer keep their order, last.
 */
export async function leaderFirst(members: string[], sec: ClientSecurity, timeoutMs: number): Promise<string[]> {
  if (members.length <= 1) return members;
  for (const m of members) {
    try {
      const res = await httpGet(`${httpScheme(sec)}://${m}/health`, sec, timeoutMs);
      const h = JSON.parse(res.body) as { role?: unknown; leader?: unknown };
      const leader = h.role === 'leader' ? m : typeof h.leader === 'string' ? h.leader : undefined;
      if (leader !== undefined) return [leader, ...members.filter((x) => x !== leader)];
    } catch {
      // down or busy: ask the next one
    }
  }
  return members;
}

/**
 * replicationStatus reads placement's /status (maxReplicas) and every
 * Region from whichever member leads (placements: one address, or every
 * member's), trying the others when it does not answer.
 */
export async function replicationStatus(placements: string | string[], sec: ClientSecurity, timeoutMs: number): Promise<ReplicationStatus> {
  const members = await leaderFirst(typeof placements === 'string' ? [placements] : placements, sec, timeoutMs);
  let lastError: unknown;
  for (const placement of members) {
    try {
      const res = await httpGet(`${httpScheme(sec)}://${placement}/status`, sec, timeoutMs);
      const status = JSON.parse(res.body) as { maxReplicas?: unknown };
      if (res.status !== 200 || typeof status.maxReplicas !== 'number') throw new Error(`placement ${placement}/status: ${res.status}`);
      const maxReplicas = status.maxReplicas;
      const regions = await fetchRegions(members.join(','), timeoutMs, sec);
      return { maxReplicas, regionCount: regions.length, under: regions.filter((r) => !fullyReplicated(r, maxReplicas)) };
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(`no placement member answered (${members.join(', ')})`);
}

/** isReplicated: placement knows at least one Region and none is short of replicas. */
export const isReplicated = (s: ReplicationStatus): boolean => s.regionCount > 0 && s.under.length === 0;

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** describeRegion: "region 2: 1 voter, 1 learner, 1 pending" — what keeps one Region short. */
function describeRegion(r: RegionRow): string {
  const voters = r.peers.filter((p) => p.role === 'voter').length;
  const parts = [plural(voters, 'voter')];
  if (r.peers.length > voters) parts.push(plural(r.peers.length - voters, 'learner'));
  if (r.pendingPeers?.length) parts.push(`${r.pendingPeers.length} pending`);
  if (r.downPeers?.length) parts.push(`${r.downPeers.length} down`);
  return `region ${r.id}: ${parts.join(', ')}`;
}

/** describeReplication says in one line where replication stands. */
export function describeReplication(s: ReplicationStatus): string {
  if (isReplicated(s)) return `every Region has ${s.maxReplicas} ${s.maxReplicas === 1 ? 'replica' : 'replicas'} (${plural(s.regionCount, 'Region')})`;
  if (s.regionCount === 0) return 'placement knows no Region yet (the first store has not bootstrapped the cluster)';
  const shown = s.under.slice(0, 3).map(describeRegion).join('; ');
  const more = s.under.length > 3 ? `; and ${s.under.length - 3} more` : '';
  return `${s.under.length} of ${plural(s.regionCount, 'Region')} below ${s.maxReplicas} replicas (${shown}${more})`;
}

/**
 * waitReplicated polls check until the cluster is fully replicated, timeoutMs
 * has passed or signal aborts, and returns the last status (null when
 * placement never answered). A failed look is retried like an incomplete one.
 */
export async function waitReplicated(check: () => Promise<ReplicationStatus>, timeoutMs: number, signal?: AbortSignal, intervalMs = 250): Promise<ReplicationStatus | null> {
  const deadline = Date.now() + timeoutMs;
  let last: ReplicationStatus | null = null;
  while (!signal?.aborted) {
    try {
      last = await check();
      if (isReplicated(last)) return last;
    } catch {
      // placement busy or restarting: look again
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return last;
}

/**
 * watchReplication keeps polling in the background and calls onDone once,
 * when the cluster is fully replicated. stop() ends the watch (on shutdown).
 */
export function watchReplication(check: () => Promise<ReplicationStatus>, onDone: (s: ReplicationStatus) => void, intervalMs = 1000): { stop: () => void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const look = async (): Promise<void> => {
    try {
      const s = await check();
      if (stopped) return;
      if (isReplicated(s)) return onDone(s);
    } catch {
      // look again at the next tick
    }
    if (!stopped) timer = setTimeout(() => void look(), intervalMs);
  };
  timer = setTimeout(() => void look(), intervalMs);
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
