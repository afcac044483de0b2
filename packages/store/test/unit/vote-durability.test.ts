import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, newMessage } from '@flotilla/raft-core';
import { utf8, type AdminRequest, type Peer as PeerMeta, type RaftMessage } from '@flotilla/proto';
import { encodeCommand } from '../../src/operation/command/command';
import { propose } from '../../src/operation/command/propose';
import { recover } from '../../src/operation/life';
import { routeRaftMessage } from '../../src/router/router';
import type { Peer } from '../../src/raft/peer';
import { bootstrapLeader, unitStore, type UnitStore } from './fake-context';

// A peer must never grant two votes in one term. An uninitialized peer (one
// a vote request created, that has no snapshot yet) keeps its vote only in
// the log engine: recovery does not restart it, and a split that brings the
// Region's first initialized peer replaces it. Both used to drop the vote.

const stores: UnitStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

const EMPTY = new Uint8Array(0);

/** voteRequest is a MsgRequestVote for Region regionId to this store's peer toPeerId, from a candidate with an empty log. */
function voteRequest(regionId: number, toPeerId: number, from: PeerMeta, term: number, startKey: Uint8Array = EMPTY): RaftMessage {
  const message = newMessage(MessageType.MsgRequestVote, { from: from.id, to: toPeerId, term, logTerm: 0, index: 0 });
  return { regionId, fromPeer: from, toPeer: { id: toPeerId, storeId: 1, role: 'voter' }, regionEpoch: { confVer: 1, version: 1 }, message, startKey, endKey: EMPTY, isTombstone: false };
}

/** voteAnswers: the vote responses this store sent to the given peer ID. */
function voteAnswers(s: UnitStore, to: number): { term: number; reject: boolean }[] {
  return s.sent.filter((x) => x.msg.message.msgType === MessageType.MsgRequestVoteResponse && x.msg.message.to === to).map((x) => ({ term: x.msg.message.term, reject: x.msg.message.reject }));
}

describe('a vote survives the peer that cast it', () => {
  it('an uninitialized peer that voted, then restarted, refuses a second candidate in the same term', () => {
    const first = unitStore();
    routeRaftMessage(first.ctx, voteRequest(9, 20, { id: 21, storeId: 2, role: 'voter' }, 7), undefined);
    first.round();
    expect(voteAnswers(first, 21)).toEqual([{ term: 7, reject: false }]);
    first.close(true);

    const again = unitStore({}, 1, {}, first.dir);
    stores.push(again);
    recover(again.ctx);
    expect(again.ctx.peers.has(9)).toBe(false);
    routeRaftMessage(again.ctx, voteRequest(9, 20, { id: 22, storeId: 3, role: 'voter' }, 7), undefined);
    again.round();
    expect(voteAnswers(again, 22)).toEqual([{ term: 7, reject: true }]);
  });

  it('a destroyed uninitialized peer is not created again after a restart', () => {
    const first = unitStore();
    routeRaftMessage(first.ctx, voteRequest(9, 20, { id: 21, storeId: 2, role: 'voter' }, 7), undefined);
    first.round();
    first.ctx.send(first.ctx.peers.get(9)!, { kind: 'destroy', cleanData: true, reason: 'test' });
    first.round();
    expect(first.ctx.peers.has(9)).toBe(false);
    first.close(true);

    const again = unitStore({}, 1, {}, first.dir);
    stores.push(again);
    recover(again.ctx);
    routeRaftMessage(again.ctx, voteRequest(9, 20, { id: 22, storeId: 3, role: 'voter' }, 7), undefined);
    again.round();
    expect(again.ctx.peers.has(9)).toBe(false);
    expect(voteAnswers(again, 22)).toEqual([]);
  });

  it("a split keeps the vote the new Region's uninitialized peer cast before the split applied here", () => {
    const s = unitStore();
    stores.push(s);
    // Another store applied the split first and its peer of Region 5 asks
    // ours (peer 50, not created yet here) for a vote in term 7. (Here no
    // initialized peer covers the range yet, so the request creates peer
    // 50; a local parent covering it would have dropped the request.)
    routeRaftMessage(s.ctx, voteRequest(5, 50, { id: 51, storeId: 2, role: 'voter' }, 7, utf8('m')), undefined);
    s.round();
    expect(voteAnswers(s, 51)).toEqual([{ term: 7, reject: false }]);
    const parent: Peer = bootstrapLeader(s);
    const split: AdminRequest = { type: 'batchSplit', splits: [{ splitKey: utf8('m'), newRegionId: 5, newPeerIds: [50] }], rightDerive: false };
    const got: { ok: boolean }[] = [];
    propose(s.ctx, parent, encodeCommand({ header: { regionId: 1, regionEpoch: parent.region.epoch }, writes: [], admin: split }), (r) => got.push(r));
    s.ctx.markDirty(parent);
    s.round();
    expect(got).toEqual([expect.objectContaining({ ok: true })]);
    const child = s.ctx.peers.get(5)!;
    expect(child.initialized).toBe(true);
    // Term 7's vote stands: the new peer is at term 7 or later, and if it
    // is still in term 7 it voted for peer 51.
    const hs = s.ctx.log.raftState(5).hardState;
    expect(hs.term).toBeGreaterThanOrEqual(7);
    if (hs.term === 7) expect(hs.vote).toBe(51);
    routeRaftMessage(s.ctx, voteRequest(5, 50, { id: 52, storeId: 3, role: 'voter' }, 7, utf8('m')), undefined);
    s.round();
    expect(voteAnswers(s, 52).every((a) => a.reject || a.term > 7)).toBe(true);
  });
});
