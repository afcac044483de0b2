import { type Cut, cutKey } from './cuts';
import { IpError, ip, ipQuiet, ipSyncQuiet } from './ip';
import { HUB, ROOT, assertNodeName, hubLinkName, namespaceName, parseNetnsList, processAlive, runPrefix, staleRuns } from './names';
import { BASE, FIRST_NODE_HOST, HUB_HOST, ROOT_HOST, parseAddresses, parseRouteDestinations, subnetCandidates } from './subnet';

// topology.ts: N nodes, each in its own Linux network namespace, wired to a
// router namespace (the hub) by veth pairs, plus one veth from the root
// namespace so the caller's own sockets (test clients) reach every node.
//
//   root ns  flt<pid> 10.77.K.2 ──┐
//   flt<pid>-placement eth0 .10 ──┤ hub ns (flt<pid>-hub): routes each /32 to
//   flt<pid>-store0    eth0 .11 ──┤ its veth, forwards between them, and holds
//   flt<pid>-store1    eth0 .12 ──┘ the partition rules
//
// Every node's only route is 10.77.K.0/24 via the hub (.1), so all traffic
// between nodes, and between the root namespace and a node, crosses the
// hub. A cut [a, b] is `ip rule add from A to B blackhole` in the hub:
// forwarded packets that match are dropped silently, as a real partition
// drops them (a blackhole route in the sender's own namespace would not
// do: locally sent packets then fail at once with EINVAL). Healing deletes
// the rules; the namespaces, veths and addresses never change.
//
// Cleanup: destroy() (also run on process 'exit') deletes the namespaces;
// each veth dies with its namespace, and the root-side one, with it, the
// root namespace's route. create() first sweeps what runs with a dead owner
// pid left behind.

/** NetnsTopologyOptions: the nodes (see assertNodeName) and whose run this is. */
export interface NetnsTopologyOptions {
  nodes: readonly string[];
  /** ownerPid names the run (default this process); another live pid's run is never touched. */
  ownerPid?: number;
  /** log receives one line per sweep of a dead run's leftovers. */
  log?: (line: string) => void;
}

/** NetnsTopology is one run's namespaces, their addresses, and the partition currently applied. */
export class NetnsTopology {
  private readonly cuts = new Map<string, Cut>();
  private destroyed = false;
  private readonly onExit = (): void => this.destroySync();

  private constructor(
    readonly ownerPid: number,
    readonly nodes: readonly string[],
    /** subnet: the third octet K of this run's 10.77.K.0/24. */
    public subnet: number,
  ) {}

  /** create builds the topology (sweeping dead runs' leftovers first); on failure it removes what it made. */
  static async create(opts: NetnsTopologyOptions): Promise<NetnsTopology> {
    const pid = opts.ownerPid ?? process.pid;
    for (const n of opts.nodes) assertNodeName(n);
    if (new Set(opts.nodes).size !== opts.nodes.length) throw new Error(`netns: duplicate node names in ${opts.nodes.join(', ')}`);
    if (opts.nodes.length > 200) throw new Error('netns: at most 200 nodes fit a /24');
    await sweepStaleRuns(opts.log);
    const t = new NetnsTopology(pid, [...opts.nodes], 0);
    process.once('exit', t.onExit);
    try {
      await t.createHub();
      await t.attachRoot();
      for (const n of t.nodes) await t.attachNode(n);
    } catch (e) {
      await t.destroy();
      throw e;
    }
    return t;
  }

  /** address is the IPv4 address of node (ROOT: the root namespace's end). */
  address(node: string): string {
    if (node === ROOT) return `${BASE}.${this.subnet}.${ROOT_HOST}`;
    const i = this.nodes.indexOf(node);
    if (i < 0) throw new Error(`netns: no node ${node} (nodes: ${this.nodes.join(', ')})`);
    return `${BASE}.${this.subnet}.${FIRST_NODE_HOST + i}`;
  }

  /** namespace is the name of node's namespace (for `ip netns exec`, or a person debugging a run). */
  namespace(node: string): string {
    if (node === ROOT) throw new Error('netns: the root namespace has no name; run there directly');
    if (node !== HUB) this.address(node); // throws on an unknown node
    return namespaceName(this.ownerPid, node);
  }

  /**
   * command is [file, args] that runs argv inside node's namespace (ROOT:
   * argv itself). `ip netns exec` execs argv in place, so the child's pid
   * is argv's own and signals (SIGKILL, SIGSTOP) reach it directly.
   */
  command(node: string, argv: readonly string[]): [string, string[]] {
    if (node === ROOT) return [argv[0]!, argv.slice(1)];
    return ['ip', ['netns', 'exec', this.namespace(node), ...argv]];
  }

  /** activeCuts are the cuts now applied. */
  get activeCuts(): Cut[] {
    return [...this.cuts.values()];
  }

  /** cut applies cuts on top of the current ones (a cut already applied is skipped). */
  async cut(cuts: readonly Cut[]): Promise<void> {
    for (const c of cuts) {
      if (this.cuts.has(cutKey(c))) continue;
      await ip(['-n', this.namespace(HUB), 'rule', 'add', ...this.ruleSelector(c), 'blackhole']);
      this.cuts.set(cutKey(c), c);
    }
  }

  /** heal removes every cut: all nodes reach each other again. */
  async heal(): Promise<void> {
    for (const [k, c] of this.cuts) {
      await ip(['-n', this.namespace(HUB), 'rule', 'del', ...this.ruleSelector(c), 'blackhole']);
      this.cuts.delete(k);
    }
  }

