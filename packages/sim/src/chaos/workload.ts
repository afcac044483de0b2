import { FlotillaClient } from '@flotilla/client';
import { mulberry32 } from '@flotilla/transport';
import type { KvInput, KvOutput } from '../linearizability';
import { pdAddrs } from './cluster';
import { sleep } from './procs';
import { key, type Chaos } from './run';

// workload.ts: the chaos clients. Each records every invocation and
// completion into the run's history; a failed write is indeterminate (it
// may or may not have applied), a failed read is dropped.

const td = new TextDecoder();

/** runOp runs one operation and records it; a failed write is indeterminate, a failed read is dropped. */
export async function runOp(run: Chaos, c: FlotillaClient, clientId: number, input: KvInput): Promise<void> {
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
    const at = run.now();
    run.stall.longestMs = Math.max(run.stall.longestMs, at - run.stall.lastAckMs);
    run.stall.lastAckMs = at;
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
export function startWorkers(run: Chaos, isRunning: () => boolean): Promise<void[]> {
  const { o } = run;
  const pdAddr = pdAddrs(run);
  let seq = 0;
  run.stall.lastAckMs = run.now(); // stalls count from here, not from the cluster's start
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

/** readEveryKey reads every key back (10 attempts each); the reads join the history. Returns how many keys stayed unreadable. */
export async function readEveryKey(run: Chaos, client: FlotillaClient): Promise<number> {
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
