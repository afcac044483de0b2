import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, newMessage } from '@flotilla/raft-core';
import { encode, utf8, type AdminRequest, type RaftMessage, type Region } from '@flotilla/proto';
import { LogBatch } from '@flotilla/log-engine';
import { encodeCommand } from '../../src/operation/command/command';
import { propose } from '../../src/operation/command/propose';
import { confStateFromRegion, initialApplyState, type SnapshotPayload } from '../../src/raft/storage';
import { recover } from '../../src/operation/life';
import { routeRaftMessage } from '../../src/router/router';
import type { Peer } from '../../src/raft/peer';
import { bootstrapLeader, unitStore, type UnitStore } from './fake-context';

// Regression tests for what the power-loss run (packages/sim/src/powerloss)
// found: applies reach the KV engine without fsync, and the log writes that
// take the log's replay away (a compaction, a snapshot's meta -- also a
// bootstrap's and a split's new Region -- and a Region's removal) were
// written while the KV engine's writes they stand for were not durable.
// After a power loss the log said "installed at index N" and the KV engine
// had lost the install. Each test watches, from outside the store, the KV
// engine's writes and syncs and the log engine's writes.

let u: UnitStore | undefined;
afterEach(() => {
  u?.close();
  u = undefined;
});

/** LogWrite is one log write as the watcher saw it: its op kinds and whether KV writes were still unsynced. */
interface LogWrite {
  kinds: string[];
  kvUnsynced: boolean;
}

/** watch records every log write with whether the KV engine had writes not yet synced at that moment. */
function watch(s: UnitStore): LogWrite[] {
  const sm = s.ctx.sm;
  const log = s.ctx.log;
  const writes: LogWrite[] = [];
  let unsynced = false;
  const [write, ingest, sync, logWrite] = [sm.write.bind(sm), sm.ingestSnapshot.bind(sm), sm.sync.bind(sm), log.write.bind(log)];
  sm.write = (b) => {
    if (!b.isEmpty) unsynced = true;
    write(b);
  };
  sm.ingestSnapshot = (...a) => {
    unsynced = true;
    ingest(...a);
  };
  sm.sync = () => {
    sync();
    unsynced = false;
  };
  log.write = (b: LogBatch) => {
    writes.push({ kinds: b.ops.map((op) => op.kind), kvUnsynced: unsynced });
    logWrite(b);
  };
  return writes;
}

/** dependent: the log writes that drop entries or stand for KV state. */
const dependent = (ws: LogWrite[]) => ws.filter((w) => w.kinds.some((k) => k === 'compact' || k === 'snapshot' || k === 'remove'));

function proposeAdmin(s: UnitStore, peer: Peer, admin: AdminRequest): void {
  const got: unknown[] = [];
  propose(s.ctx, peer, encodeCommand({ header: { regionId: peer.regionId, regionEpoch: peer.region.epoch }, writes: [], admin }), (r) => got.push(r));
  s.ctx.markDirty(peer);
  s.round();
  expect(got).toEqual([expect.objectContaining({ ok: true })]);
}

function put(s: UnitStore, peer: Peer, key: string): void {
  propose(s.ctx, peer, encodeCommand({ header: { regionId: peer.regionId, regionEpoch: peer.region.epoch }, writes: [{ type: 'put', key: utf8(key), value: utf8('v') }] }), () => {});
  s.ctx.markDirty(peer);
  s.round();
}

