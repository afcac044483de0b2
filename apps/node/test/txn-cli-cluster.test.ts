import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTxn, type TxnTransport } from '@flotilla/client';
import type { TxnResult } from '@flotilla/proto';
import { startTestCluster, type TestCluster } from '@flotilla/store/testing';
import { runCli } from './helpers';

// Transactions end to end on real stores (three stores, three Regions,
// SQLite files, sockets): the client driver over the store's Percolator,
// and `flotilla txn` / `get --ts` / `scan --ts` through a real CLI process.

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster({ stores: 3, splitKeys: ['g', 'p'] });
}, 60_000);
afterAll(async () => {
  await cluster?.close();
});

const str = (x: Uint8Array | null | undefined): string | null => (x ? Buffer.from(x).toString('utf8') : null);

/** recording wraps a transport and lists the results of every command the stores answered (a command is rebuilt per routing attempt, so builds are not counted). */
function recording(t: TxnTransport): { t: TxnTransport; answered: TxnResult[] } {
  const answered: TxnResult[] = [];
  return {
    answered,
    t: {
      timestamp: () => t.timestamp(),
      forKeys: async (keys, build) => {
        const groups = await t.forKeys(keys, build);
        for (const g of groups) answered.push(g.result);
        return groups;
      },
      forKey: async (key, cmd) => {
        const r = await t.forKey(key, cmd);
        answered.push(r);
        return r;
      },
      batchGet: (keys, ts) => t.batchGet(keys, ts),
      scanPage: (s, e, l, ts, k) => t.scanPage(s, e, l, ts, k),
    },
  };
}

/** kinds names the answers, heartbeats left out (a commit slower than half the lock TTL sends one: a loaded machine). */
const kinds = (rs: TxnResult[]): string[] => rs.filter((r) => r.type !== 'txnHeartBeat').map((r) => r.type + (r.type === 'prewrite' && r.onePcCommitTs !== undefined ? ':1pc' : ''));

async function readNow(keys: string[]): Promise<(string | null)[]> {
  const snap = await cluster.client.snapshot();
  return (await snap.batchGet(keys)).map(str);
}

