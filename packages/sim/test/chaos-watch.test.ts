import { describe, expect, it } from 'vitest';
import { checkWatch, type DeliveredChange, type WatchSpec, type WatchWrite } from '../src/chaos/watch-check';
import { netnsUnavailable } from '../src/netns/topology';
import { chaosSeed, runChaos } from './fixtures/chaos-run';

// The watch checker (src/chaos/watch-check.ts) on hand-made histories, then
// one short `pnpm chaos --workload watch` run against real processes
// (placement + 3 stores, the suite's CLI bundle): transactional writers over
// keys split into Regions, three watchers (whole prefix from now, the same
// from an old revision, a sub-range) through SIGKILL / SIGSTOP / leader
// transfers / splits / merges, and partitions in network namespaces when
// root. 12 s of faults (WATCH_CHAOS_DURATION_S changes it: the long opt-in
// run); the seed comes from the HEAD commit (CHAOS_SEED picks one).

const spec: WatchSpec = { name: 't', start: 'k', end: 'l', fromRevision: 10n, until: 100n };
const put = (key: string, value: string) => ({ key, type: 'put' as const, value });
const del = (key: string) => ({ key, type: 'delete' as const });
const writes: WatchWrite[] = [
  { id: 'a', status: 'ok', commitTs: 5n, mutations: [put('k1', 'a')] }, // before the start: never delivered
  { id: 'b', status: 'ok', commitTs: 20n, mutations: [put('k1', 'b'), put('k2', 'b'), put('z', 'b')] }, // z is outside the range
  { id: 'c', status: 'ok', commitTs: 30n, mutations: [put('k2', 'c'), del('k1')] },
  { id: 'd', status: 'info', mutations: [put('k3', 'd')] }, // undetermined
  { id: 'e', status: 'ok', commitTs: 200n, mutations: [put('k4', 'e')] }, // after until: need not be there
];
const good: DeliveredChange[] = [
  { revision: 20n, key: 'k1', type: 'put', value: 'b' },
  { revision: 20n, key: 'k2', type: 'put', value: 'b' },
  { revision: 30n, key: 'k1', type: 'delete' },
  { revision: 30n, key: 'k2', type: 'put', value: 'c' },
];

describe('watch checker', () => {
  it('accepts exactly the acknowledged commits in order, with an undetermined one present or absent', () => {
    expect(checkWatch(spec, writes, good).problems).toEqual([]);
    const withD = [...good, { revision: 40n, key: 'k3', type: 'put' as const, value: 'd' }];
    const c = checkWatch(spec, writes, withD);
    expect(c.problems).toEqual([]);
    expect([c.acked, c.undeterminedSeen, c.undeterminedAbsent, c.delivered]).toEqual([2, 1, 0, 5]);
  });

  it('reports a missed commit, a duplicate, disorder, a phantom, a torn transaction and a wrong revision', () => {
    const problems = (d: DeliveredChange[]): string => checkWatch(spec, writes, d).problems.join('\n');
    expect(problems(good.slice(0, 2))).toMatch(/missed: transaction c/);
    expect(problems([...good, good[3]!])).toMatch(/duplicated/);
    expect(problems([good[2]!, good[3]!, good[0]!, good[1]!])).toMatch(/out of order/);
    expect(problems([...good, { revision: 50n, key: 'k9', type: 'put', value: 'nobody' }])).toMatch(/no transaction wrote/);
    expect(problems([good[0]!, good[2]!, good[3]!])).toMatch(/revision 20 \(transaction b\): delivered \[put k1=b\]/);
    expect(problems([good[0]!, good[1]!, { ...good[2]!, revision: 31n }, { ...good[3]!, revision: 31n }])).toMatch(/committed at 30 but was delivered at revision 31/);
    expect(problems([{ revision: 5n, key: 'k1', type: 'put', value: 'a' }, ...good])).toMatch(/at or below the start revision/);
    // An undetermined transaction at most once.
    const d = { key: 'k3', type: 'put' as const, value: 'd' };
    expect(problems([...good, { ...d, revision: 40n }, { ...d, revision: 41n }])).toMatch(/transaction d delivered twice/);
  });
});

