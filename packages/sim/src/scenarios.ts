// Small deterministic scenarios on the simulated cluster, used as regression
// tests for store bugs the simulation found (see STORE_BUGS.md).
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import FakeTimers from '@sinonjs/fake-timers';
import { SimCluster, START_MS } from './simulation';

/**
 * removedPeerIsReAdded: three stores, Region 1 on all of them; one store's
 * peer is removed by a conf change, placement's replica checker re-adds a
 * replica on that store (a new peer id), and the store must end up hosting
 * it. Regression scenario for STORE_BUGS.md #1. Returns whether it did, with
 * a report of the end state.
 */
export async function removedPeerIsReAdded(log: (line: string) => void = () => {}): Promise<{ ok: boolean; report: string }> {
  const lines: string[] = [];
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'flotilla-repro-'));
  const clock = FakeTimers.install({ now: START_MS, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date', 'performance'] });
  const cluster = new SimCluster(dir, 1, false);
  let ok = false;
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
    log(`removing peer ${victim.id} on store ${victim.storeId} from Region ${region.id}`);
    cluster.handles.get(leaderStore)!.store.handleClientRequest(
      { id: 0, header: { regionId: region.id, regionEpoch: lp.region.epoch }, op: 'admin', admin: { type: 'changePeer', changeType: 1, peer: victim } },
      (r) => log(`conf change answered ${JSON.stringify(r.ok ? 'ok' : r.error.type)}`),
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
      lines.push('OK: the store hosts the re-added peer');
      ok = true;
    } else {
      const r = cluster.placement.tree.all()[0]!;
      lines.push(`BUG: placement Region ${r.region.id} peers ${r.region.peers.map((p) => `${p.id}@${p.storeId}${p.role === 'voter' ? '' : '(learner)'}`).join(', ')}`);
      for (const id of cluster.storeIds()) {
        const p = cluster.handles.get(id)?.store.peers.get(region.id);
        lines.push(`  store ${id}: ${p ? `peer ${p.peerId} ${p.initialized ? 'initialized' : 'uninitialized'} epoch ${p.region.epoch.version}/${p.region.epoch.confVer}` : 'no peer (tombstone or never created)'}`);
      }
    }
    for (const t of timers) clearInterval(t);
  } finally {
    await cluster.close();
    clock.uninstall();
    rmSync(dir, { recursive: true, force: true });
  }
  return { ok, report: lines.join('\n') };
}


/**
 * secondPeerOnOneStoreIsRejected: a client admin `changePeer` that adds a
 * voter on a store that already hosts a peer of the Region must be refused
 * (TiKV: "peer already exists on the store"). Regression scenario for
 * STORE_BUGS.md #5. One store, fake clock.
 */
export async function secondPeerOnOneStoreIsRejected(): Promise<{ ok: boolean; report: string }> {
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'flotilla-repro-'));
  const clock = FakeTimers.install({ now: START_MS, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date', 'performance'] });
  const cluster = new SimCluster(dir, 1, false);
  try {
    cluster.openPlacement();
    const id = await cluster.startNew(0);
    const s = cluster.handles.get(id)!.store;
    for (let t = 0; t < 10_000 && ![...s.peers.values()].some((p) => p.isLeader); t += 100) await clock.tickAsync(100);
    const p = [...s.peers.values()][0]!;
    let answer = 'no answer';
    s.handleClientRequest(
      { id: 1, header: { regionId: p.regionId, regionEpoch: p.region.epoch }, op: 'admin', admin: { type: 'changePeer', changeType: 0, peer: { id: 99_999, storeId: id, role: 'voter' } } },
      (r) => (answer = r.ok ? 'ok' : r.error.type),
    );
    await clock.tickAsync(2_000);
    const onStore = p.region.peers.filter((x) => x.storeId === id).length;
    const report = `changePeer add voter 99999 on store ${id} (which hosts peer ${p.peerId}) answered ${answer}; Region ${p.regionId} now has ${onStore} peers on store ${id}: ${p.region.peers.map((x) => `${x.id}@${x.storeId}`).join(', ')}`;
    return { ok: onStore === 1, report };
  } finally {
    await cluster.close();
    clock.uninstall();
    rmSync(dir, { recursive: true, force: true });
  }
}