describe('transactions on a real cluster', () => {
  it('a cross-Region transaction commits atomically with 2PC; a one-Region one with 1PC; txn keys never alias raw keys', async () => {
    const c = cluster.client;
    const rec = recording(c.txnTransport());
    const out = await runTxn(rec.t, (tx) => {
      tx.put('a/acct', '10');
      tx.put('h/acct', '20');
      tx.put('q/acct', '30');
    });
    expect(kinds(rec.answered)).toEqual(['prewrite', 'prewrite', 'prewrite', 'commit']); // the secondaries commit in the background
    expect(await readNow(['a/acct', 'h/acct', 'q/acct'])).toEqual(['10', '20', '30']);
    const v = await (await c.snapshot()).getWithVersion('q/acct');
    expect(v?.version).toBe(out.commitTs);
    expect(await c.get('a/acct')).toBeNull(); // the raw keyspace is another keyspace
    rec.answered.length = 0;
    await runTxn(rec.t, (tx) => {
      tx.put('a/one', '1');
      tx.put('b/one', '2');
    });
    expect(kinds(rec.answered)).toEqual(['prewrite:1pc']);
    expect(await readNow(['a/one', 'b/one'])).toEqual(['1', '2']);
  }, 30_000);

  it('concurrent conflicting transfers retry and keep the total; every snapshot sums to it', async () => {
    const c = cluster.client;
    const accounts = ['b/x', 'i/x', 'r/x', 'z/x'];
    await c.txn((tx) => accounts.forEach((k) => tx.put(k, '100')));
    // Each committed transfer's start/commit ts and what it read and wrote: printed when the invariant breaks.
    const hist: string[] = [];
    const logger = { debug() {}, info() {}, warn() {}, error: (o: object, m?: string) => hist.push(`ERROR ${m} ${JSON.stringify(o)}`) };
    const transfer = async (from: string, to: string) => {
      const out = await runTxn(c.txnTransport(), async (tx) => {
        const vs = await tx.batchGetWithVersion([from, to]);
        const [f, t] = vs.map((x) => Number(str(x!.value)));
        tx.put(from, String(f! - 1));
        tx.put(to, String(t! + 1));
        return `${from}=${f}@${vs[0]!.version} ${to}=${t}@${vs[1]!.version} -> ${f! - 1},${t! + 1}`;
      }, { maxRetries: 50, timeoutMs: 60_000, logger });
      hist.push(`start ${out.startTs} commit ${out.commitTs} attempts ${out.attempts}: ${out.value}`);
    };
    const sums: number[] = [];
    const reader = (async () => {
      for (let i = 0; i < 5; i++) {
        const snap = await c.snapshot();
        const vals = await snap.batchGetWithVersion(accounts);
        hist.push(`snapshot ${snap.ts}: ${vals.map((v, j) => `${accounts[j]}=${str(v?.value)}@${v?.version}`).join(' ')}`);
        sums.push(vals.reduce((sum, v) => sum + Number(str(v?.value)), 0));
      }
    })();
    await Promise.all(Array.from({ length: 8 }, (_, i) => transfer(accounts[i % 4]!, accounts[(i + 1) % 4]!)));
    await reader;
    const why = () => `\n${[...hist].sort().join('\n')}`;
    expect(sums, why()).toEqual([400, 400, 400, 400, 400]);
    expect(await readNow(accounts), why()).toEqual(['100', '100', '100', '100']);
  }, 90_000);

  it('a client that dies after prewrite leaves locks a reader resolves; txnIf takes each branch', async () => {
    const c = cluster.client;
    await c.txn((tx) => {
      tx.put('c/lock', 'old');
      tx.put('s/lock', 'old');
    });
    let startTs = 0n;
    const died = await c
      .txn((tx) => {
        tx.put('c/lock', 'new');
        tx.put('s/lock', 'new');
      }, { lockTtlMs: 500, hooks: { afterPrewrite: (i) => { startTs = i.startTs; throw new Error('client died'); } } })
      .catch((e: unknown) => e);
    expect((died as Error).message).toBe('client died');
    const readAt = Date.now();
    expect(await readNow(['s/lock', 'c/lock'])).toEqual(['old', 'old']);
    // It waited out the TTL (measured on the oracle's clock, which may run a little ahead of this one), then rolled back through the primary.
    expect(Date.now(), `start_ts ${startTs} (physical ${Number(startTs >> 18n)}), read began ${readAt}`).toBeGreaterThanOrEqual(Number(startTs >> 18n) + 500 - 50);
    const yes = await c.txnIf([{ key: 'c/lock', target: 'value', op: '=', value: 'old' }]).then([{ op: 'put', key: 's/lock', value: 'then' }]).else([{ op: 'put', key: 's/lock', value: 'else' }]).commit();
    const no = await c.txnIf([{ key: 'c/lock', target: 'exists', op: '=', value: false }]).then([{ op: 'put', key: 's/lock', value: 'then2' }]).else([{ op: 'get', key: 's/lock' }]).commit();
    expect([yes.succeeded, no.succeeded]).toEqual([true, false]);
    expect(no.results[0]).toMatchObject({ op: 'get', version: yes.commitTs });
    expect(str((no.results[0] as { value: Uint8Array }).value)).toBe('then');
  }, 30_000);

  it('flotilla txn, get --ts and scan --ts through a real CLI process', async () => {
    const p = ['--placement', cluster.placementAddress];
    const put = await runCli(['txn', ...p, 'if cli/k missing', 'put cli/k v1', 'put g0/cli v2', 'else', 'get cli/k']);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    expect(put.stdout).toMatch(/^SUCCESS\ncommit_ts \d+\n$/);
    const commitTs = BigInt(/commit_ts (\d+)/.exec(put.stdout)![1]!);
    const [again, get, before, scan] = await Promise.all([
      runCli(['txn', ...p, '--json', 'if cli/k missing', 'put cli/k v9', 'else', 'get cli/k']),
      runCli(['get', ...p, '--ts', 'now', 'cli/k']),
      runCli(['get', ...p, '--ts', String(commitTs - 1n), 'cli/k']),
      runCli(['scan', ...p, '--ts', String(commitTs), '--json', 'cli/', 'g1']),
    ]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ succeeded: false, results: [{ op: 'get', key: 'cli/k', value: 'v1', version: String(commitTs) }] });
    expect([get.code, get.stdout], get.stderr).toEqual([0, 'v1\n']);
    expect(before.code, before.stderr).toBe(1);
    expect(scan.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([
      { key: 'cli/k', value: 'v1', version: String(commitTs) },
      { key: 'g0/cli', value: 'v2', version: String(commitTs) },
    ]);
  }, 60_000);
});
