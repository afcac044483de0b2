import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../src/cli';
import type { ClusterFile } from '../src/cluster-file';
import { alive, cleanEnv, killAll, readJson, runCli, startCli, waitFor, type CliChild } from './helpers';
import { fingerprint, httpJson } from './processes';

// The pd-ctl style commands against one real `flotilla up` cluster (3
// stores, --max-replicas 2, a --tuning file): up's store IDs, region,
// transfer-leader, operator list/cancel, del reporting existence, and
// store remove draining a store to a tombstone that may not come back.
// The cluster is real processes on real sockets; most ctl commands run
// through run() in this process (the code a `flotilla` process runs, minus
// one node+tsx start each, which would cost most of the time budget), and
// the ones whose exit status or stderr plumbing matters run as processes.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-ctl-admin-'));
const dataDir = join(dir, 'data');
const tuning = join(dir, 'tuning.json');
let up: CliChild;
let cluster: ClusterFile;
const extra: CliChild[] = [];
const stoppedPids = new Set<number>();

interface RegionJson {
  id: number;
  peers: { id: number; storeId: number; role: string }[];
  leader: { id: number; storeId: number } | null;
}

beforeAll(async () => {
  // Region heartbeats every 300 ms: each operator step waits for one.
  writeFileSync(tuning, JSON.stringify({ regionHeartbeatIntervalMs: 300, storeHeartbeatIntervalMs: 500 }));
  up = startCli(['up', '--stores', '3', '--max-replicas', '2', '--tuning', tuning, '--data-dir', dataDir, '--base-port', '0', '--profile', 'demo', '--log-level', 'info']);
  cluster = await waitFor(
    'flotilla up to report the cluster up',
    () => {
      if (up.exitCode !== null) throw new Error(`flotilla up exited with ${up.exitCode}: ${up.out.stderr}`);
      return up.out.stdout.includes('Press Ctrl-C') ? readJson<ClusterFile>(join(dataDir, 'cluster.json')) : null;
    },
    90_000,
    200,
  );
}, 120_000);

afterAll(() => {
  for (const pid of stoppedPids) {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // already gone
    }
  }
  killAll(up, cluster, extra);
  rmSync(dir, { recursive: true, force: true });
});

/** inProcess runs the CLI's run() with captured output. */
async function inProcess(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) => ({ write: (chunk: string | Uint8Array) => (append(String(chunk)), true) }) as unknown as NodeJS.WritableStream;
  const code = await run(argv, { stdout: sink((x) => (stdout += x)), stderr: sink((x) => (stderr += x)), env: cleanEnv() });
  return { code, stdout, stderr };
}
const ctl = (args: string[]) => inProcess([...args, '--data-dir', dataDir, '--log-level', 'warn']);
const placementUrl = (): string => `http://${cluster.placement.address}`;
const region = async (id: number): Promise<RegionJson> => (await httpJson<{ region: RegionJson }>(`${placementUrl()}/regions/id/${id}`)).region;
/** firstRegionId: the Region a fresh cluster bootstraps (its ID comes from placement's allocator). */
const firstRegionId = async (): Promise<number> => (await httpJson<{ regions: RegionJson[] }>(`${placementUrl()}/regions?limit=10`)).regions[0]!.id;
const nameOf = (storeId: number): string => `store-${cluster.stores.find((s) => s.storeId === storeId)!.index}`;

