import { describe, expect, it } from 'vitest';
import { removedPeerIsReAdded, secondPeerOnOneStoreIsRejected } from '../src/scenarios';

describe('store regressions found by the simulation', () => {
  it('STORE_BUGS #1: a store hosts the new peer when a removed replica is re-added to it', async () => {
    const r = await removedPeerIsReAdded();
    expect(r.ok, r.report).toBe(true);
  }, 60_000);

  it('STORE_BUGS #5: a conf change adding a second peer of a Region on one store is refused', async () => {
    const r = await secondPeerOnOneStoreIsRejected();
    expect(r.ok, r.report).toBe(true);
  }, 60_000);
});
