import { describe, expect, it, vi } from 'vitest';
import { TXN_LIMITS, type TxnCommand } from '@flotilla/proto';
import { runTxn, type TxnOptions } from '../src/txn/txn';
import { TxnAbortedError } from '../src/txn/errors';
import { LockResolver, physicalMs } from '../src/txn/resolver';
import { Pacer } from '../src/txn/pacer';
import { Snapshot } from '../src/txn/snapshot';
import { TxnIf } from '../src/txn/txn-if';
import { ClientError } from '../src/errors';
import { FakeTso, FakeTxnTransport, Percolator } from './txn-fake';

// The Percolator driver against an in-memory Percolator (txn-fake.ts):
// 1PC and 2PC paths, read-your-writes, conflicts and retries, a client that
// dies between prewrite and commit, lost commit answers, limits, txnIf.

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);
const str = (x: Uint8Array | null | undefined): string | null => (x ? Buffer.from(x).toString('utf8') : null);

function setup(splits: string[] = ['m']): { t: FakeTxnTransport; store: Percolator } {
  const store = new Percolator(new FakeTso());
  return { t: new FakeTxnTransport(store, splits.map(b)), store };
}

function snapshotAt(t: FakeTxnTransport, ts: bigint, timeoutMs = 5000): Snapshot {
  return new Snapshot(t, ts, new LockResolver(t), () => new Pacer(Date.now() + timeoutMs));
}

async function readNow(t: FakeTxnTransport, keys: string[], timeoutMs = 5000): Promise<(string | null)[]> {
  const snap = snapshotAt(t, await t.timestamp(), timeoutMs);
  return (await snap.batchGet(keys.map(b))).map(str);
}

const types = (cmds: TxnCommand[]): string[] => cmds.map((c) => (c.type === 'prewrite' && c.onePc ? 'prewrite1pc' : c.type));

