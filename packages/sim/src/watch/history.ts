// What the watch checker reads: the commits (every transaction's write set
// and fate, recorded by RecordingTxnApi around whatever TxnApi the workload
// runs on) and, per watcher, everything it delivered in order.
import type { TxnApi, TxnHandle, TxnRunOutcome } from '../txn/api';
import { text } from '../keys';

/** WatchCommit is one transaction as the checker sees it: its writes (value null = delete) and its fate. */
export interface WatchCommit {
  id: number;
  /** status: ok committed at commitTs; fail never committed; info undetermined (it may have, at a ts nobody was told). */
  status: 'ok' | 'fail' | 'info';
  commitTs?: bigint;
  writes: { key: string; value: string | null }[];
}

/** WatchDelivered is one event a watcher delivered (keys and values as text). */
export interface WatchDelivered {
  type: 'put' | 'delete';
  key: string;
  value?: string;
  revision: bigint;
}

export type WatchItemRecord = WatchDelivered | { type: 'progress'; revision: bigint };

/** WatcherRecord is one watcher: its range [start, end) (end '' = unbounded), start revision and delivered items in order. */
export interface WatcherRecord {
  id: number;
  start: string;
  end: string;
  from: bigint;
  items: WatchItemRecord[];
  /** resumes: how many times the consumer closed its Watch and opened a new one from the last progress (one record across them). */
  resumes: number;
}

/**
 * RecordingTxnApi runs transactions through an inner TxnApi and records
 * each one's writes and outcome. The function may run more than once (the
 * driver retries write conflicts): only the writes of its last run count,
 * as only that run can commit.
 */
export class RecordingTxnApi implements TxnApi {
  readonly commits: WatchCommit[] = [];
  private seq = 0;

  constructor(private readonly inner: TxnApi) {}

  /** committedTs: the commit ts of every acknowledged commit so far (a watcher may start from one). */
  committedTs(): bigint[] {
    return this.commits.flatMap((c) => (c.status === 'ok' && c.commitTs !== undefined ? [c.commitTs] : []));
  }

  async run<T>(fn: (tx: TxnHandle) => Promise<T>): Promise<TxnRunOutcome<T>> {
    const id = ++this.seq;
    let writes = new Map<string, string | null>();
    const r = await this.inner.run(async (tx) => {
      writes = new Map();
      return fn({
        batchGet: (keys) => tx.batchGet(keys),
        put: (k, v) => {
          writes.set(k, text(v));
          tx.put(k, v);
        },
      });
    });
    const list = [...writes].map(([key, value]) => ({ key, value }));
    this.commits.push(r.status === 'ok' ? { id, status: 'ok', commitTs: r.commitTs, writes: list } : { id, status: r.status, writes: list });
    return r;
  }
}
