// `pnpm chaos --duration-s N [--seed S] [--clients 4] [--keys 16] [--lease-reads]`
//
// Chaos test of a local cluster of REAL processes: placement + 3 stores
// (`flotilla placement` / `flotilla store` from apps/node), concurrent
// FlotillaClients recording every invocation and completion (a failed write
// is indeterminate: it may or may not have applied), and faults: SIGKILL +
// restart, SIGSTOP/SIGCONT, leader transfers (admin request to the leader)
// and splits. At the end every process is resumed, the history gets a final
// read of every key, and it is checked for linearizability (which includes
// "every acknowledged write is read back"). Prints ops, faults and the
// verdict; exits 1 on a violation or when the cluster does not recover.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { FlotillaClient } from '@flotilla/client';
import { decode, encode, type ClientResponse } from '@flotilla/proto';
import { mulberry32 } from '@flotilla/transport';
import { checkKvHistory, explainFailure, type KvInput, type KvOperation, type KvOutput } from '../linearizability';

const ROOT = resolve(import.meta.dirname, '../../../..');
const MAIN = join(ROOT, 'apps/node/src/main.ts');

interface Proc {
  name: string;
  args: string[];
  child: ChildProcess | undefined;
  info: Record<string, unknown> | undefined;
  stopped: boolean;
  /** stderrTail keeps the last lines the process wrote to stderr, for failure reports. */
  stderrTail?: string[];
}

function args(argv: string[]) {
  const o = { durationS: 60, seed: Math.floor(Math.random() * 1e6), clients: 4, keys: 16, leaseReads: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => Number(argv[++i]);
    if (a === '--duration-s') o.durationS = v();
    else if (a === '--seed') o.seed = v();
    else if (a === '--clients') o.clients = v();
    else if (a === '--keys') o.keys = v();
    else if (a === '--lease-reads') o.leaseReads = true;
    else if (a !== '--') throw new Error(`unknown argument ${a}`);
  }
  return o;
}

/** launch starts one process and resolves with the JSON line it prints once it serves. */
function launch(p: Proc): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...p.args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  p.child = child;
  p.stopped = false;
  const tail: string[] = (p.stderrTail = []);
  createInterface({ input: child.stderr! }).on('line', (l) => {
    tail.push(l);
    if (tail.length > 40) tail.shift();
  });
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`${p.name} did not start within 60 s`)), 60_000);
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (line) => {
      clearTimeout(timer);
      try {
        p.info = JSON.parse(line) as Record<string, unknown>;
        res();
      } catch {
        rej(new Error(`${p.name} printed ${line}`));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`${p.name} exited with ${code} before it served; its stderr ended with:\n${tail.join('\n')}`));
    });
  });
}