  /** destroy deletes the namespaces (their processes must be gone: a namespace lives on while a process is in it). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener('exit', this.onExit);
    await ipQuiet(['link', 'del', runPrefix(this.ownerPid)]);
    for (const n of [...this.nodes, HUB]) await ipQuiet(['netns', 'del', namespaceName(this.ownerPid, n)]);
  }

  /** destroySync is destroy for a process 'exit' handler. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener('exit', this.onExit);
    ipSyncQuiet(['link', 'del', runPrefix(this.ownerPid)]);
    for (const n of [...this.nodes, HUB]) ipSyncQuiet(['netns', 'del', namespaceName(this.ownerPid, n)]);
  }

  private ruleSelector(c: Cut): string[] {
    return ['from', `${this.address(c[0])}/32`, 'to', `${this.address(c[1])}/32`];
  }

  private hostAddress(host: number): string {
    return `${BASE}.${this.subnet}.${host}`;
  }

  /** createHub makes the router namespace; forwarding is on before any veth exists, so each inherits it. */
  private async createHub(): Promise<void> {
    const hub = namespaceName(this.ownerPid, HUB);
    await ip(['netns', 'add', hub]);
    await ip(['-n', hub, 'link', 'set', 'lo', 'up']);
    await ip(['netns', 'exec', hub, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
  }

  /** attachRoot wires the root namespace to the hub and takes a free /24 (the root route is the lock between runs). */
  private async attachRoot(): Promise<void> {
    const hub = namespaceName(this.ownerPid, HUB);
    const link = runPrefix(this.ownerPid);
    await ip(['link', 'add', 'name', link, 'type', 'veth', 'peer', 'name', hubLinkName(ROOT), 'netns', hub]);
    await ip(['link', 'set', link, 'up']);
    const inUse = [...parseRouteDestinations(await ip(['-4', 'route', 'show'])), ...parseAddresses(await ip(['-4', '-o', 'addr', 'show']))];
    for (const k of subnetCandidates(this.ownerPid, inUse)) {
      this.subnet = k;
      await ip(['addr', 'add', `${this.hostAddress(ROOT_HOST)}/32`, 'dev', link]);
      try {
        await ip(['route', 'add', `${BASE}.${k}.0/24`, 'via', this.hostAddress(HUB_HOST), 'dev', link, 'onlink']);
      } catch (e) {
        await ip(['addr', 'flush', 'dev', link]);
        if (e instanceof IpError && e.exists) continue; // another run holds this /24
        throw e;
      }
      await this.wireHubSide(ROOT, ROOT_HOST);
      return;
    }
    throw new Error(`netns: no free /24 in ${BASE}.0.0/16 (every one overlaps a route or address of this machine)`);
  }

  /** attachNode makes node's namespace and its veth to the hub, with its /32 and a route to the /24 via the hub. */
  private async attachNode(node: string): Promise<void> {
    const ns = namespaceName(this.ownerPid, node);
    const host = FIRST_NODE_HOST + this.nodes.indexOf(node);
    await ip(['netns', 'add', ns]);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    await ip(['link', 'add', 'name', hubLinkName(node), 'netns', namespaceName(this.ownerPid, HUB), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await ip(['-n', ns, 'addr', 'add', `${this.hostAddress(host)}/32`, 'dev', 'eth0']);
    await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', ns, 'route', 'add', `${BASE}.${this.subnet}.0/24`, 'via', this.hostAddress(HUB_HOST), 'dev', 'eth0', 'onlink']);
    await this.wireHubSide(node, host);
  }

  /** wireHubSide gives the hub end of node's veth the gateway address and a /32 route to the node. */
  private async wireHubSide(node: string, host: number): Promise<void> {
    const hub = namespaceName(this.ownerPid, HUB);
    const link = hubLinkName(node);
    await ip(['-n', hub, 'addr', 'add', `${this.hostAddress(HUB_HOST)}/32`, 'dev', link]);
    await ip(['-n', hub, 'link', 'set', link, 'up']);
    await ip(['-n', hub, 'route', 'add', `${this.hostAddress(host)}/32`, 'dev', link]);
  }
}

/** sweepStaleRuns deletes the namespaces (and root-side veth) of every run whose owner pid is dead. */
export async function sweepStaleRuns(log?: (line: string) => void): Promise<void> {
  const stale = staleRuns(parseNetnsList(await ip(['netns', 'list'])), processAlive);
  for (const [pid, namespaces] of stale) {
    log?.(`netns: removing ${namespaces.join(', ')} left by dead pid ${pid}`);
    await ipQuiet(['link', 'del', runPrefix(pid)]);
    for (const ns of namespaces) await ipQuiet(['netns', 'del', ns]);
  }
}

/**
 * netnsUnavailable says why this machine cannot run namespace tests
 * (not Linux, not root, no iproute2, `ip netns add` refused), or undefined
 * when it can: it creates and deletes one namespace to find out.
 */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return `creating network namespaces needs root (uid ${process.getuid?.()})`;
  try {
    await ip(['-V']);
  } catch (e) {
    return `iproute2's ip is not usable: ${(e as Error).message}`;
  }
  const probe = namespaceName(process.pid, 'probe');
  try {
    await ip(['netns', 'add', probe]);
  } catch (e) {
    return `ip netns add refused: ${(e as Error).message}`;
  }
  await ipQuiet(['netns', 'del', probe]);
  return undefined;
}
