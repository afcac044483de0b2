// The workload: concurrent clients running a random KV mix during the safety
// phase, and the liveness phase's read-back of every key. Every write has a
// unique value, so the checker can tell which write a read saw.
import { mulberry32 } from '@flotilla/transport';
import type { KvOperation } from './linearizability';
import type { SimCluster } from './cluster';
import type { Recorder } from './report';
import { keyName } from './keys';
import { SimClient } from './sim-client';

export interface WorkloadOptions {
  seed: number;
  clients: number;
  keys: number;
  /** opTimeoutMs: a client gives up on an operation after this long (its outcome is then unknown). */
  opTimeoutMs: number;
  injectStaleReads: boolean;
}

/**
 * Workload runs one loop per client until stop(): get 35 %, put 25 %,
 * delete 10 %, cas 20 % (half of them expecting the value last seen), scan
 * 10 %, with 0-30 ms of think time between operations. Each client draws
 * from its own PRNG (seeded from the run's seed and its id).
 */
export class Workload {
  private running = true;
  private valueSeq = 0;
  /** finished settles when every client's loop has seen stop() and its last operation ended. */
  readonly finished: Promise<void>;

  constructor(
    cluster: SimCluster,
    private readonly recorder: Recorder,
    private readonly o: WorkloadOptions,
  ) {
    const clients = Array.from({ length: o.clients }, (_, i) => new SimClient(i, cluster, mulberry32(o.seed * 31 + i + 1), recorder, o.opTimeoutMs, o.injectStaleReads));
    this.finished = Promise.all(clients.map((c) => this.loop(c))).then(() => undefined);
  }

  /** stop ends every client's loop after its current operation. */
  stop(): void {
    this.running = false;
  }

  private async loop(c: SimClient): Promise<void> {
    const r = mulberry32(this.o.seed * 97 + c.id + 7);
    const nKeys = this.o.keys;
    while (this.running) {
      const key = keyName(Math.floor(r() * nKeys));
      const t = r();
      const value = `v${c.id}.${++this.valueSeq}`;
      const pick = () => (r() < 0.3 ? null : `v${Math.floor(r() * this.o.clients)}.${Math.max(1, this.valueSeq - Math.floor(r() * 20))}`);
      this.recorder.stats.ops++;
      if (t < 0.35) await c.run({ type: 'get', key }, nKeys);
      else if (t < 0.6) await c.run({ type: 'put', key, value }, nKeys);
      else if (t < 0.7) await c.run({ type: 'delete', key }, nKeys);
      else if (t < 0.9) {
        // Read the current value first half of the time, so a CAS has a fair chance of succeeding.
        const expected = r() < 0.5 ? lastValueOf(this.recorder.history, key) : pick();
        await c.run({ type: 'cas', key, expected, value: r() < 0.15 ? null : value }, nKeys);
      } else {
        const start = Math.floor(r() * nKeys);
        await c.run({ type: 'scan', start, end: start + 1 + Math.floor(r() * 8), limit: 1 + Math.floor(r() * 8) }, nKeys);
      }
      await new Promise((res) => setTimeout(res, Math.floor(r() * 30)));
    }
  }
}

/**
 * readEveryKey reads every key back, one after the other, each with what is
 * left of the liveness bound. The reads join the history, so an
 * acknowledged write that was lost fails the linearizability check; a key
 * that cannot be read at all is a liveness failure.
 */
export async function readEveryKey(cluster: SimCluster, recorder: Recorder, o: WorkloadOptions, deadlineMs: number, livenessBoundMs: number): Promise<void> {
  const stats = recorder.stats;
  for (let i = 0; i < o.keys; i++) {
    const before = stats.acknowledged;
    const client = new SimClient(o.clients, cluster, mulberry32(o.seed + 1234567 + i), recorder, Math.max(1, deadlineMs - Date.now()));
    await client.run({ type: 'get', key: keyName(i) }, o.keys);
    if (stats.acknowledged === before) recorder.fail(`liveness: final read of ${keyName(i)} did not succeed within ${livenessBoundMs} ms after healing`);
    else stats.finalReads++;
  }
}

/** lastValueOf is the latest acknowledged value a client saw or wrote for key (a plausible CAS expectation). */
function lastValueOf(history: KvOperation[], key: string): string | null {
  for (let i = history.length - 1; i >= 0; i--) {
    const o = history[i]!;
    if (o.input.key !== key || o.output === undefined) continue;
    if (o.input.type === 'get') return o.output.value ?? null;
    if (o.input.type === 'put') return o.input.value;
    if (o.input.type === 'delete') return null;
  }
  return null;
}