const DURATION_S = Number(process.env['WATCH_CHAOS_DURATION_S'] ?? 12);
const seed = chaosSeed();
const noNetns = await netnsUnavailable();
const flags = ['--duration-s', String(DURATION_S), '--seed', String(seed), '--workload', 'watch', '--keys', '8', ...(seed % 2 === 1 ? ['--lease-reads'] : []), ...(noNetns ? [] : ['--partitions'])];
const replay = `pnpm chaos ${flags.join(' ')}`;
console.warn(`chaos-watch.test.ts: seed ${seed}, ${noNetns ? `no partitions (${noNetns})` : 'partitions in network namespaces'}; replay: ${replay}`);

describe('watch chaos (real processes)', () => {
  it(`runs ${DURATION_S} s of faults (seed ${seed}) and every watcher delivers exactly the committed writes of its range`, async () => {
    const r = await runChaos(flags);
    expect(r.code, `chaos exited ${r.code} (replay: ${replay})\n${r.err.slice(-4000)}`).toBe(0);
    const s = r.summary as { workload: string; ok: number; checker: string; faults: number; eventsChecked: number; watchers: { name: string; ok: boolean; changes: number; acked: number; passMs: number }[] };
    // Each watch passed a timestamp taken after recovery within the run's bound (30 s; a lock a writer left behind is resolved by the watch itself).
    console.warn(`chaos-watch.test.ts: watchers passed the final timestamp after ${s.watchers.map((w) => `${w.name} ${w.passMs} ms`).join(', ')}`);
    expect(s.workload).toBe('watch');
    expect(s.checker, replay).toBe('ok');
    expect(s.watchers.map((w) => w.name).sort()).toEqual(['all', 'from-old', 'part']);
    expect(s.watchers.every((w) => w.ok)).toBe(true);
    // The whole-prefix watchers saw the acknowledged transactions; the old-revision one caught up on the same ones.
    expect(s.ok).toBeGreaterThan(20);
    expect(s.watchers.find((w) => w.name === 'all')!.acked).toBeGreaterThan(20);
    expect(s.eventsChecked).toBeGreaterThan(50);
    expect(s.faults).toBeGreaterThan(0);
  }, (DURATION_S + 150) * 1000);
});

// The same with placement as a group of three processes (--placement-members 3):
// the run opens with a SIGKILL of placement's leader (restarted 0.5-2.5 s later)
// and draws further leader kills and SIGSTOPs among the other faults, while
// stores, writers and watchers hold every member's address.
const groupFlags = ['--duration-s', String(Math.min(DURATION_S, 10)), '--seed', String(seed + 1), '--workload', 'watch', '--keys', '6', '--placement-members', '3', ...(noNetns ? [] : ['--partitions'])];
const groupReplay = `pnpm chaos ${groupFlags.join(' ')}`;

describe('watch chaos with placement failover (real processes)', () => {
  it(`kills the placement leader (seed ${seed + 1}) and every watcher still delivers exactly the committed writes of its range`, async () => {
    const r = await runChaos(groupFlags);
    expect(r.code, `chaos exited ${r.code} (replay: ${groupReplay})\n${r.err.slice(-4000)}`).toBe(0);
    const s = r.summary as { placementMembers: number; checker: string; ok: number; faultKinds: Record<string, number>; watchers: { name: string; ok: boolean; acked: number }[] };
    expect(s.placementMembers).toBe(3);
    expect(s.checker, groupReplay).toBe('ok');
    // The opener killed the member that said it led, and it came back.
    expect(s.faultKinds['sigkill-placement-leader'] ?? 0, r.err.slice(-2000)).toBeGreaterThanOrEqual(1);
    expect(s.faultKinds['restart-placement'] ?? 0).toBeGreaterThanOrEqual(1);
    expect(s.watchers.every((w) => w.ok)).toBe(true);
    // Writes committed after the failover too, and the whole-prefix watcher saw them.
    expect(s.ok).toBeGreaterThan(20);
    expect(s.watchers.find((w) => w.name === 'all')!.acked).toBeGreaterThan(20);
  }, 180_000);
});
