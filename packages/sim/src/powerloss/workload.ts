// The power-loss run's clients: the chaos runner's mix (get 40 %, put 30 %,
// delete 10 %, cas 20 % on a few keys), each invocation and completion
// recorded for the linearizability checker. A failed write is recorded as
// indeterminate (it may or may not have applied); a failed read is dropped.
import { FlotillaClient } from '@flotilla/client';
import { mulberry32 } from '@flotilla/transport';
import type { KvInput, KvOperation, KvOutput } from '../linearizability';

/** History is what the clients recorded, and the counts the summary prints. */
export interface History {
  ops: KvOperation[];
  counts: { ops: number; acked: number; unknown: number; failedReads: number };
  /** now is ms since the run started (one performance.now() clock for every client). */
  now: () => number;
}

export function newHistory(): History {
  const t0 = performance.now();
  return { ops: [], counts: { ops: 0, acked: 0, unknown: 0, failedReads: 0 }, now: () => performance.now() - t0 };
}

export const keyName = (i: number): string => `k${String(i).padStart(3, '0')}`;
const td = new TextDecoder();

/** runOp runs one operation and records it. */
export async function runOp(h: History, c: FlotillaClient, clientId: number, input: KvInput): Promise<boolean> {
  h.counts.ops++;
  const invokeTime = h.now();
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
    h.counts.acked++;
    h.ops.push({ clientId, op: input.type, input, output, invokeTime, returnTime: h.now() });
    return true;
  } catch {
    if (input.type === 'get') h.counts.failedReads++;
    else {
      h.counts.unknown++;
      h.ops.push({ clientId, op: input.type, input, output: undefined, invokeTime, returnTime: Infinity });
    }
    return false;
  }
}

/** startWorkers runs `clients` clients on `keys` keys until isRunning() turns false. */
export function startWorkers(h: History, placement: string, o: { seed: number; clients: number; keys: number }, isRunning: () => boolean): Promise<void[]> {
  let seq = 0;
  return Promise.all(
    Array.from({ length: o.clients }, async (_, id) => {
      const c = await FlotillaClient.connect({ placement, timeoutMs: 5000 });
      const r = mulberry32(o.seed * 13 + id);
      try {
        while (isRunning()) {
          const k = keyName(Math.floor(r() * o.keys));
          const t = r();
          const value = `v${id}.${++seq}`;
          if (t < 0.4) await runOp(h, c, id, { type: 'get', key: k });
          else if (t < 0.7) await runOp(h, c, id, { type: 'put', key: k, value });
          else if (t < 0.8) await runOp(h, c, id, { type: 'delete', key: k });
          else await runOp(h, c, id, { type: 'cas', key: k, expected: r() < 0.5 ? null : `v${Math.floor(r() * o.clients)}.${Math.max(1, seq - Math.floor(r() * 10))}`, value });
        }
      } finally {
        c.close();
      }
    }),
  );
}

/** readEveryKey reads every key back (10 attempts each, 500 ms apart); the reads join the history. Returns how many stayed unreadable. */
export async function readEveryKey(h: History, client: FlotillaClient, keys: number): Promise<number> {
  let unreadable = 0;
  for (let i = 0; i < keys; i++) {
    let ok = false;
    for (let attempt = 0; attempt < 10 && !ok; attempt++) {
      ok = await runOp(h, client, 999, { type: 'get', key: keyName(i) });
      if (!ok) await new Promise((r) => setTimeout(r, 500));
    }
    if (!ok) unreadable++;
  }
  return unreadable;
}
