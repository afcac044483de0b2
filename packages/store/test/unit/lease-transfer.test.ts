import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, newMessage, type Message } from '@flotilla/raft-core';
import { utf8, type Peer as PeerMeta, type RaftMessage, type Region } from '@flotilla/proto';
import { bootstrapRegion, writeInitialRegion } from '../../src/bootstrap';
import { expireLease, leaseReadIndex, startRead } from '../../src/operation/query';
import { recover } from '../../src/operation/life';
import type { Peer } from '../../src/raft/peer';
import type { CommandResult } from '../../src/raft/proposal';
import { TICK } from '../../src/router/message';
import { routeRaftMessage } from '../../src/router/router';
import { unitStore, type UnitStore } from './fake-context';

// A late MsgTimeoutNow (issue #15 item 9): the store's leader lease, in its
// injectable clock, against a leader transfer that was given up while its
// MsgTimeoutNow was still in flight. Stores 2 and 3 are played by the test:
// they answer every vote, append and heartbeat at once, and hold the
// MsgTimeoutNow back (its late delivery and the election it forces past the
// followers' lease are raft-core's test: 'a MsgTimeoutNow that arrives after
// the transfer was abandoned ...').

let u: UnitStore | undefined;
afterEach(() => {
  u?.close();
  u = undefined;
});

const voter = (id: number, storeId: number): PeerMeta => ({ id, storeId, role: 'voter' });
const ME = voter(11, 1);
const OTHERS = [voter(12, 2), voter(13, 3)];

/** answerAll plays stores 2 and 3 until the leader sends nothing new; MsgTimeoutNow is held, not delivered. */
function answerAll(u: UnitStore, region: Region, held: Message[]): void {
  for (let guard = 0; guard < 50 && u.sent.length > 0; guard++) {
    const out = u.sent.splice(0);
    for (const { msg } of out) {
      const m = msg.message;
      if (m.msgType === MessageType.MsgTimeoutNow) {
        held.push(m);
        continue;
      }
      let r: Message | undefined;
      if (m.msgType === MessageType.MsgRequestPreVote) r = newMessage(MessageType.MsgRequestPreVoteResponse, { term: m.term });
      else if (m.msgType === MessageType.MsgRequestVote) r = newMessage(MessageType.MsgRequestVoteResponse, { term: m.term });
      else if (m.msgType === MessageType.MsgApp) r = newMessage(MessageType.MsgAppResp, { term: m.term, index: m.index + m.entries.length });
      else if (m.msgType === MessageType.MsgHeartbeat) r = newMessage(MessageType.MsgHeartbeatResponse, { term: m.term, context: m.context });
      if (r === undefined) continue;
      r.from = m.to;
      r.to = m.from;
      const env: RaftMessage = {
        regionId: region.id,
        fromPeer: msg.toPeer,
        toPeer: ME,
        regionEpoch: region.epoch,
        message: r,
        startKey: region.startKey,
        endKey: region.endKey,
        isTombstone: false,
      };
      routeRaftMessage(u.ctx, env, undefined);
    }
    u.round();
  }
  expect(u.sent).toEqual([]);
}

function read(u: UnitStore, peer: Peer, region: Region, held: Message[]): CommandResult {
  let got: CommandResult | undefined;
  startRead(u.ctx, peer, { type: 'get', key: utf8('k') }, (r) => (got = r));
  u.round();
  answerAll(u, region, held);
  expect(got).toBeDefined();
  return got!;
}

describe('the leader lease and a late MsgTimeoutNow', () => {
  it('a leader that sent MsgTimeoutNow never serves a lease read again in that term, even after the transfer was given up', () => {
    const tickMs = 100;
    const electionTicks = 10;
    u = unitStore({ readOnly: 'lease-based', tickIntervalMs: tickMs, electionTicks });
    const region: Region = { ...bootstrapRegion(1, 1, ME.id), peers: [ME, ...OTHERS] };
    writeInitialRegion(u.ctx, region);
    recover(u.ctx);
    const peer = u.ctx.peers.get(1)!;
    const held: Message[] = [];
    peer.raw.campaign();
    u.ctx.markDirty(peer);
    u.round();
    answerAll(u, region, held);
    expect(peer.isLeader).toBe(true);
    const term = peer.raw.raft.term;
    const m = u.ctx.metrics;

    // The first read confirms leadership with a round and starts the lease; the next one uses it.
    expect(read(u, peer, region, held).ok).toBe(true);
    const leaseBefore = m.leaseReads;
    expect(read(u, peer, region, held).ok).toBe(true);
    expect(m.leaseReads).toBe(leaseBefore + 1);

    // A transfer to store 3 (up to date: raft sends MsgTimeoutNow at once), as the admin command does it.
    expireLease(peer);
    peer.raw.transferLeader(13);
    u.ctx.markDirty(peer);
    u.round();
    answerAll(u, region, held);
    expect(held.map((x) => x.to)).toEqual([13]);

    // Store 3 stays silent: after an election timeout the leader gives the transfer up, keeping its term.
    for (let i = 0; i < electionTicks; i++) {
      u.clock.ms += tickMs;
      peer.mailbox.push(TICK);
      u.ctx.markDirty(peer);
      u.round();
      answerAll(u, region, held);
    }
    expect(peer.raw.raft.leadTransferee).toBe(0);
    expect(peer.isLeader).toBe(true);
    expect(peer.raw.raft.term).toBe(term);

    // The MsgTimeoutNow is still in flight and would elect store 3 past
    // store 2's lease. Reads are answered, each by a confirmed round: the
    // confirmations renew no lease and none is used.
    for (let i = 0; i < 3; i++) {
      expect(read(u, peer, region, held).ok).toBe(true);
      expect(leaseReadIndex(u.ctx, peer)).toBe(0);
    }
    expect(m.leaseReads).toBe(leaseBefore + 1);
  });
});
