import { afterEach, expect, it } from 'vitest';
import { runTxn } from '@flotilla/client';
import { startTestCluster, type TestCluster } from '@flotilla/store/testing';
import { exited, runCli, startCli } from './helpers';

// `flotilla watch` as a real child process against a real one-store
// cluster (issue #18 item 4): --rev replays the history above a revision
// and goes on with live changes, one line per change, in revision order.

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

it('prints the changes under a prefix from --rev on, as JSON or tab-separated lines', { timeout: 50_000 }, async () => {
  cluster = await startTestCluster({ stores: 1 });
  const c = cluster;
  const t = c.client.txnTransport();
  const rev = await c.client.timestamp();
  const a = await runTxn(t, (tx) => {
    tx.put('cfg/a', '1');
    tx.put('other', 'x');
  });
  const child = startCli(['watch', '--placement', c.placementAddress, '--rev', String(rev), '--json', '--count', '3', 'cfg/']);
  const b = await runTxn(t, (tx) => tx.delete('cfg/a'));
  const d = await runTxn(t, (tx) => {
    tx.put('cfg/b', '2');
    tx.put('cfg/c', '3');
  });
  const r = await exited(child, 40_000);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
    { type: 'put', key: 'cfg/a', value: '1', revision: String(a.commitTs) },
    { type: 'delete', key: 'cfg/a', revision: String(b.commitTs) },
    { type: 'put', key: 'cfg/b', value: '2', revision: String(d.commitTs) },
  ]);
  // The tab form, from the revision of the delete (inclusive).
  const tab = await runCli(['watch', '--placement', c.placementAddress, '--rev', String(b.commitTs), '--count', '2', 'cfg/'], { timeoutMs: 30_000 });
  expect(tab.code).toBe(0);
  expect(tab.stdout).toBe(`${b.commitTs}\tdelete\tcfg/a\n${d.commitTs}\tput\tcfg/b\t2\n`);
  // --prev-kv adds the value before each change.
  const prev = await runCli(['watch', '--placement', c.placementAddress, '--rev', String(b.commitTs), '--count', '1', '--json', '--prev-kv', 'cfg/'], { timeoutMs: 30_000 });
  expect(prev.code).toBe(0);
  expect(JSON.parse(prev.stdout)).toEqual({ type: 'delete', key: 'cfg/a', revision: String(b.commitTs), prevValue: '1' });
  // A revision in the future is refused (exit 1), a malformed one is a usage error (exit 2).
  const future = await runCli(['watch', '--placement', c.placementAddress, '--rev', String(rev + (3_600_000n << 18n)), 'cfg/'], { timeoutMs: 30_000 });
  expect(future.code).toBe(1);
  expect(future.stderr).toMatch(/in the future/);
  const bad = await runCli(['watch', '--placement', c.placementAddress, '--rev', 'soon', 'cfg/'], { timeoutMs: 30_000 });
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--rev: expected a positive revision/);
});

it('has --help', async () => {
  const r = await runCli(['watch', '--help']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/flotilla watch/);
  expect(r.stdout).toMatch(/--rev/);
  expect(r.stdout).toMatch(/--json/);
});
