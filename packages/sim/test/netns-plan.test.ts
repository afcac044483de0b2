import { describe, expect, it } from 'vitest';
import { between, bridge, canReach, cutKey, isolate, oneWay } from '../src/netns/cuts';
import { assertNodeName, hubLinkName, namespaceName, ownerPid, parseNetnsList, runPrefix, staleRuns } from '../src/netns/names';
import { overlaps, parseAddresses, parseCidr, parseRouteDestinations, subnetCandidates } from '../src/netns/subnet';

// The parts of the namespace topology that need no root: names, the choice
// of subnet, and which one-way cuts a partition is. The root parts (ip netns,
// veths, rules) run in netns.test.ts and in `pnpm chaos --partitions`.

const NODES = ['placement', 'store0', 'store1', 'store2'];

/** reachable: every ordered pair that can still talk, as "a>b". */
function reachable(cuts: ReturnType<typeof between>): string[] {
  const out: string[] = [];
  for (const a of NODES) for (const b of NODES) if (a !== b && canReach(cuts, a, b)) out.push(`${a}>${b}`);
  return out.sort();
}

describe('partition plans', () => {
  it('isolate cuts one node off both ways and leaves the rest connected', () => {
    const cuts = isolate('store1', NODES);
    expect(cuts).toHaveLength(6);
    expect(reachable(cuts)).toEqual(['placement>store0', 'placement>store2', 'store0>placement', 'store0>store2', 'store2>placement', 'store2>store0']);
  });

  it('between separates two halves and refuses a node on both sides', () => {
    const cuts = between(['store0', 'placement'], ['store1', 'store2']);
    expect(reachable(cuts)).toEqual(['placement>store0', 'store0>placement', 'store1>store2', 'store2>store1']);
    expect(() => between(['store0'], ['store0', 'store1'])).toThrow(/both sides/);
  });

  it('bridge: the two sides cannot talk, the bridge node reaches both', () => {
    const cuts = bridge('store0', ['store1', 'placement'], ['store2']);
    expect(canReach(cuts, 'store1', 'store2')).toBe(false);
    expect(canReach(cuts, 'placement', 'store2')).toBe(false);
    for (const n of ['store1', 'store2', 'placement']) {
      expect(canReach(cuts, 'store0', n)).toBe(true);
      expect(canReach(cuts, n, 'store0')).toBe(true);
    }
    expect(() => bridge('store0', ['store0'], ['store1'])).toThrow(/neither half/);
  });

  it('oneWay is asymmetric and cuts are deduplicated', () => {
    const cuts = oneWay(['store0', 'store0'], ['store1']);
    expect(cuts.map(cutKey)).toEqual(['store0>store1']);
    expect(canReach(cuts, 'store1', 'store0')).toBe(true);
  });
});

describe('names', () => {
  it('names carry the owner pid and fit interface-name limits', () => {
    expect(runPrefix(4194304)).toBe('flt4194304');
    expect(runPrefix(4194304).length).toBeLessThanOrEqual(15);
    expect(hubLinkName('abcdefghijkl').length).toBeLessThanOrEqual(15);
    expect(namespaceName(123, 'store0')).toBe('flt123-store0');
    expect(ownerPid('flt123-store0')).toBe(123);
    expect(ownerPid('flt123-hub')).toBe(123);
    expect(ownerPid('someone-elses')).toBeUndefined();
    expect(ownerPid('flt12x-store0')).toBeUndefined();
    expect(() => assertNodeName('hub')).toThrow();
    expect(() => assertNodeName('root')).toThrow();
    expect(() => assertNodeName('store-0')).toThrow();
    expect(() => assertNodeName('abcdefghijklm')).toThrow();
    expect(() => runPrefix(0)).toThrow();
  });

  it('a dead owner pid makes its namespaces stale; a live one and foreign names are left alone', () => {
    const list = parseNetnsList('flt10-hub (id: 3)\nflt10-store0 (id: 4)\nflt20-hub\nmy-netns\n\n');
    expect(list).toEqual(['flt10-hub', 'flt10-store0', 'flt20-hub', 'my-netns']);
    const asked: number[] = [];
    const stale = staleRuns(list, (pid) => {
      asked.push(pid);
      return pid === 20;
    });
    expect([...stale.entries()]).toEqual([[10, ['flt10-hub', 'flt10-store0']]]);
    expect(asked).toEqual([10, 20]); // once per pid
  });
});

describe('subnet choice', () => {
  it('parses CIDRs and overlap', () => {
    expect(parseCidr('10.77.3.0/24')).toEqual({ net: (10 * 256 ** 3) + 77 * 256 ** 2 + 3 * 256, bits: 24 });
    expect(parseCidr('10.77.3.9')?.bits).toBe(32);
    expect(parseCidr('10.77.3.300/24')).toBeUndefined();
    expect(parseCidr('fd00::1/64')).toBeUndefined();
    expect(overlaps(parseCidr('10.77.0.0/16')!, parseCidr('10.77.9.0/24')!)).toBe(true);
    expect(overlaps(parseCidr('10.77.8.0/24')!, parseCidr('10.77.9.0/24')!)).toBe(false);
  });

  it('reads route and address listings', () => {
    const routes = parseRouteDestinations('default via 192.0.2.1 dev eth0\n10.77.5.0/24 via 10.77.5.1 dev flt9 onlink\nblackhole 10.77.6.0/24\n192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n');
    expect(routes.map((c) => c.bits)).toEqual([24, 24, 24]);
    const addrs = parseAddresses('1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 10.77.7.4/24 brd 10.77.7.255 scope global eth0\n');
    expect(addrs).toHaveLength(2);
  });

  it("starts at the pid's own /24, skips taken ones, and ignores routes wider than a /16", () => {
    const taken = [parseCidr('10.77.6.0/24')!, parseCidr('10.77.7.9/32')!, parseCidr('10.0.0.0/8')!];
    const c = subnetCandidates(5, taken); // pid 5 starts at 6
    expect(c[0]).toBe(8);
    expect(c).not.toContain(6);
    expect(c).not.toContain(7);
    expect(c).toHaveLength(252);
    expect(subnetCandidates(5, [parseCidr('10.77.0.0/16')!])).toEqual([]);
  });
});
