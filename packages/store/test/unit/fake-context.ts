import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogEngine } from '@flotilla/log-engine';
import type { RaftMessage, Region } from '@flotilla/proto';
import type { Transport, TransportStats } from '@flotilla/transport';
import { bootstrapRegion, writeInitialRegion } from '../../src/bootstrap';
import { resolveConfig, type StoreConfig } from '../../src/config';
import { StoreContext } from '../../src/context';
import type { PlacementApi } from '../../src/engines';
import { KvEngineStateMachine } from '../../src/kv/kv-engine-state-machine';
import { poll } from '../../src/batch/poller';
import { recover } from '../../src/operation/life';
import type { Peer } from '../../src/raft/peer';

/**
 * UnitStore is one store's StoreContext with no cluster around it: real
 * log and KV engines in a temp dir, a transport that records what would
 * be sent, a placement that answers nothing, and a clock the test moves.
 */
export interface UnitStore {
  ctx: StoreContext;
  sent: { to: number; msg: RaftMessage }[];
  clock: { ms: number };
  /** round runs poll rounds until nothing is dirty (bounded). */
  round(): void;
  /** dir holds raft.db and kv.db; pass it to unitStore again to reopen them (a restart). */
  dir: string;
  /** close closes the engines and removes dir, unless keepFiles (then reopen with unitStore(…, dir)). */
  close(keepFiles?: boolean): void;
}

export function unitStore(overrides: Partial<StoreConfig> = {}, storeId = 1, placement: Partial<PlacementApi> = {}, reopenDir?: string): UnitStore {
  const dir = reopenDir ?? mkdtempSync(join(tmpdir(), 'flotilla-unit-'));
  // The async write pipeline asked for explicitly gets the engine's writer thread, as openEngines gives it.
  const log = LogEngine.open({ path: join(dir, 'raft.db'), writer: overrides.writePipeline === 'async' ? 'worker' : 'sync' });
  const sm = new KvEngineStateMachine(join(dir, 'kv.db'), (regionId, index) => log.term(regionId, index));
  const sent: { to: number; msg: RaftMessage }[] = [];
  const clock = { ms: 1_000 };
  const ctx = new StoreContext({
    storeId,
    config: resolveConfig('production', overrides),
    logEngine: log,
    sm,
    transport: recordingTransport(storeId, sent),
    placement: silentPlacement(placement),
    now: () => clock.ms,
    seed: 7,
  });
  // Rounds run only when the test says so: a scheduled poll does nothing.
  ctx.setPoll(() => {});
  return {
    ctx,
    sent,
    clock,
    dir,
    round() {
      for (let i = 0; i < 20 && ctx.dirty.size > 0; i++) poll(ctx);
    },
    close(keepFiles = false) {
      ctx.closed = true;
      void log.close();
      sm.close();
      if (!keepFiles) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** bootstrapLeader writes Region 1 with this store's single voter, recovers it and elects it. */
export function bootstrapLeader(u: UnitStore, regionId = 1, peerId = 2): Peer {
  const region: Region = bootstrapRegion(u.ctx.storeId, regionId, peerId);
  writeInitialRegion(u.ctx, region);
  recover(u.ctx);
  const peer = u.ctx.peers.get(regionId)!;
  peer.raw.campaign();
  u.ctx.markDirty(peer);
  u.round();
  return peer;
}

function recordingTransport(storeId: number, sent: { to: number; msg: RaftMessage }[]): Transport {
  return {
    storeId,
    start: async () => {},
    close: async () => {},
    send: (to: number, msg: RaftMessage) => {
      sent.push({ to, msg });
      return true;
    },
    flush: () => {},
    onMessages: () => {},
    onUnreachable: () => {},
    onSnapshot: () => {},
    sendSnapshot: async () => {},
    stats: () => ({}) as TransportStats,
  } as unknown as Transport;
}

/** silentPlacement answers only what the test gives it; every other call fails as an unreachable placement would. */
function silentPlacement(given: Partial<PlacementApi>): PlacementApi {
  const never = () => Promise.reject(new Error('no placement in unit tests'));
  return new Proxy(given as PlacementApi, {
    get: (t, key) => (key in t ? (t as Record<string | symbol, unknown>)[key] : key === 'getClusterInfo' ? undefined : never),
  });
}
