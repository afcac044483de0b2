import { afterEach, describe, expect, it } from 'vitest';
import { utf8, type Region } from '@flotilla/proto';
import { writeInitialRegion } from '../../src/bootstrap';
import { checkStalePeer, recover } from '../../src/operation/life';
import { unitStore, type UnitStore } from './fake-context';

let u: UnitStore | undefined;
afterEach(() => {
  u?.close();
  u = undefined;
});

const region = (id: number, start: string, end: string, version: number, peerId: number, storeId = 1): Region => ({
  id,
  startKey: utf8(start),
  endKey: utf8(end),
  epoch: { confVer: 5, version },
  peers: [{ id: peerId, storeId, role: 'voter' }],
});

/** twoMergedAway: this store still holds Regions 1007 [k007, k023) and 1002 [k023, ∞), which placement merged into 1021 [k000, ∞). */
function twoMergedAway(local1021?: Region): UnitStore {
  const merged = region(1021, 'k000', '', 12, 2000);
  const store = unitStore({}, 1, {
    getRegionById: async () => null,
    getRegion: async () => ({ region: merged, leader: merged.peers[0] }) as never,
  });
  writeInitialRegion(store.ctx, region(1007, 'k007', 'k023', 6, 1012));
  writeInitialRegion(store.ctx, region(1002, 'k023', '', 3, 1005));
  if (local1021) writeInitialRegion(store.ctx, local1021);
  recover(store.ctx);
  return store;
}

describe('stale-peer check of merged-away neighbours', () => {
  it('two neighbours that were both merged away do not keep each other alive (sim seed 90025)', async () => {
    u = twoMergedAway();
    for (const id of [1002, 1007]) {
      const p = u.ctx.peers.get(id)!;
      await checkStalePeer(u.ctx, p);
      expect(p.mailbox).toContainEqual({ kind: 'destroy', cleanData: false, reason: 'region merged away' });
    }
  });

  it('a local peer of the covering Region that is behind placement keeps them: it may still absorb them from its log', async () => {
    // The local 1021 is at version 7 [k000, k007); placement has it at 12 over everything.
    u = twoMergedAway(region(1021, 'k000', 'k007', 7, 2000));
    for (const id of [1002, 1007]) {
      const p = u.ctx.peers.get(id)!;
      await checkStalePeer(u.ctx, p);
      expect(p.mailbox.filter((m) => m.kind === 'destroy')).toEqual([]);
    }
  });
});
