import { describe, expect, it } from 'vitest';
import { removedPeerIsReAdded } from '../src/scenarios';

describe('store regressions found by the simulation', () => {
  it('STORE_BUGS #1: a store hosts the new peer when a removed replica is re-added to it', async () => {
    const r = await removedPeerIsReAdded();
    expect(r.ok, r.report).toBe(true);
  }, 60_000);
});
