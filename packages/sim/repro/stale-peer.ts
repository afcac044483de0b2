// STORE_BUGS.md #1 reproduction: a store never re-creates a peer of a Region
// it once hosted. Run: node --import tsx packages/sim/repro/stale-peer.ts
// Exit 0 = fixed, 1 = the bug is present (prints the cluster state).
//
// Three stores, Region 1 on all three. We remove store C's peer with a conf
// change; with maxReplicas 3 and three stores, placement's replica checker
// must re-add a replica on store C (a NEW peer id). Store C either applied
// its own removal (tombstone for the Region id) or missed it (a stale,
// initialized peer with the old id); in both cases it must end up hosting
// the new peer. It never does, and the Region stays one replica short.
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import FakeTimers from '@sinonjs/fake-timers';
import { SimCluster, START_MS } from '../src/simulation';

async function main(): Promise<number> {
  const dir = mkdtempSync(join('/dev/shm', 'flotilla-repro-'));
  const clock = FakeTimers.install({ now: START_MS, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date', 'performance'] });
  const cluster = new SimCluster(dir, 1, false);
  let code = 1;
  try {
    cluster.openPlacement();
    const timers = [setInterval(() => cluster.placement.flush(), 50), setInterval(() => cluster.placement.runSchedulers(), 500)];
    for (let i = 0; i < 3; i++) {
      await cluster.startNew(i);
      await clock.tickAsync(100);
    }
    const full = () => {
      const info = cluster.placement.tree.all()[0];
      if (!info || info.region.peers.filter((p) => p.role === 'voter').length !== 3) return false;
      return info.region.peers.every((p) => cluster.handles.get(p.storeId)?.store.peers.get(info.region.id)?.peerId === p.id && cluster.handles.get(p.storeId)!.store.peers.get(info.region.id)!.initialized);
    };
    for (let t = 0; t < 30_000 && !full(); t += 100) await clock.tickAsync(100);
    if (!full()) throw new Error('setup: Region 1 never got 3 initialized voters');
    const region = cluster.placement.tree.all()[0]!.region;
    const leaderStore = cluster.up().find((id) => cluster.handles.get(id)!.store.peers.get(region.id)?.isLeader)!;
    const lp = cluster.handles.get(leaderStore)!.store.peers.get(region.id)!;
    const victim = lp.region.peers.find((p) => p.storeId !== leaderStore)!;
    console.error(`removing peer ${victim.id} on store ${victim.storeId} from Region ${region.id}`);
    cluster.handles.get(leaderStore)!.store.handleClientRequest(
      { id: 0, header: { regionId: region.id, regionEpoch: lp.region.epoch }, op: 'admin', admin: { type: 'changePeer', changeType: 1, peer: victim } },
      (r) => console.error(`conf change answered ${JSON.stringify(r.ok ? 'ok' : r.error.type)}`),
    );
    // Placement re-adds a replica on the victim's store (the only store without one).
    let readded = false;
    for (let t = 0; t < 60_000; t += 100) {
      await clock.tickAsync(100);
      const r = cluster.placement.tree.all()[0]!.region;
      const p = r.peers.find((x) => x.storeId === victim.storeId);
      if (p && p.id !== victim.id) readded = true;
      if (readded && full()) break;
    }
    if (readded && full()) {
      console.error('OK: the store hosts the re-added peer');
      code = 0;
    } else {
      const r = cluster.placement.tree.all()[0]!;
      console.error(`BUG: placement Region ${r.region.id} peers ${r.region.peers.map((p) => `${p.id}@${p.storeId}${p.role === 'voter' ? '' : '(learner)'}`).join(', ')}`);
      for (const id of cluster.storeIds()) {
        const p = cluster.handles.get(id)?.store.peers.get(region.id);
        console.error(`  store ${id}: ${p ? `peer ${p.peerId} ${p.initialized ? 'initialized' : 'uninitialized'} epoch ${p.region.epoch.version}/${p.region.epoch.confVer}` : 'no peer (tombstone or never created)'}`);
      }
    }
    for (const t of timers) clearInterval(t);
  } finally {
    await cluster.close();
    clock.uninstall();
    rmSync(dir, { recursive: true, force: true });
  }
  return code;
}

main().then(
  (c) => (process.exitCode = c),
  (e) => {
    console.error(e);
    process.exitCode = 2;
  },
);
