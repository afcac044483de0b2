import { afterEach, describe, expect, it } from 'vitest';
import type { Region } from '@flotilla/proto';
import type { RegionHeartbeat, RegionHeartbeatResponse, RegionHeartbeatResult } from '@flotilla/placement/client';
import { PlacementError, PlacementErrorCode } from '@flotilla/placement/client';
import { REGION_HEARTBEAT_BATCH, REGION_HEARTBEAT_REQUESTS, regionHeartbeat, regionHeartbeats } from '../../src/operation/pd';
import type { Peer } from '../../src/raft/peer';
import { unitStore, type UnitStore } from './fake-context';

// The store's Region heartbeats go to placement in batches (operation/pd.ts).

const stores: UnitStore[] = [];
afterEach(() => {
  for (const u of stores.splice(0)) u.close();
});

/** fakePeer is the part of a Peer a heartbeat reads: a led, initialized Region with no lagging followers. */
function fakePeer(regionId: number): Peer {
  const region: Region = { id: regionId, startKey: Buffer.from([regionId]), endKey: Buffer.from([regionId + 1]), epoch: { version: 1, confVer: 1 }, peers: [{ id: regionId * 10, storeId: 1, role: 'voter' }] };
  return {
    regionId,
    peerId: regionId * 10,
    region,
    isLeader: true,
    initialized: true,
    hibernating: false,
    operatorActive: false,
    lastRegionHeartbeatMs: 0,
    approximateSizeBytes: regionId,
    approximateKeys: 1,
    lastHeard: new Map(),
    raw: { raft: { prs: { progress: new Map() } } },
    apply: { truncatedIndex: 0 },
    flow: { take: () => ({ readKeysPerSec: 0, readBytesPerSec: 0, writeKeysPerSec: 0, writeBytesPerSec: 0 }) },
    mailbox: [],
    meta: () => region.peers[0]!,
  } as unknown as Peer;
}

interface Recorder {
  batches: RegionHeartbeat[][];
  singles: RegionHeartbeat[];
  maxInFlight: number;
  release: () => void;
}

/** recorder: a placement that answers batches when released (to see what queues behind them), or refuses them as an old placement would. */
function recorder(opts: { old?: boolean; operatorFor?: number } = {}): { api: object; rec: Recorder } {
  let inFlight = 0;
  const held: (() => void)[] = [];
  let hold = true;
  const rec: Recorder = {
    batches: [],
    singles: [],
    maxInFlight: 0,
    release: () => {
      hold = false;
      for (const h of held.splice(0)) h();
    },
  };
  const answer = (hb: RegionHeartbeat): RegionHeartbeatResponse =>
    hb.region.id === opts.operatorFor ? { stale: false, operator: { operatorId: 1, kind: 'transfer-leader', step: { type: 'removePeer', peer: hb.leader }, stepIndex: 0, stepCount: 1 } } : { stale: false };
  const api = {
    regionHeartbeat: async (hb: RegionHeartbeat) => {
      rec.singles.push(hb);
      return answer(hb);
    },
    regionHeartbeats: async (hbs: RegionHeartbeat[]): Promise<RegionHeartbeatResult[]> => {
      if (opts.old) throw new PlacementError(PlacementErrorCode.UnknownMethod, 'unknown method "regionHeartbeats"');
      rec.batches.push(hbs);
      rec.maxInFlight = Math.max(rec.maxInFlight, ++inFlight);
      if (hold) await new Promise<void>((r) => held.push(r));
      inFlight--;
      return hbs.map(answer);
    },
  };
  return { api, rec };
}

describe('batched Region heartbeats', () => {
  it('sends a periodic round as bounded batches, at most two in flight, each Region once', async () => {
    const { api, rec } = recorder();
    const u = unitStore({}, 1, api);
    stores.push(u);
    for (let id = 1; id <= 700; id++) u.ctx.peers.set(id, fakePeer(id));
    const round = regionHeartbeats(u.ctx);
    // The same Regions asked again while queued (a split's heartbeat, a leadership change) do not queue twice.
    for (let id = 600; id <= 700; id++) void regionHeartbeat(u.ctx, u.ctx.peers.get(id)!);
    await expect.poll(() => rec.batches.length).toBe(REGION_HEARTBEAT_REQUESTS);
    rec.release();
    await round;
    expect(rec.maxInFlight).toBeLessThanOrEqual(REGION_HEARTBEAT_REQUESTS);
    expect(rec.batches.every((b) => b.length <= REGION_HEARTBEAT_BATCH)).toBe(true);
    expect(rec.batches.length).toBe(Math.ceil(700 / REGION_HEARTBEAT_BATCH));
    const reported = rec.batches.flat().map((hb) => hb.region.id);
    expect(new Set(reported).size).toBe(700);
    expect(reported).toHaveLength(700);
    expect(rec.singles).toEqual([]);
  });

  it("delivers an operator step from a batch's answer to its Region, and resolves each caller once answered", async () => {
    const { api, rec } = recorder({ operatorFor: 3 });
    rec.release();
    const u = unitStore({}, 1, api);
    stores.push(u);
    for (let id = 1; id <= 5; id++) u.ctx.peers.set(id, fakePeer(id));
    await Promise.all([1, 2, 3, 4, 5].map((id) => regionHeartbeat(u.ctx, u.ctx.peers.get(id)!)));
    expect(rec.batches.map((b) => b.length)).toEqual([5]);
    expect(u.ctx.peers.get(3)!.operatorActive).toBe(true);
    expect(u.ctx.peers.get(2)!.operatorActive).toBe(false);
    expect(u.ctx.peers.get(3)!.mailbox).toEqual([{ kind: 'operator', op: expect.objectContaining({ operatorId: 1 }) as unknown }]);
    expect(u.ctx.peers.get(2)!.mailbox).toEqual([]);
  });

  it('falls back to one request per Region against a placement without batches', async () => {
    const { api, rec } = recorder({ old: true });
    const u = unitStore({}, 1, api);
    stores.push(u);
    for (let id = 1; id <= 10; id++) u.ctx.peers.set(id, fakePeer(id));
    await regionHeartbeats(u.ctx);
    expect(rec.singles.map((hb) => hb.region.id).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await regionHeartbeats(u.ctx);
    expect(rec.singles).toHaveLength(20);
    expect(rec.batches).toEqual([]);
  });
});
