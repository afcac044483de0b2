// Small deterministic scenarios on the simulated cluster, used as regression
// tests for store bugs the simulation found (see STORE_BUGS.md). Like the
// checkers, they read stores only through store.inspect()/inspectRegion().
import { rmSync } from 'node:fs';
import type { Region } from '@flotilla/proto';
import { ConfChangeType } from '@flotilla/raft-core';
import { SimCluster } from './cluster';
import { installVirtualClock, makeSimDir } from './clock';

/**
 * removedPeerIsReAdded: three stores, Region 1 on all of them; one store's
 * peer is removed by a conf change, placement's replica checker re-adds a
 * replica on that store (a new peer id), and the store must end up hosting
 * it. Regression scenario for STORE_BUGS.md #1. Returns whether it did, with
 * a report of the end state.
 */
export async function removedPeerIsReAdded(log: (line: string) => void = () => {}): Promise<{ ok: boolean; report: string }> {
  const dir = makeSimDir('flotilla-repro-');
  const clock = installVirtualClock();
  const cluster = new SimCluster(dir, 1, false);
  try {
    cluster.openPlacement();
    cluster.startPlacementWorkers();
    for (let i = 0; i < 3; i++) {
      await cluster.startNew(i);
      await clock.tickAsync(100);
    }
    for (let t = 0; t < 30_000 && !hostsEveryVoter(cluster); t += 100) await clock.tickAsync(100);
    if (!hostsEveryVoter(cluster)) throw new Error('setup: Region 1 never got 3 initialized voters');
    const region = cluster.regions()[0]!.region;
    const leader = cluster.up().map((storeId) => ({ storeId, peer: cluster.store(storeId)!.inspectRegion(region.id) })).find((x) => x.peer?.isLeader)!;
    const lr = leader.peer!.region;
    const victim = lr.peers.find((p) => p.storeId !== leader.storeId)!;
    log(`removing peer ${victim.id} on store ${victim.storeId} from Region ${region.id}`);
    cluster.store(leader.storeId)!.handleClientRequest(
      { id: 0, header: { regionId: region.id, regionEpoch: lr.epoch }, op: 'admin', admin: { type: 'changePeer', changeType: ConfChangeType.RemoveNode, peer: victim } },
      (r) => log(`conf change answered ${JSON.stringify(r.ok ? 'ok' : r.error.type)}`),
    );
    // Placement re-adds a replica on the victim's store (the only store without one).
    let readded = false;
    for (let t = 0; t < 60_000; t += 100) {
      await clock.tickAsync(100);
      const p = cluster.regions()[0]!.region.peers.find((x) => x.storeId === victim.storeId);
      if (p && p.id !== victim.id) readded = true;
      if (readded && hostsEveryVoter(cluster)) break;
    }
    if (readded && hostsEveryVoter(cluster)) return { ok: true, report: 'OK: the store hosts the re-added peer' };
    return { ok: false, report: describeRegion(cluster, region.id) };
  } finally {
    await cluster.close();
    clock.uninstall();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** hostsEveryVoter: placement's first Region has 3 voters, and each voter's store hosts that peer, initialized. */
function hostsEveryVoter(cluster: SimCluster): boolean {
  const info = cluster.regions()[0];
  if (!info || info.region.peers.filter((p) => p.role === 'voter').length !== 3) return false;
  return info.region.peers.every((p) => {
    const view = cluster.store(p.storeId)?.inspectRegion(info.region.id);
    return view?.peerId === p.id && view.initialized;
  });
}

/** describeRegion reports what placement and each store hold of one Region. */
function describeRegion(cluster: SimCluster, regionId: number): string {
  const r = cluster.regions()[0]!;
  const lines = [`BUG: placement Region ${r.region.id} peers ${r.region.peers.map((p) => `${p.id}@${p.storeId}${p.role === 'voter' ? '' : '(learner)'}`).join(', ')}`];
  for (const id of cluster.storeIds()) {
    const p = cluster.store(id)?.inspectRegion(regionId);
    lines.push(`  store ${id}: ${p ? `peer ${p.peerId} ${p.initialized ? 'initialized' : 'uninitialized'} epoch ${p.region.epoch.version}/${p.region.epoch.confVer}` : 'no peer (tombstone or never created)'}`);
  }
  return lines.join('\n');
}

/**
 * secondPeerOnOneStoreIsRejected: a client admin `changePeer` that adds a
 * voter on a store that already hosts a peer of the Region must be refused
 * (TiKV: "peer already exists on the store"). Regression scenario for
 * STORE_BUGS.md #5. One store, fake clock.
 */
export async function secondPeerOnOneStoreIsRejected(): Promise<{ ok: boolean; report: string }> {
  const dir = makeSimDir('flotilla-repro-');
  const clock = installVirtualClock();
  const cluster = new SimCluster(dir, 1, false);
  try {
    cluster.openPlacement();
    const id = await cluster.startNew(0);
    const s = cluster.store(id)!;
    for (let t = 0; t < 10_000 && !s.inspect().some((p) => p.isLeader); t += 100) await clock.tickAsync(100);
    const before = s.inspect()[0]!;
    let answer = 'no answer';
    s.handleClientRequest(
      { id: 1, header: { regionId: before.regionId, regionEpoch: before.region.epoch }, op: 'admin', admin: { type: 'changePeer', changeType: ConfChangeType.AddNode, peer: { id: 99_999, storeId: id, role: 'voter' } } },
      (r) => (answer = r.ok ? 'ok' : r.error.type),
    );
    await clock.tickAsync(2_000);
    // A PeerView is a copy: look again to see the Region as it is now.
    const region: Region = s.inspectRegion(before.regionId)?.region ?? before.region;
    const onStore = region.peers.filter((x) => x.storeId === id).length;
    const report = `changePeer add voter 99999 on store ${id} (which hosts peer ${before.peerId}) answered ${answer}; Region ${before.regionId} now has ${onStore} peers on store ${id}: ${region.peers.map((x) => `${x.id}@${x.storeId}`).join(', ')}`;
    return { ok: onStore === 1, report };
  } finally {
    await cluster.close();
    clock.uninstall();
    rmSync(dir, { recursive: true, force: true });
  }
}
