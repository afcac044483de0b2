// ModelTxnApi: a tiny in-memory multi-version store with a counter for an
// oracle: the reference implementation the txn harness runs against when
// no cluster is involved (the harness's and checkers' wiring, tested without
// the store). Three modes:
//   'serializable'  snapshot reads + commit-time validation of every key read
//                   and written (no G2 either)
//   'snapshot'      snapshot isolation with first-committer-wins (what
//                   Percolator gives: write skew possible, lost updates not)
//   'broken'        snapshot reads with no write-conflict check at all (the
//                   planted bug: lost updates, wrong bank totals)
// Operations yield to the event loop in between (a seeded number of
// microtask turns), so concurrent transactions interleave.
import type { TxnApi, TxnHandle, TxnRunOutcome } from './api';

export type ModelMode = 'serializable' | 'snapshot' | 'broken';

interface Version {
  commitTs: bigint;
  value: Uint8Array;
}

export class ModelTxnApi implements TxnApi {
  private ts = 0n;
  private readonly versions = new Map<string, Version[]>();
  /** commits / aborts count outcomes (tests assert the workload conflicted at all). */
  commits = 0;
  aborts = 0;
  /** conflicts counts attempts that failed validation (retried or not). */
  conflicts = 0;

  constructor(
    private readonly mode: ModelMode,
    private readonly rng: () => number,
    /** maxRetries: how many times a conflicting function runs again (as the driver does). */
    private readonly maxRetries = 3,
  ) {}

  private async yieldTurns(): Promise<void> {
    for (let i = Math.floor(this.rng() * 4); i > 0; i--) await Promise.resolve();
  }

  private readAt(key: string, ts: bigint): Version | undefined {
    const vs = this.versions.get(key) ?? [];
    for (let i = vs.length - 1; i >= 0; i--) if (vs[i]!.commitTs <= ts) return vs[i];
    return undefined;
  }

  async run<T>(fn: (tx: TxnHandle) => Promise<T>): Promise<TxnRunOutcome<T>> {
    let reason = '';
    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      const startTs = ++this.ts;
      const writes = new Map<string, Uint8Array>();
      const read = new Set<string>();
      const tx: TxnHandle = {
        batchGet: async (keys) => {
          await this.yieldTurns();
          return keys.map((k) => {
            read.add(k);
            return writes.get(k) ?? this.readAt(k, startTs)?.value ?? null;
          });
        },
        put: (k, v) => void writes.set(k, v),
      };
      const value = await fn(tx);
      await this.yieldTurns();
      const checked = this.mode === 'serializable' ? new Set([...read, ...writes.keys()]) : this.mode === 'snapshot' ? new Set(writes.keys()) : new Set<string>();
      const conflict = [...checked].find((k) => (this.versions.get(k) ?? []).some((v) => v.commitTs > startTs));
      if (conflict !== undefined) {
        reason = `WriteConflict on ${conflict}`;
        this.conflicts++;
        continue;
      }
      const commitTs = writes.size > 0 ? ++this.ts : startTs;
      for (const [k, v] of writes) {
        let vs = this.versions.get(k);
        if (!vs) this.versions.set(k, (vs = []));
        vs.push({ commitTs, value: v });
      }
      this.commits++;
      return { status: 'ok', value, startTs, commitTs };
    }
    this.aborts++;
    return { status: 'fail', error: reason };
  }
}
