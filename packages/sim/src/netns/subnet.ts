// subnet.ts: which private /24 a topology takes, chosen so it does not
// shadow a network the machine already uses.
//
// A run takes 10.77.K.0/24 (BASE), K from its pid, the next free one if that
// is taken. "Taken" means a route or address of the root namespace, at least
// as specific as a /16, overlaps it (the default route and wide /8s are not a
// clash: the run's /24 is more specific and only covers its own addresses).
// Two runs racing for one K are settled by the kernel: the second `ip route
// add` of the same /24 fails with "File exists" and that run tries the next.

/** BASE is the /16 topologies carve their /24s from (RFC 1918, rarely used by real networks). */
export const BASE = '10.77';

/** Cidr is an IPv4 network as a 32-bit number and a prefix length. */
export interface Cidr {
  net: number;
  bits: number;
}

/** parseCidr reads "a.b.c.d" or "a.b.c.d/n"; undefined when it is not IPv4. */
export function parseCidr(text: string): Cidr | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(text);
  if (!m) return undefined;
  const octets = [m[1], m[2], m[3], m[4]].map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  const bits = m[5] === undefined ? 32 : Number(m[5]);
  if (bits > 32) return undefined;
  const addr = octets.reduce((a, o) => a * 256 + o, 0);
  return { net: bits === 0 ? 0 : addr - (addr % 2 ** (32 - bits)), bits };
}

/** overlaps: one network contains the other's first address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  const bits = Math.min(a.bits, b.bits);
  const size = 2 ** (32 - bits);
  return Math.floor(a.net / size) === Math.floor(b.net / size);
}

const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'throw', 'unreachable', 'prohibit', 'blackhole', 'nat', 'anycast']);

/** parseRouteDestinations reads the destinations of `ip -4 route show` lines ("default" is skipped). */
export function parseRouteDestinations(output: string): Cidr[] {
  const out: Cidr[] = [];
  for (const line of output.split('\n')) {
    const words = line.trim().split(/\s+/);
    const dest = ROUTE_TYPES.has(words[0] ?? '') ? words[1] : words[0];
    const c = dest === undefined ? undefined : parseCidr(dest);
    if (c) out.push(c);
  }
  return out;
}

/** parseAddresses reads the `inet a.b.c.d/n` networks of `ip -4 -o addr show`. */
export function parseAddresses(output: string): Cidr[] {
  const out: Cidr[] = [];
  for (const m of output.matchAll(/\binet (\d+\.\d+\.\d+\.\d+\/\d+)/g)) {
    const c = parseCidr(m[1]!);
    if (c) out.push(c);
  }
  return out;
}

/**
 * subnetCandidates lists the third octets a run of pid may take, its own
 * first, skipping every /24 that a network in `inUse` (a /16 or narrower)
 * overlaps.
 */
export function subnetCandidates(pid: number, inUse: readonly Cidr[]): number[] {
  const blocking = inUse.filter((c) => c.bits >= 16);
  const first = (pid % 254) + 1;
  const out: number[] = [];
  for (let i = 0; i < 254; i++) {
    const k = ((first - 1 + i) % 254) + 1;
    const mine = parseCidr(`${BASE}.${k}.0/24`)!;
    if (!blocking.some((c) => overlaps(c, mine))) out.push(k);
  }
  return out;
}

/** HUB_HOST: the hub router's address in every /24 is .1 (every node's gateway). */
export const HUB_HOST = 1;
/** ROOT_HOST: the root namespace (where a test's or chaos run's clients live) is .2. */
export const ROOT_HOST = 2;
/** FIRST_NODE_HOST: node i of the topology is .(10 + i). */
export const FIRST_NODE_HOST = 10;