describe('txn driver (fake Percolator)', () => {
  it('commits a single-Region transaction in one phase, and its writes carry the commit ts as version', async () => {
    const { t } = setup();
    const out = await runTxn(t, (tx) => {
      tx.put('a', '1');
      tx.put('b', '2');
      return 'done';
    });
    expect(out.value).toBe('done');
    expect(types(t.sent)).toEqual(['prewrite1pc']);
    const snap = snapshotAt(t, await t.timestamp());
    expect(await snap.getWithVersion('a')).toEqual({ value: b('1'), version: out.commitTs, lease: null });
    expect(out.commitTs).toBeGreaterThan(out.startTs);
  });

  it('commits a cross-Region transaction in two phases: parallel prewrites, the primary, then the secondaries', async () => {
    const { t } = setup(['g', 'p']);
    const out = await runTxn(t, (tx) => {
      tx.put('a', '1');
      tx.put('h', '2');
      tx.put('q', '3');
    }, { waitForSecondaries: true });
    expect(types(t.sent)).toEqual(['prewrite', 'prewrite', 'prewrite', 'commit', 'commit', 'commit']);
    const primaryCommit = t.sent[3] as Extract<TxnCommand, { type: 'commit' }>;
    expect(str(primaryCommit.keys[0])).toBe('a');
    expect(primaryCommit.keys).toHaveLength(1);
    expect(await readNow(t, ['a', 'h', 'q'])).toEqual(['1', '2', '3']);
    const snap = snapshotAt(t, await t.timestamp());
    expect((await snap.getWithVersion('q'))?.version).toBe(out.commitTs);
  });

  it('reads its own buffered writes (get, batchGet, scan) at start_ts and commits nothing for a read-only function', async () => {
    const { t } = setup(['m']);
    await runTxn(t, (tx) => {
      for (const k of ['a', 'c', 'n', 'x']) tx.put(k, `v${k}`);
    });
    t.sent.length = 0;
    const ro = await runTxn(t, async (tx) => {
      expect(str(await tx.get('a'))).toBe('va');
      return (await tx.scan('', '')).map((p) => str(p.key));
    });
    expect(ro.value).toEqual(['a', 'c', 'n', 'x']);
    expect(ro.commitTs).toBe(ro.startTs);
    expect(t.sent).toEqual([]);
    await runTxn(t, async (tx) => {
      tx.put('b', 'new');
      tx.delete('n');
      expect((await tx.batchGet(['a', 'b', 'n'])).map(str)).toEqual(['va', 'new', null]);
      expect((await tx.getWithVersion('b'))?.version).toBeNull();
      expect((await tx.scan('', '', 3)).map((p) => str(p.key))).toEqual(['a', 'b', 'c']);
      expect((await tx.scan('b', '')).map((p) => str(p.key))).toEqual(['b', 'c', 'x']);
    });
    expect(await readNow(t, ['b', 'n'])).toEqual(['new', null]);
  });

  it('retries the whole function on a write conflict and ends with the right result', async () => {
    const { t } = setup(['m']);
    await runTxn(t, (tx) => tx.put('counter', '0'));
    let runs = 0;
    const out = await runTxn(t, async (tx) => {
      runs++;
      const n = Number(str(await tx.get('counter')));
      // A competing transaction commits the same key after our start_ts, once.
      if (runs === 1) await runTxn(t, (other) => other.put('counter', '100'));
      tx.put('counter', String(n + 1));
      tx.put('z', 'side');
    });
    expect(runs).toBe(2);
    expect(out.attempts).toBe(2);
    expect(await readNow(t, ['counter'])).toEqual(['101']);
  });

  it('aborts with WriteConflict when retries are off, and RetriesExhausted when the budget is spent; nothing stays locked', async () => {
    const { t, store } = setup(['m']);
    const conflicting = async (opts: TxnOptions): Promise<unknown> =>
      runTxn(t, async (tx) => {
        await tx.get('k');
        await runTxn(t, (o) => o.put('k', 'other'));
        tx.put('k', 'mine');
        tx.put('z', 'mine');
      }, opts).catch((e: unknown) => e);
    const e0 = await conflicting({ maxRetries: 0 });
    expect(e0).toBeInstanceOf(TxnAbortedError);
    expect((e0 as TxnAbortedError).code).toBe('TxnAborted');
    expect((e0 as TxnAbortedError).reason).toBe('WriteConflict');
    const e2 = (await conflicting({ maxRetries: 2, backoff: { baseMs: 1, maxMs: 2 } })) as TxnAbortedError;
    expect(e2.reason).toBe('RetriesExhausted');
    expect(store.locks.size).toBe(0);
    expect(await readNow(t, ['k', 'z'])).toEqual(['other', null]);
  });

  it('keeps a counter exact under 16 concurrent cross-Region increments', async () => {
    const { t } = setup(['m']);
    await runTxn(t, (tx) => {
      tx.put('a-count', '0');
      tx.put('z-count', '0');
    });
    await Promise.all(
      Array.from({ length: 16 }, () =>
        runTxn(t, async (tx) => {
          const [a, z] = (await tx.batchGet(['a-count', 'z-count'])).map((v) => Number(str(v)));
          tx.put('a-count', String(a! + 1));
          tx.put('z-count', String(z! + 1));
        }, { maxRetries: 100, backoff: { baseMs: 1, maxMs: 20 } }),
      ),
    );
    expect(await readNow(t, ['a-count', 'z-count'])).toEqual(['16', '16']);
  });

  it('a client that dies after prewrite leaves locks that the next reader rolls back once their TTL passes', async () => {
    const { t, store } = setup(['m']);
    await runTxn(t, (tx) => {
      tx.put('a', 'old');
      tx.put('x', 'old');
    });
    let startTs = 0n;
    const died = await runTxn(t, (tx) => {
      tx.put('a', 'new');
      tx.put('x', 'new');
    }, { lockTtlMs: 200, hooks: { afterPrewrite: (i) => { startTs = i.startTs; throw new Error('client died'); } } }).catch((e: unknown) => e);
    expect((died as Error).message).toBe('client died');
    expect(store.locks.size).toBe(2);
    expect(await readNow(t, ['x', 'a'])).toEqual(['old', 'old']);
    expect(Date.now()).toBeGreaterThanOrEqual(physicalMs(startTs) + 200); // the reader waited out the TTL before rolling back
    expect(store.locks.size).toBe(0);
  });

  it('a client that dies after committing the primary: a reader of a secondary commits it from the primary', async () => {
    const { t, store } = setup(['m']);
    const died = await runTxn(t, (tx) => {
      tx.put('a', 'new');
      tx.put('x', 'new');
    }, { hooks: { afterCommitPrimary: () => { throw new Error('client died'); } } }).catch((e: unknown) => e);
    expect((died as Error).message).toBe('client died');
    expect(store.locks.size).toBe(1);
    expect(await readNow(t, ['x'])).toEqual(['new']);
    expect(store.locks.size).toBe(0);
  });

  it('a snapshot read waits for a live lock and gives up with Timeout at its deadline', async () => {
    const { t } = setup(['m']);
    await runTxn(t, (tx) => {
      tx.put('a', 'v');
      tx.put('x', 'v');
    }, { lockTtlMs: 60_000, hooks: { afterPrewrite: () => { throw new Error('stop'); } } }).catch(() => {});
    const err = await readNow(t, ['x'], 300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe('Timeout');
    expect((err as Error).message).toMatch(/still locked/);
  });

  it('a prewrite that meets a live lock of a newer transaction aborts at once (WriteConflict, retryable) instead of waiting for it', async () => {
    const { t, store } = setup(['m']);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inFn = new Promise<void>((r) => (entered = r));
    // The older transaction takes its start_ts, then waits in its function while a newer one locks 'a' and dies.
    const older = runTxn(t, async (tx) => {
      entered();
      await gate;
      tx.put('x', 'old');
      tx.put('a', 'old');
    }, { maxRetries: 0, timeoutMs: 20_000 }).catch((e: unknown) => e);
    await inFn;
    await runTxn(t, (tx) => {
      tx.put('a', 'new');
      tx.put('y', 'new');
    }, { lockTtlMs: 60_000, hooks: { afterPrewrite: () => { throw new Error('client died'); } } }).catch(() => {});
    const t0 = Date.now();
    release();
    const err = await older;
    expect(err).toBeInstanceOf(TxnAbortedError);
    expect((err as TxnAbortedError).reason).toBe('WriteConflict');
    expect((err as Error).message).toMatch(/started after ours/);
    expect(Date.now() - t0).toBeLessThan(10_000); // not the 20 s deadline: it did not wait for the 60 s lock
    expect([...store.locks.keys()].sort()).toEqual(['a', 'y'].map((k) => Buffer.from(k).toString('hex'))); // only the dead one's locks; its own on x was rolled back
  });

  it('learns the outcome of a primary commit whose answer was lost, and says Undetermined only when it cannot', async () => {
    const { t } = setup(['m']);
    let lost = 0;
    t.fault = (cmd) => (cmd.type === 'commit' && lost++ === 0 ? 'lose' : undefined);
    const out = await runTxn(t, (tx) => {
      tx.put('a', '1');
      tx.put('x', '1');
    });
    expect(await readNow(t, ['a'])).toEqual(['1']);
    expect((await snapshotAt(t, await t.timestamp()).getWithVersion('a'))?.version).toBe(out.commitTs);
    t.fault = (cmd) => (cmd.type === 'commit' ? 'lose' : cmd.type === 'checkTxnStatus' ? 'fail' : undefined);
    const err = await runTxn(t, (tx) => {
      tx.put('a', '2');
      tx.put('x', '2');
    }).catch((e: unknown) => e);
    expect((err as ClientError).code).toBe('Undetermined');
  });

  it('heartbeats keep a slow commit alive past its lock TTL: a reader meeting its locks waits instead of rolling it back', async () => {
    const { t } = setup(['m']);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = runTxn(t, (tx) => {
      tx.put('a', 'new');
      tx.put('x', 'new');
    }, { lockTtlMs: 100, maxRetries: 0, hooks: { afterPrewrite: () => gate } });
    // Three heartbeats at 50 ms intervals: the 100 ms TTL has passed since start_ts.
    await vi.waitFor(() => expect(t.sent.filter((c) => c.type === 'txnHeartBeat').length).toBeGreaterThanOrEqual(3), { timeout: 5000 });
    const reading = readNow(t, ['x']);
    await vi.waitFor(() => expect(t.sent.some((c) => c.type === 'checkTxnStatus')).toBe(true), { timeout: 5000 });
    release();
    const out = await slow;
    expect(out.attempts).toBe(1);
    expect(await reading).toEqual([null]); // it read at a ts before the commit
    expect(await readNow(t, ['a', 'x'])).toEqual(['new', 'new']);
  });

  it('refuses an oversized transaction before sending anything, naming the limit', async () => {
    const { t } = setup();
    const keys = await runTxn(t, (tx) => {
      for (let i = 0; i <= TXN_LIMITS.maxKeys; i++) tx.put(`k${i}`, 'v');
    }).catch((e: unknown) => e);
    expect((keys as ClientError).code).toBe('InvalidArgument');
    expect((keys as Error).message).toMatch(/TXN_LIMITS\.maxKeys/);
    const big = new Uint8Array(6 * 1024 * 1024);
    const bytes = await runTxn(t, (tx) => {
      for (let i = 0; i < 3; i++) tx.put(`b${i}`, big);
    }).catch((e: unknown) => e);
    expect((bytes as Error).message).toMatch(/TXN_LIMITS\.maxBytes/);
    expect(t.sent).toEqual([]);
  });

  it('txnIf takes the then branch when the compares hold and the else branch when not, and locks compared keys', async () => {
    const { t } = setup(['m']);
    const run = <T>(fn: Parameters<typeof runTxn<T>>[1], opts?: TxnOptions) => runTxn(t, fn, opts);
    const first = await new TxnIf(run, [{ key: 'leader', target: 'exists', op: '=', value: false }])
      .then([{ op: 'put', key: 'leader', value: 'n1' }, { op: 'get', key: 'leader' }])
      .else([{ op: 'get', key: 'leader' }])
      .commit();
    expect(first.succeeded).toBe(true);
    expect(first.results[1]).toMatchObject({ op: 'get', value: b('n1'), version: null });
    const second = await new TxnIf(run, [{ key: 'leader', target: 'exists', op: '=', value: false }])
      .then([{ op: 'put', key: 'leader', value: 'n2' }])
      .else([{ op: 'get', key: 'leader' }])
      .commit();
    expect(second.succeeded).toBe(false);
    expect(second.results[0]).toMatchObject({ op: 'get', value: b('n1'), version: first.commitTs });
    const byVersion = await new TxnIf(run, [
      { key: 'leader', target: 'version', op: '=', value: first.commitTs },
      { key: 'leader', target: 'value', op: '=', value: 'n1' },
    ])
      .then([{ op: 'put', key: 'zz', value: 'moved' }])
      .commit();
    expect(byVersion.succeeded).toBe(true);
    const prewrites = t.sent.filter((c): c is Extract<TxnCommand, { type: 'prewrite' }> => c.type === 'prewrite');
    const lastOps = prewrites.slice(-2).flatMap((p) => p.mutations.map((m) => `${m.op}:${str(m.key)}`));
    expect(lastOps.sort()).toEqual(['lock:leader', 'put:zz']);
    expect(await readNow(t, ['zz', 'leader'])).toEqual(['moved', 'n1']);
  });

  it('txnIf runs again when a compared key changes between its read and its commit', async () => {
    const { t } = setup(['m']);
    await runTxn(t, (tx) => tx.put('flag', 'on'));
    let runs = 0;
    const run = <T>(fn: Parameters<typeof runTxn<T>>[1], opts?: TxnOptions) =>
      runTxn(t, async (tx) => {
        runs++;
        const v = await fn(tx);
        if (runs === 1) await runTxn(t, (o) => o.put('flag', 'off'));
        return v;
      }, opts);
    const r = await new TxnIf(run, [{ key: 'flag', target: 'value', op: '=', value: 'on' }]).then([{ op: 'put', key: 'z', value: 'yes' }]).else([{ op: 'put', key: 'z', value: 'no' }]).commit();
    expect(runs).toBe(2);
    expect(r.succeeded).toBe(false);
    expect(await readNow(t, ['z'])).toEqual(['no']);
  });

  it('rejects bad compares and ops before running', () => {
    const run = () => Promise.reject(new Error('must not run'));
    expect(() => new TxnIf(run, [{ key: '', target: 'exists', op: '=', value: true }])).toThrow(/key must not be empty/);
    expect(() => new TxnIf(run, [{ key: 'k', target: 'version', op: '=', value: -1 }])).toThrow(/non-negative integer version/);
    expect(() => new TxnIf(run, [{ key: 'k', target: 'exists', op: '<', value: true } as never])).toThrow(/takes = or !=/);
  });
});
