import type { KvOperation } from '../linearizability';
import type { NetnsTopology } from '../netns/topology';
import type { ChaosOptions } from './options';
import type { Proc } from './procs';

// run.ts: one chaos run's shared state, which every part reads and adds to.

/** Chaos is one run's shared state: options, the processes, the seeded PRNG and what was recorded. */
export interface Chaos {
  o: ChaosOptions;
  rng: () => number;
  dir: string;
  /** placements are placement's members: one process, or a replicated group (--placement-members). */
  placements: Proc[];
  stores: Proc[];
  /** net is the namespace topology (with --partitions); undefined: every process on 127.0.0.1. */
  net: NetnsTopology | undefined;
  faults: Record<string, number>;
  history: KvOperation[];
  counts: { ops: number; acked: number; unknown: number; failedReads: number };
  /** stall tracks availability: the longest time no client operation succeeded (ms), and when the last one did. */
  stall: { lastAckMs: number; longestMs: number };
  /** now is ms since the run started (one performance.now() clock for every client). */
  now: () => number;
}

/** key is the i-th key of the workload. */
export const key = (i: number): string => `k${String(i).padStart(3, '0')}`;

/** note counts one fault of kind and logs it. */
export function note(run: Chaos, kind: string, detail: string): void {
  run.faults[kind] = (run.faults[kind] ?? 0) + 1;
  log(run, `${kind} ${detail}`);
}

/** log prints one timestamped line of the run on stderr. */
export function log(run: Chaos, line: string): void {
  console.error(`[chaos ${(run.now() / 1000).toFixed(1)}s] ${line}`);
}
