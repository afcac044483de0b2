import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers';

// --advertise-raft did not exist: a store always announced the address its
// raft listener was bound to, so one bound to 0.0.0.0 announced 0.0.0.0.
let c: TestCluster;
beforeAll(async () => {
  c = await startCluster(1, { advertiseRaft: '127.0.0.1:45999' });
}, 30_000);
afterAll(async () => {
  await c?.close();
});

describe('advertiseRaft', () => {
  it('is the raft address the store reports and placement hands to other stores', async () => {
    const h = c.stores[0]!;
    expect(h.raftAddress).toBe('127.0.0.1:45999');
    const meta = await c.pd.getStore(h.storeId);
    expect(meta?.labels?.raftAddress).toBe('127.0.0.1:45999');
  });
});