describe('the KV engine is durable before a log write that depends on it', () => {
  it('bootstrap: the Region is durable in kv.db before raft.db holds its log', () => {
    u = unitStore();
    const writes = watch(u);
    bootstrapLeader(u);
    expect(dependent(writes).length).toBeGreaterThan(0);
    for (const w of dependent(writes)) expect(w, 'log write with KV writes unsynced').toMatchObject({ kvUnsynced: false });
  });

  it('split: the new Region is durable in kv.db before raft.db holds its log', () => {
    u = unitStore();
    const writes = watch(u);
    const peer = bootstrapLeader(u);
    writes.length = 0;
    proposeAdmin(u, peer, { type: 'batchSplit', splits: [{ splitKey: utf8('m'), newRegionId: 3, newPeerIds: [4] }], rightDerive: false });
    expect(u.ctx.peers.get(3)?.initialized).toBe(true);
    expect(dependent(writes).length).toBeGreaterThan(0);
    for (const w of dependent(writes)) expect(w).toMatchObject({ kvUnsynced: false });
  });

  it('compaction: the applies up to the compact index are durable before the log drops them', () => {
    u = unitStore();
    const writes = watch(u);
    const peer = bootstrapLeader(u);
    for (let i = 0; i < 5; i++) put(u, peer, `k${i}`);
    const applied = peer.apply.appliedIndex;
    writes.length = 0;
    proposeAdmin(u, peer, { type: 'compactLog', compactIndex: applied, compactTerm: peer.raw.raft.raftLog.term(applied) });
    put(u, peer, 'after'); // a commit-only compaction rides along with the next durable write
    expect(u.ctx.log.firstIndex(1)).toBe(applied + 1);
    expect(dependent(writes).length).toBeGreaterThan(0);
    for (const w of dependent(writes)) expect(w).toMatchObject({ kvUnsynced: false });
    expect(u.ctx.sm.durableAppliedIndex(1)).toBeGreaterThanOrEqual(applied);
  });

  it('snapshot: the installed range is durable in kv.db before raft.db moves its log to the snapshot', () => {
    u = unitStore();
    const writes = watch(u);
    const region: Region = { id: 7, startKey: new Uint8Array(0), endKey: new Uint8Array(0), epoch: { confVer: 2, version: 1 }, peers: [{ id: 70, storeId: 9, role: 'voter' }, { id: 71, storeId: 1, role: 'voter' }] };
    const confState = confStateFromRegion(region);
    const payload: SnapshotPayload = { region, confState, pairs: [{ key: utf8('a'), value: utf8('1') }] };
    const message = newMessage(MessageType.MsgSnapshot, { from: 70, to: 71, term: 6, snapshot: { data: encode(payload), metadata: { index: 40, term: 6, confState } } });
    const m: RaftMessage = { regionId: 7, fromPeer: region.peers[0]!, toPeer: region.peers[1]!, regionEpoch: region.epoch, message, startKey: region.startKey, endKey: region.endKey, isTombstone: false };
    routeRaftMessage(u.ctx, m, undefined);
    u.round();
    expect(u.ctx.peers.get(7)?.apply.appliedIndex).toBe(40);
    expect(u.ctx.log.firstIndex(7)).toBe(41);
    const installs = writes.filter((w) => w.kinds.includes('snapshot'));
    expect(installs.length).toBeGreaterThan(0);
    for (const w of installs) expect(w).toMatchObject({ kvUnsynced: false });
    expect(u.ctx.sm.durableAppliedIndex(7)).toBe(40);
  });

  it('durableAppliedIndex lags the applied index until a sync', () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    u.ctx.sm.sync();
    const before = u.ctx.sm.durableAppliedIndex(1);
    put(u, peer, 'x');
    expect(peer.apply.appliedIndex).toBeGreaterThan(before);
    expect(u.ctx.sm.durableAppliedIndex(1)).toBe(before);
    expect(u.ctx.sm.unsynced).toBe(true);
    u.ctx.sm.sync();
    expect(u.ctx.sm.durableAppliedIndex(1)).toBe(peer.apply.appliedIndex);
  });

  it('recovery: a Region durable in kv.db but lost from raft.db (power loss between the two writes) gets its log back before its peer starts', () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    proposeAdmin(u, peer, { type: 'batchSplit', splits: [{ splitKey: utf8('m'), newRegionId: 3, newPeerIds: [4] }], rightDerive: false });
    expect(u.ctx.log.hasRegion(3)).toBe(true);
    // The state a power loss leaves after writeLog synced kv.db (the split, Region 3 applied at 5)
    // and before raft.db's write of Region 3's log was durable.
    u.ctx.log.write(new LogBatch().removeRegion(3));
    const b = u.ctx.sm.newBatch();
    b.setApplyState(3, initialApplyState());
    u.ctx.sm.write(b);
    expect(u.ctx.log.hasRegion(3)).toBe(false);
    u.ctx.peers.clear(); // a restart: the peers come back from kv.db
    recover(u.ctx);
    expect(u.ctx.log.raftState(3)).toMatchObject({ truncatedIndex: 5, lastIndex: 5, hardState: { commit: 5 } });
    expect(u.ctx.peers.get(3)?.apply.appliedIndex).toBe(5);
    expect(u.ctx.peers.get(3)?.raw.raft.raftLog.committed).toBe(5);
  });
});
