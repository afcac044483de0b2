// names.ts: what the network-namespace topology calls things, and how a
// later run tells its own leftovers from another live run's.
//
// Every name a run creates starts with `flt<pid>` (the pid of the process
// that owns the topology): namespaces `flt<pid>-<node>`, and the one
// interface in the root namespace, `flt<pid>`. So runs in parallel never
// collide, and a run that died without cleaning up (SIGKILL, a crashed test
// worker) is recognised by its dead pid and swept by the next run.

/** NAME_PREFIX starts every namespace and root-namespace interface a topology creates. */
export const NAME_PREFIX = 'flt';

/** HUB is the node name of the router namespace every node is wired to. */
export const HUB = 'hub';

/** ROOT names the root namespace in cuts: where a test's (or chaos run's) clients live. */
export const ROOT = 'root';

/** NODE_NAME: a node's name is short and plain, so `v-<node>` fits an interface name (15 bytes) and parsing stays trivial. */
const NODE_NAME = /^[a-z][a-z0-9]{0,11}$/;

/** assertNodeName throws on a node name the topology cannot use (a caller's bug, not an operating error). */
export function assertNodeName(node: string): void {
  if (!NODE_NAME.test(node) || node === HUB || node === ROOT) throw new Error(`netns: node name ${JSON.stringify(node)} must match ${NODE_NAME} and be neither '${HUB}' nor '${ROOT}'`);
}

/** runPrefix is the prefix of everything the run owned by pid creates; it is also the root-side interface's name. */
export function runPrefix(pid: number): string {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 9_999_999) throw new Error(`netns: pid ${pid} out of range`);
  return `${NAME_PREFIX}${pid}`;
}

/** namespaceName is node's namespace in the run owned by pid. */
export function namespaceName(pid: number, node: string): string {
  return `${runPrefix(pid)}-${node}`;
}

/** hubLinkName is the hub-side end of node's veth pair (it lives in the hub namespace, so it cannot clash with another run's). */
export function hubLinkName(node: string): string {
  return `v-${node}`;
}

/** ownerPid is the pid that owns a namespace by this module's naming, or undefined for anyone else's namespace. */
export function ownerPid(namespace: string): number | undefined {
  const m = /^flt(\d{1,7})-[a-z][a-z0-9]*$/.exec(namespace);
  return m ? Number(m[1]) : undefined;
}

/** parseNetnsList reads `ip netns list` output ("name" or "name (id: 3)" per line) into names. */
export function parseNetnsList(output: string): string[] {
  return output
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/**
 * staleRuns groups the namespaces of runs whose owner is dead, by owner
 * pid. isAlive is asked once per pid; the live run's own pid is never stale.
 */
export function staleRuns(namespaces: readonly string[], isAlive: (pid: number) => boolean): Map<number, string[]> {
  const alive = new Map<number, boolean>();
  const stale = new Map<number, string[]>();
  for (const ns of namespaces) {
    const pid = ownerPid(ns);
    if (pid === undefined) continue;
    if (!alive.has(pid)) alive.set(pid, isAlive(pid));
    if (alive.get(pid)) continue;
    const list = stale.get(pid) ?? [];
    list.push(ns);
    stale.set(pid, list);
  }
  return stale;
}

/** processAlive: signal 0 probes a pid; EPERM means it exists (someone else's process). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