describe('ctl commands against flotilla up', () => {
  it('up shows each store ID next to its process, and passes --max-replicas and --tuning through', async () => {
    for (const s of cluster.stores) {
      expect(s.storeId, `cluster.json store-${s.index}`).toBeGreaterThan(0);
      expect(up.out.stdout).toMatch(new RegExp(`store-${s.index}\\s+${s.storeId}\\s+${s.address.replace(/\./g, '\\.')}`));
      expect(readFileSync(`/proc/${s.pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining(['--tuning', tuning]));
    }
    const [status, stores] = await Promise.all([httpJson<{ maxReplicas: number }>(`${placementUrl()}/status`), ctl(['stores'])]);
    expect(status.maxReplicas).toBe(2);
    expect(stores.code, stores.stderr).toBe(0);
    for (const s of cluster.stores) expect(stores.stdout).toMatch(new RegExp(`^ *${s.storeId}\\s+store-${s.index}\\s`, 'm'));
    // raft-core's own lines (newRaft, became leader) name their Region.
    const logs = cluster.stores.map((s) => readFileSync(join(dataDir, 'logs', `store-${s.index}.log`), 'utf8')).join('\n');
    const raftLines = logs.split('\n').filter((l) => l.includes('"msg":"newRaft'));
    expect(raftLines.length).toBeGreaterThan(0);
    for (const l of raftLines) expect((JSON.parse(l) as { regionId?: unknown }).regionId).toEqual(expect.any(Number));
  });

  it('del says whether the key existed; region shows one Region with its stores', async () => {
    const r = await region(await firstRegionId());
    const [put, detail, json, missing] = await Promise.all([ctl(['put', 'k1', 'v1']), ctl(['region', String(r.id)]), ctl(['region', String(r.id), '--json']), ctl(['region', '999999'])]);
    expect(put.code, put.stderr).toBe(0);
    const [first, absent] = await Promise.all([ctl(['del', 'k1']), ctl(['del', 'k2'])]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe('deleted k1\n');
    expect(absent.code, absent.stderr).toBe(0);
    expect(absent.stdout).toBe('k2 did not exist: nothing deleted\n');
    expect((await ctl(['get', 'k1'])).code).toBe(1);

    expect(detail.code, detail.stderr).toBe(0);
    expect(detail.stdout).toContain(`region ${r.id}\n`);
    expect(detail.stdout).toMatch(/key range\s+\[-inf, /);
    expect(detail.stdout).toMatch(/last heartbeat\s+\d+s ago/);
    expect(detail.stdout).toMatch(/operator\s+none/);
    for (const p of r.peers) {
      const store = cluster.stores.find((s) => s.storeId === p.storeId)!;
      expect(detail.stdout).toMatch(new RegExp(`^ *${p.id}\\s+${p.storeId} \\(store-${store.index}\\)\\s+(leader|follower)\\s+${store.address.replace(/\./g, '\\.')}\\s+up`, 'm'));
    }
    expect((JSON.parse(json.stdout) as { stores: unknown[] }).stores).toHaveLength(r.peers.length);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('region 999999 not found');
  });

  it('transfer-leader moves leadership and refuses a store without a peer; operator list and cancel act on a stuck operator', async () => {
    const rid = await firstRegionId();
    const before = await region(rid);
    const follower = before.peers.find((p) => p.id !== before.leader!.id)!;
    const outsider = cluster.stores.find((s) => !before.peers.some((p) => p.storeId === s.storeId))!;
    const [moved, refused] = await Promise.all([ctl(['transfer-leader', String(rid), String(follower.storeId)]), ctl(['transfer-leader', String(rid), String(outsider.storeId)])]);
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toMatch(new RegExp(`^operator \\d+ added: transfer leader of region ${rid} from store \\d+ to store ${follower.storeId}`));
    expect(moved.stdout).toContain(`region ${rid} is now led from store ${follower.storeId} (${nameOf(follower.storeId)})`);
    expect((await region(rid)).leader?.storeId).toBe(follower.storeId);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`store ${outsider.storeId} holds no peer of region ${rid}`);

    // A transfer to a frozen follower cannot finish: it stays in flight until canceled.
    const frozen = before.leader!.storeId;
    const pid = cluster.stores.find((s) => s.storeId === frozen)!.pid;
    process.kill(pid, 'SIGSTOP');
    stoppedPids.add(pid);
    try {
      const added = await ctl(['transfer-leader', String(rid), String(frozen), '--wait-ms', '0']);
      expect(added.code, added.stderr).toBe(0);
      const opId = /^operator (\d+) added/.exec(added.stdout)![1]!;
      const list = await ctl(['operator', 'list']);
      expect(list.stdout).toMatch(new RegExp(`^ *${opId}\\s+${rid}\\s+transfer-leader\\s+admin\\s+1/1 transferLeader to store ${frozen} \\(${nameOf(frozen)}\\)`, 'm'));
      const cancel = await ctl(['operator', 'cancel', String(rid)]);
      expect(cancel.code, cancel.stderr).toBe(0);
      expect(cancel.stdout).toContain(`canceled operator ${opId} (transfer-leader, by admin) of region ${rid}`);
      const [empty, twice] = await Promise.all([ctl(['operator', 'list']), ctl(['operator', 'cancel', String(rid)])]);
      expect(empty.stdout).toContain('0 operators in flight');
      expect(twice.code).toBe(1);
      expect(twice.stderr).toContain(`region ${rid} has no operator in flight`);
    } finally {
      process.kill(pid, 'SIGCONT');
      stoppedPids.delete(pid);
    }
  });

  it('store remove drains the store (leader handed over first), tombstones it, and the store may not start again', async () => {
    const rid = await firstRegionId();
    const leaderStore = (await waitFor('the Region to have a leader again', async () => (await region(rid)).leader, 30_000)).storeId;
    const removed = await runCli(['store', 'remove', String(leaderStore), '--wait-ms', '30000', '--data-dir', dataDir], { timeoutMs: 60_000 });
    expect(removed.code, `${removed.stdout}\n${removed.stderr}`).toBe(0);
    expect(removed.stdout).toContain(`store ${leaderStore} (${nameOf(leaderStore)}) is offline: placement is moving its`);
    expect(removed.stdout).toContain(`store ${leaderStore} (${nameOf(leaderStore)}) is a tombstone`);
    const after = await httpJson<{ regions: RegionJson[] }>(`${placementUrl()}/regions?limit=1000`);
    for (const r of after.regions) {
      expect(r.peers.some((p) => p.storeId === leaderStore)).toBe(false);
      expect(r.peers.filter((p) => p.role === 'voter')).toHaveLength(2);
    }
    // --log-format pretty: pino-pretty lines, not JSON, even though stderr is a pipe.
    const stores = await runCli(['stores', '--data-dir', dataDir, '--log-level', 'debug', '--log-format', 'pretty'], { timeoutMs: 30_000 });
    expect(stores.stderr).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] DEBUG .*placement connected/m);
    expect(stores.stderr).not.toMatch(/^\{"level"/m);
    expect(stores.stdout).toMatch(new RegExp(`^ *${leaderStore}\\s+${nameOf(leaderStore)}\\s.*\\stombstone\\s`, 'm'));

    // Its process is stopped; started again on its data dir, the store is refused (exit 2) and changes nothing there.
    const gone = cluster.stores.find((s) => s.storeId === leaderStore)!;
    process.kill(gone.pid, 'SIGTERM');
    await waitFor(`${gone.pid} to exit`, () => !alive(gone.pid), 20_000);
    const before = fingerprint(gone.dataDir);
    const again = await runCli(['store', '--placement', cluster.placement.address, '--data-dir', gone.dataDir, '--listen', '127.0.0.1:0', '--log-level', 'warn'], { timeoutMs: 30_000 });
    expect(again.code, again.stderr).toBe(2);
    expect(again.stderr).toContain(`store ${leaderStore} (${gone.dataDir}) was removed from cluster`);
    expect(fingerprint(gone.dataDir)).toEqual(before);
  });
});

describe('ctl usage errors', () => {
  it.each([
    { argv: ['store', 'remove', 'x'], message: '<store-id>: "x" is not a positive integer' },
    { argv: ['store', 'remove'], message: 'missing <store-id>' },
    { argv: ['transfer-leader', '1'], message: 'missing <store-id>' },
    { argv: ['operator'], message: 'operator list' },
    { argv: ['operator', 'stop'], message: 'unknown command "operator stop"; expected one of: operator list, operator cancel' },
    { argv: ['region', '0'], message: '<region-id>: "0" is not a positive integer' },
    { argv: ['up', '--stores', '2', '--max-replicas', '3'], message: '--max-replicas 3 needs at least 3 stores' },
    { argv: ['up', '--tuning', '/nonexistent/tuning.json'], message: '--tuning: cannot read /nonexistent/tuning.json as JSON: ENOENT' },
    { argv: ['get', 'k', '--log-format', 'fancy'], message: '--log-format: expected one of auto, json, pretty' },
  ])('$argv', async ({ argv, message }) => {
    const r = await inProcess(argv);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('a bare command group lists its subcommands under --help', async () => {
    const r = await inProcess(['operator', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('operator list');
    expect(r.stdout).toContain('operator cancel');
  });
});