async function kill(p: Proc): Promise<void> {
  const c = p.child;
  if (!c || c.exitCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  if (p.stopped) c.kill('SIGCONT');
  c.kill('SIGKILL');
  await exited;
  p.child = undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const td = new TextDecoder();

/** adminCall sends one raw client request to a store (leader transfer has no client API). */
function adminCall(address: string, req: object): Promise<ClientResponse | undefined> {
  return new Promise((res) => {
    const ws = new WebSocket(`ws://${address}/client`);
    const t = setTimeout(() => {
      ws.terminate();
      res(undefined);
    }, 3000);
    ws.once('open', () => ws.send(encode({ ...req, id: 1 })));
    ws.once('message', (d: Buffer) => {
      clearTimeout(t);
      ws.close();
      res(decode(d) as ClientResponse);
    });
    ws.once('error', () => {
      clearTimeout(t);
      res(undefined);
    });
  });
}

/** Chaos is one run's shared state: options, the processes, the seeded PRNG and what was recorded. */
interface Chaos {
  o: ReturnType<typeof args>;
  rng: () => number;
  dir: string;
  placement: Proc;
  stores: Proc[];
  faults: Record<string, number>;
  history: KvOperation[];
  counts: { ops: number; acked: number; unknown: number; failedReads: number };
  /** now is ms since the run started (one performance.now() clock for every client). */
  now: () => number;
}

const key = (i: number) => `k${String(i).padStart(3, '0')}`;

function note(run: Chaos, kind: string, detail: string): void {
  run.faults[kind] = (run.faults[kind] ?? 0) + 1;
  console.error(`[chaos ${(run.now() / 1000).toFixed(1)}s] ${kind} ${detail}`);
}

/** startCluster launches placement and three stores, and waits (at most ~20 s) until the cluster takes a write. */
async function startCluster(run: Chaos): Promise<FlotillaClient> {
  await launch(run.placement);
  const pdAddr = String(run.placement.info!.address);
  // --lease-reads: the stores serve reads on the leader lease (SIGSTOP faults are the stall that lease must survive).
  const tuning = join(run.dir, 'tuning.json');
  writeFileSync(tuning, JSON.stringify(run.o.leaseReads ? { readOnly: 'lease-based' } : {}));
  for (let i = 0; i < 3; i++) {
    const p: Proc = { name: `store-${i}`, args: ['store', '--placement', pdAddr, '--data-dir', join(run.dir, `store-${i}`), '--listen', '127.0.0.1:0', '--profile', 'demo', '--enable-admin-api', '--tuning', tuning], child: undefined, info: undefined, stopped: false };
    run.stores.push(p);
    await launch(p);
  }
  const client = await FlotillaClient.connect({ placement: pdAddr, timeoutMs: 5000 });
  for (let i = 0; ; i++) {
    try {
      await client.put('chaos-ready', 'y');
      return client;
    } catch (e) {
      if (i > 100) throw e;
      await sleep(200);
    }
  }
}

/** runOp runs one operation and records it; a failed write is indeterminate, a failed read is dropped. */
async function runOp(run: Chaos, c: FlotillaClient, clientId: number, input: KvInput): Promise<void> {
  const { counts } = run;
  counts.ops++;
  const invokeTime = run.now();
  try {
    let output: KvOutput = {};
    if (input.type === 'get') {
      const v = await c.get(input.key);
      output = { value: v ? td.decode(v) : null };
    } else if (input.type === 'put') await c.put(input.key, input.value);
    else if (input.type === 'delete') await c.delete(input.key);
    else {
      const r = await c.cas(input.key, input.expected, input.value);
      output = { succeeded: r.succeeded, previous: r.previous ? td.decode(r.previous) : null };
    }
    counts.acked++;
    run.history.push({ clientId, op: input.type, input, output, invokeTime, returnTime: run.now() });
  } catch {
    if (input.type === 'get') counts.failedReads++;
    else {
      counts.unknown++;
      run.history.push({ clientId, op: input.type, input, output: undefined, invokeTime, returnTime: Infinity });
    }
  }
}

/** startWorkers runs one client per worker (get 40 %, put 30 %, delete 10 %, cas 20 %) until isRunning() turns false. */
function startWorkers(run: Chaos, isRunning: () => boolean): Promise<void[]> {
  const { o } = run;
  const pdAddr = String(run.placement.info!.address);
  let seq = 0;
  return Promise.all(
    Array.from({ length: o.clients }, async (_, id) => {
      const c = await FlotillaClient.connect({ placement: pdAddr, timeoutMs: 5000 });
      const r = mulberry32(o.seed * 13 + id);
      try {
        while (isRunning()) {
          const k = key(Math.floor(r() * o.keys));
          const t = r();
          const value = `v${id}.${++seq}`;
          if (t < 0.4) await runOp(run, c, id, { type: 'get', key: k });
          else if (t < 0.7) await runOp(run, c, id, { type: 'put', key: k, value });
          else if (t < 0.8) await runOp(run, c, id, { type: 'delete', key: k });
          else await runOp(run, c, id, { type: 'cas', key: k, expected: r() < 0.5 ? null : `v${Math.floor(r() * o.clients)}.${Math.max(1, seq - Math.floor(r() * 10))}`, value });
        }
      } finally {
        c.close();
      }
    }),
  );
}

interface ChaosFault {
  name: string;
  /** weight: the fault's share of the draws, in per cent. */
  weight: number;
  run: (run: Chaos, s: Proc, client: FlotillaClient) => Promise<void>;
}

/** CHAOS_FAULTS: every 1.5-4 s one draw, aimed at a random store s (splits and transfers go through placement's view). */
const CHAOS_FAULTS: readonly ChaosFault[] = [
  { name: 'sigkill', weight: 30, run: sigkillAndRestart },
  { name: 'sigstop', weight: 20, run: sigstopAndContinue },
  { name: 'transfer-leader', weight: 25, run: transferLeader },
  { name: 'split', weight: 25, run: split },
];

async function sigkillAndRestart(run: Chaos, s: Proc): Promise<void> {
  if (!s.child) return;
  note(run, 'sigkill', s.name);
  await kill(s);
  await sleep(500 + Math.floor(run.rng() * 2000));
  note(run, 'restart', s.name);
  await launch(s);
}

async function sigstopAndContinue(run: Chaos, s: Proc): Promise<void> {
  if (!s.child || s.stopped) return;
  note(run, 'sigstop', s.name);
  s.child.kill('SIGSTOP');
  s.stopped = true;
  await sleep(500 + Math.floor(run.rng() * 2500));
  s.child?.kill('SIGCONT');
  s.stopped = false;
  note(run, 'sigcont', s.name);
}

/** transferLeader sends a raw admin transferLeader to a random Region's leader (the client has no such call). */
async function transferLeader(run: Chaos, _s: Proc, client: FlotillaClient): Promise<void> {
  try {
    const regions = await client.regions();
    const r = regions[Math.floor(run.rng() * regions.length)];
    const leaderStore = r?.leader?.storeId;
    const target = r?.region.peers.find((p) => p.storeId !== leaderStore && p.role === 'voter');
    const leaderProc = run.stores.find((p) => p.info?.storeId === leaderStore);
    if (!r || !target || !leaderProc?.info) return;
    note(run, 'transfer-leader', `region ${r.region.id} to store ${target.storeId}`);
    const res = await adminCall(String(leaderProc.info.address), { header: { regionId: r.region.id, regionEpoch: r.region.epoch }, op: 'admin', admin: { type: 'transferLeader', peer: target } });
    if (!res?.ok) note(run, 'transfer-leader-failed', res ? res.error.type : 'no answer');
  } catch {
    // placement or the leader unreachable: skip this fault.
  }
}

async function split(run: Chaos, _s: Proc, client: FlotillaClient): Promise<void> {
  const k = key(1 + Math.floor(run.rng() * (run.o.keys - 1)));
  note(run, 'split', `at ${k}`);
  await client.split(k).catch(() => undefined);
}

/** drawChaosFault picks the fault the uniform draw x in [0, 1) falls in, by cumulative weight. */
function drawChaosFault(x: number): ChaosFault {
  let at = x * CHAOS_FAULTS.reduce((a, f) => a + f.weight, 0);
  for (const f of CHAOS_FAULTS) {
    if (at < f.weight) return f;
    at -= f.weight;
  }
  return CHAOS_FAULTS[CHAOS_FAULTS.length - 1]!;
}

/** resumeAll continues every stopped store and starts every dead one. */
async function resumeAll(run: Chaos): Promise<void> {
  for (const s of run.stores) {
    if (s.stopped) {
      s.child?.kill('SIGCONT');
      s.stopped = false;
    }
    if (!s.child) await launch(s);
  }
}

/** readEveryKey reads every key back (10 attempts each); the reads join the history. Returns how many keys stayed unreadable. */
async function readEveryKey(run: Chaos, client: FlotillaClient): Promise<number> {
  let unreadable = 0;
  for (let i = 0; i < run.o.keys; i++) {
    let ok = false;
    for (let attempt = 0; attempt < 10 && !ok; attempt++) {
      const before = run.counts.acked;
      await runOp(run, client, 999, { type: 'get', key: key(i) });
      ok = run.counts.acked > before;
      if (!ok) await sleep(500);
    }
    if (!ok) unreadable++;
  }
  return unreadable;
}

/** verdict checks the history, prints the JSON summary and the verdict, and returns the exit code. */
function verdict(run: Chaos, unreadable: number): number {
  const { o, counts, faults, history } = run;
  const check = checkKvHistory(history);
  const total = Object.values(faults).reduce((a, b) => a + b, 0);
  const summary = { seed: o.seed, durationS: o.durationS, readOnly: o.leaseReads ? 'lease-based' : 'safe', ...counts, faults: total, faultKinds: faults, unreadableKeys: unreadable, linearizability: check.verdict };
  console.log(JSON.stringify(summary));
  if (check.verdict === 'illegal') {
    console.error(`VIOLATION: ${explainFailure(history, check)}`);
    return 1;
  }
  if (unreadable > 0) {
    console.error(`FAIL: ${unreadable} keys unreadable after recovery`);
    return 1;
  }
  console.error(`verdict: ${check.verdict === 'ok' ? 'linearizable' : 'search budget exhausted (inconclusive)'}; ${counts.ops} ops, ${total} faults`);
  return 0;
}

async function main(): Promise<number> {
  const o = args(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-chaos-'));
  const t0 = performance.now();
  const run: Chaos = {
    o,
    rng: mulberry32(o.seed),
    dir,
    placement: { name: 'placement', args: ['placement', '--data-dir', join(dir, 'pd'), '--listen', '127.0.0.1:0'], child: undefined, info: undefined, stopped: false },
    stores: [],
    faults: {},
    history: [],
    counts: { ops: 0, acked: 0, unknown: 0, failedReads: 0 },
    now: () => performance.now() - t0,
  };
  let client: FlotillaClient | undefined;
  try {
    client = await startCluster(run);
    console.error(`[chaos] cluster up in ${(run.now() / 1000).toFixed(1)} s; seed ${o.seed}; running ${o.durationS} s`);
    let running = true;
    const workers = startWorkers(run, () => running);
    const end = Date.now() + o.durationS * 1000;
    while (Date.now() < end) {
      await sleep(1500 + Math.floor(run.rng() * 2500));
      const s = run.stores[Math.floor(run.rng() * run.stores.length)]!;
      await drawChaosFault(run.rng()).run(run, s, client);
    }
    running = false;
    await resumeAll(run);
    await workers;
    return verdict(run, await readEveryKey(run, client));
  } finally {
    client?.close();
    for (const s of run.stores) await kill(s);
    await kill(run.placement);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (c) => process.exit(c),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
