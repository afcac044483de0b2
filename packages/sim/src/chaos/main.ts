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

async function main(): Promise<number> {
  const o = args(process.argv.slice(2));
  const rng = mulberry32(o.seed);
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-chaos-'));
  const placement: Proc = { name: 'placement', args: ['placement', '--data-dir', join(dir, 'pd'), '--listen', '127.0.0.1:0'], child: undefined, info: undefined, stopped: false };
  const stores: Proc[] = [];
  const faults: Record<string, number> = {};
  const history: KvOperation[] = [];
  const counts = { ops: 0, acked: 0, unknown: 0, failedReads: 0 };
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const note = (kind: string, detail: string) => {
    faults[kind] = (faults[kind] ?? 0) + 1;
    console.error(`[chaos ${(now() / 1000).toFixed(1)}s] ${kind} ${detail}`);
  };
  let client: FlotillaClient | undefined;
  let code = 0;
  try {
    await launch(placement);
    const pdAddr = String(placement.info!.address);
    // --lease-reads: the stores serve reads on the leader lease (SIGSTOP faults are the stall that lease must survive).
    const tuning = join(dir, 'tuning.json');
    writeFileSync(tuning, JSON.stringify(o.leaseReads ? { readOnly: 'lease-based' } : {}));
    for (let i = 0; i < 3; i++) {
      const p: Proc = { name: `store-${i}`, args: ['store', '--placement', pdAddr, '--data-dir', join(dir, `store-${i}`), '--listen', '127.0.0.1:0', '--profile', 'demo', '--enable-admin-api', '--tuning', tuning], child: undefined, info: undefined, stopped: false };
      stores.push(p);
      await launch(p);
    }
    client = await FlotillaClient.connect({ placement: pdAddr, timeoutMs: 5000 });
    // Wait until the cluster takes writes.
    for (let i = 0; ; i++) {
      try {
        await client.put('chaos-ready', 'y');
        break;
      } catch (e) {
        if (i > 100) throw e;
        await sleep(200);
      }
    }
    console.error(`[chaos] cluster up in ${(now() / 1000).toFixed(1)} s; seed ${o.seed}; running ${o.durationS} s`);

    const key = (i: number) => `k${String(i).padStart(3, '0')}`;
    let running = true;
    let seq = 0;
    const runOp = async (c: FlotillaClient, clientId: number, input: KvInput): Promise<void> => {
      counts.ops++;
      const invokeTime = now();
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
        history.push({ clientId, op: input.type, input, output, invokeTime, returnTime: now() });
      } catch {
        if (input.type === 'get') counts.failedReads++;
        else {
          counts.unknown++;
          history.push({ clientId, op: input.type, input, output: undefined, invokeTime, returnTime: Infinity });
        }
      }
    };
    const workers = Array.from({ length: o.clients }, async (_, id) => {
      const c = await FlotillaClient.connect({ placement: pdAddr, timeoutMs: 5000 });
      const r = mulberry32(o.seed * 13 + id);
      try {
        while (running) {
          const k = key(Math.floor(r() * o.keys));
          const t = r();
          const value = `v${id}.${++seq}`;
          if (t < 0.4) await runOp(c, id, { type: 'get', key: k });
          else if (t < 0.7) await runOp(c, id, { type: 'put', key: k, value });
          else if (t < 0.8) await runOp(c, id, { type: 'delete', key: k });
          else await runOp(c, id, { type: 'cas', key: k, expected: r() < 0.5 ? null : `v${Math.floor(r() * o.clients)}.${Math.max(1, seq - Math.floor(r() * 10))}`, value });
        }
      } finally {
        c.close();
      }
    });

    const end = Date.now() + o.durationS * 1000;
    while (Date.now() < end) {
      await sleep(1500 + Math.floor(rng() * 2500));
      const s = stores[Math.floor(rng() * stores.length)]!;
      const x = rng();
      if (x < 0.3 && s.child) {
        note('sigkill', s.name);
        await kill(s);
        await sleep(500 + Math.floor(rng() * 2000));
        note('restart', s.name);
        await launch(s);
      } else if (x < 0.5 && s.child && !s.stopped) {
        note('sigstop', s.name);
        s.child.kill('SIGSTOP');
        s.stopped = true;
        await sleep(500 + Math.floor(rng() * 2500));
        s.child?.kill('SIGCONT');
        s.stopped = false;
        note('sigcont', s.name);
      } else if (x < 0.75) {
        try {
          const regions = await client.regions();
          const r = regions[Math.floor(rng() * regions.length)];
          const leaderStore = r?.leader?.storeId;
          const target = r?.region.peers.find((p) => p.storeId !== leaderStore && p.role === 'voter');
          const leaderProc = stores.find((p) => p.info?.storeId === leaderStore);
          if (r && target && leaderProc?.info) {
            note('transfer-leader', `region ${r.region.id} to store ${target.storeId}`);
            const res = await adminCall(String(leaderProc.info.address), { header: { regionId: r.region.id, regionEpoch: r.region.epoch }, op: 'admin', admin: { type: 'transferLeader', peer: target } });
            if (!res?.ok) note('transfer-leader-failed', res ? res.error.type : 'no answer');
          }
        } catch {
          // placement or the leader unreachable: skip this fault.
        }
      } else {
        const k = key(1 + Math.floor(rng() * (o.keys - 1)));
        note('split', `at ${k}`);
        await client.split(k).catch(() => undefined);
      }
    }
    running = false;
    for (const s of stores) {
      if (s.stopped) {
        s.child?.kill('SIGCONT');
        s.stopped = false;
      }
      if (!s.child) await launch(s);
    }
    await Promise.all(workers);
    // Final reads: every key must be readable again, and each read joins the history.
    let unreadable = 0;
    for (let i = 0; i < o.keys; i++) {
      let ok = false;
      for (let attempt = 0; attempt < 10 && !ok; attempt++) {
        const before = counts.acked;
        await runOp(client, 999, { type: 'get', key: key(i) });
        ok = counts.acked > before;
        if (!ok) await sleep(500);
      }
      if (!ok) unreadable++;
    }
    const check = checkKvHistory(history);
    const total = Object.values(faults).reduce((a, b) => a + b, 0);
    const summary = { seed: o.seed, durationS: o.durationS, readOnly: o.leaseReads ? 'lease-based' : 'safe', ...counts, faults: total, faultKinds: faults, unreadableKeys: unreadable, linearizability: check.verdict };
    console.log(JSON.stringify(summary));
    if (check.verdict === 'illegal') {
      console.error(`VIOLATION: ${explainFailure(history, check)}`);
      code = 1;
    } else if (unreadable > 0) {
      console.error(`FAIL: ${unreadable} keys unreadable after recovery`);
      code = 1;
    } else console.error(`verdict: ${check.verdict === 'ok' ? 'linearizable' : 'search budget exhausted (inconclusive)'}; ${counts.ops} ops, ${total} faults`);
  } finally {
    client?.close();
    for (const s of stores) await kill(s);
    await kill(placement);
    rmSync(dir, { recursive: true, force: true });
  }
  return code;
}

main().then(
  (c) => process.exit(c),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
