import { afterEach, describe, expect, it } from 'vitest';
import { ConfChangeType, MessageType, newMessage } from '@flotilla/raft-core';
import { utf8, type Peer as PeerMeta, type RaftMessage, type Region } from '@flotilla/proto';
import { checkConfChange } from '../../src/operation/command/admin/conf-change';
import { matchProposal, type Response } from '../../src/operation/command/propose';
import { maybeHibernate } from '../../src/operation/hibernate';
import { expireLease, leaseReadIndex, renewLease, startRead } from '../../src/operation/query';
import { routeRaftMessage } from '../../src/router/router';
import type { CommandResult } from '../../src/raft/proposal';
import { Tombstones } from '../../src/tombstones';
import { bootstrapLeader, unitStore, type UnitStore } from './fake-context';

let u: UnitStore | undefined;
afterEach(() => {
  u?.close();
  u = undefined;
});

const region = (peers: PeerMeta[]): Region => ({ id: 9, startKey: new Uint8Array(0), endKey: new Uint8Array(0), epoch: { confVer: 3, version: 2 }, peers });
const voter = (id: number, storeId: number): PeerMeta => ({ id, storeId, role: 'voter' });

describe('checkConfChange (TiKV check_conf_change)', () => {
  const r = region([voter(1, 1), voter(2, 2), voter(3, 3)]);
  it('accepts adding a learner on a new store and promoting it', () => {
    expect(checkConfChange(r, [{ changeType: ConfChangeType.AddLearnerNode, peer: { id: 4, storeId: 4, role: 'learner' } }])).toBeUndefined();
    expect(checkConfChange(r, [{ changeType: ConfChangeType.AddNode, peer: voter(3, 3) }])).toBeUndefined();
  });
  it('refuses a second peer of the Region on one store', () => {
    expect(checkConfChange(r, [{ changeType: ConfChangeType.AddNode, peer: voter(4, 2) }])).toBe('store 2 already holds peer 2 of region 9');
  });
  it('refuses a peer ID reused on another store', () => {
    expect(checkConfChange(r, [{ changeType: ConfChangeType.AddNode, peer: voter(2, 5) }])).toBe('peer 2 already exists on store 2');
  });
  it('refuses removing a peer that is not there, and leaving no voter', () => {
    expect(checkConfChange(r, [{ changeType: ConfChangeType.RemoveNode, peer: voter(7, 7) }])).toBe('peer 7 is not in region 9');
    const all = [1, 2, 3].map((id) => ({ changeType: ConfChangeType.RemoveNode, peer: voter(id, id) }));
    expect(checkConfChange(r, all)).toBe('the change would leave the region without a voter');
  });
});

describe('matchProposal', () => {
  it('answers the proposal whose entry applied, and StaleCommand for entries another leader replaced', () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    const got: string[] = [];
    const cb = (name: string) => (r: CommandResult) => got.push(`${name}:${r.ok ? 'ok' : r.error.type}`);
    peer.addProposal(10, 2, cb('a'), 0);
    peer.addProposal(11, 2, cb('b'), 0);
    peer.addProposal(12, 2, cb('c'), 0);
    const out: Response[] = [];
    // Index 10 applied from term 3: the term-2 proposal there was replaced.
    matchProposal(peer, 10, 3, { ok: true }, out);
    matchProposal(peer, 12, 2, { ok: true }, out);
    for (const r of out) r.cb(r.result);
    expect(got).toEqual(['a:StaleCommand', 'b:StaleCommand', 'c:ok']);
    expect(peer.proposals).toHaveLength(0);
  });
  it('leaves proposals above the applied index waiting', () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    peer.addProposal(20, 2, () => {}, 0);
    const out: Response[] = [];
    matchProposal(peer, 19, 2, { ok: true }, out);
    expect(out).toHaveLength(0);
    expect(peer.proposals).toHaveLength(1);
  });
});

describe('hibernation decisions', () => {
  it('an idle, fully applied leader hibernates after hibernateAfterTicks ticks, and not before', () => {
    u = unitStore({ hibernateAfterTicks: 5 });
    const peer = bootstrapLeader(u);
    expect(peer.isLeader).toBe(true);
    for (let i = 0; i < 4; i++) maybeHibernate(u.ctx, peer);
    expect(peer.hibernating).toBe(false);
    maybeHibernate(u.ctx, peer);
    expect(peer.hibernating).toBe(true);
    expect(peer.hibernateNoticePending).toBe(true);
    expect(u.ctx.hibernated.has(peer)).toBe(true);
    expect(u.ctx.metrics.hibernated).toBe(1);
  });
  it('pending work resets the idle count', () => {
    u = unitStore({ hibernateAfterTicks: 3 });
    const peer = bootstrapLeader(u);
    maybeHibernate(u.ctx, peer);
    maybeHibernate(u.ctx, peer);
    peer.addProposal(1_000, 99, () => {}, 0);
    maybeHibernate(u.ctx, peer);
    expect(peer.idleTicks).toBe(0);
    expect(peer.hibernating).toBe(false);
  });
  it('never hibernates with hibernation off, or a peer that is not leader', () => {
    u = unitStore({ hibernate: false, hibernateAfterTicks: 1 });
    const peer = bootstrapLeader(u);
    for (let i = 0; i < 5; i++) maybeHibernate(u.ctx, peer);
    expect(peer.hibernating).toBe(false);
    u.close();
    u = unitStore({ hibernateAfterTicks: 1 });
    const p2 = bootstrapLeader(u);
    p2.isLeader = false;
    maybeHibernate(u.ctx, p2);
    expect(p2.hibernating).toBe(false);
  });
});

describe('the router drops by reason', () => {
  const envelope = (over: Partial<RaftMessage> & { type?: MessageType }): RaftMessage => ({
    regionId: 50,
    fromPeer: { id: 101, storeId: 2, role: 'voter' },
    toPeer: { id: 100, storeId: 1, role: 'voter' },
    regionEpoch: { confVer: 1, version: 1 },
    message: newMessage(over.type ?? MessageType.MsgHeartbeat, { from: 101, to: 100, term: 5 }),
    startKey: utf8('m'),
    endKey: utf8('n'),
    isTombstone: false,
    ...over,
  });
  const dropped = () => Object.fromEntries(u!.ctx.metrics.droppedByReason);

  it('a message for another store', () => {
    u = unitStore();
    routeRaftMessage(u.ctx, envelope({ toPeer: { id: 100, storeId: 2, role: 'voter' } }), undefined);
    expect(dropped()).toEqual({ 'wrong-store': 1 });
  });
  it('a first message for an unknown Region creates an uninitialized peer; a non-first one is dropped', () => {
    u = unitStore();
    routeRaftMessage(u.ctx, envelope({ type: MessageType.MsgAppResp }), undefined);
    expect(dropped()).toEqual({ 'no-peer': 1 });
    routeRaftMessage(u.ctx, envelope({}), undefined);
    const p = u.ctx.peers.get(50)!;
    expect(p.initialized).toBe(false);
    expect(p.mailbox.map((m) => m.kind)).toEqual(['raft']);
  });
  it('a message to an older peer ID than ours, or to a tombstoned peer', () => {
    u = unitStore();
    routeRaftMessage(u.ctx, envelope({}), undefined);
    routeRaftMessage(u.ctx, envelope({ toPeer: { id: 99, storeId: 1, role: 'voter' } }), undefined);
    expect(dropped()).toEqual({ 'stale-peer': 1 });
    u.ctx.tombstones.set(60, 100);
    routeRaftMessage(u.ctx, envelope({ regionId: 60 }), undefined);
    expect(dropped()).toEqual({ 'stale-peer': 1, 'no-peer': 1 });
    // A larger peer ID is a re-add: allowed.
    routeRaftMessage(u.ctx, envelope({ regionId: 60, toPeer: { id: 120, storeId: 1, role: 'voter' } }), undefined);
    expect(u.ctx.peers.get(60)?.peerId).toBe(120);
  });
  it('a full mailbox', () => {
    u = unitStore({ mailboxCapacity: 2 });
    for (let i = 0; i < 3; i++) routeRaftMessage(u.ctx, envelope({}), undefined);
    expect(u.ctx.peers.get(50)!.mailbox).toHaveLength(2);
    expect(dropped()).toEqual({ 'mailbox-full': 1 });
  });
  it('an overlapping initialized Region blocks creating a peer', () => {
    u = unitStore();
    bootstrapLeader(u); // Region 1 covers the whole key space
    routeRaftMessage(u.ctx, envelope({}), undefined);
    expect(u.ctx.peers.has(50)).toBe(false);
    expect(dropped()).toEqual({ 'no-peer': 1 });
  });
});

describe('the leader lease (lease-based reads)', () => {
  it('renews from a confirmed round, holds for 80% of the election timeout, and ends early', () => {
    u = unitStore({ readOnly: 'lease-based', tickIntervalMs: 100, electionTicks: 10 });
    const peer = bootstrapLeader(u);
    const committed = peer.raw.raft.raftLog.committed;
    expect(leaseReadIndex(u.ctx, peer)).toBe(0); // no round confirmed yet
    renewLease(u.ctx, peer, u.clock.ms);
    expect(peer.leaseUntilMs).toBe(u.clock.ms + 800);
    expect(leaseReadIndex(u.ctx, peer)).toBe(committed);
    u.clock.ms += 799;
    expect(leaseReadIndex(u.ctx, peer)).toBe(committed);
    u.clock.ms += 1;
    expect(leaseReadIndex(u.ctx, peer)).toBe(0); // expired by the monotonic clock
    renewLease(u.ctx, peer, u.clock.ms);
    expect(leaseReadIndex(u.ctx, peer)).toBe(committed);
    expireLease(peer); // a split, merge, conf change or transfer
    expect(leaseReadIndex(u.ctx, peer)).toBe(0);
  });
  it('a lease from an older term does not hold, and a renewal never shortens it', () => {
    u = unitStore({ readOnly: 'lease-based' });
    const peer = bootstrapLeader(u);
    renewLease(u.ctx, peer, u.clock.ms);
    const until = peer.leaseUntilMs;
    renewLease(u.ctx, peer, u.clock.ms - 500);
    expect(peer.leaseUntilMs).toBe(until);
    peer.leaseTerm = peer.raw.raft.term - 1;
    expect(leaseReadIndex(u.ctx, peer)).toBe(0);
  });
  it('is never used in the default safe mode', () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    renewLease(u.ctx, peer, u.clock.ms);
    expect(leaseReadIndex(u.ctx, peer)).toBe(0);
  });
});

describe('pending reads are bounded', () => {
  it('a read past maxPendingReadsPerPeer is answered ServerIsBusy; the waiting one is served', () => {
    u = unitStore({ maxPendingReadsPerPeer: 1 });
    const peer = bootstrapLeader(u);
    const got: string[] = [];
    const read = { type: 'get' as const, key: utf8('k') };
    startRead(u.ctx, peer, read, (r) => got.push(r.ok ? 'served' : r.error.type));
    startRead(u.ctx, peer, read, (r) => got.push(r.ok ? 'served' : r.error.type));
    expect(got).toEqual(['ServerIsBusy']);
    u.round();
    expect(got).toEqual(['ServerIsBusy', 'served']);
  });
});

describe('tombstones are bounded', () => {
  it('forgets the oldest past the limit and keeps the largest peer ID per Region', () => {
    const t = new Tombstones(2);
    t.set(1, 10);
    t.set(2, 20);
    t.set(1, 5); // keeps 10, and Region 1 becomes the newest
    t.set(3, 30);
    expect(t.size).toBe(2);
    expect(t.has(2)).toBe(false);
    expect(t.get(1)).toBe(10);
    expect(t.get(3)).toBe(30);
  });
});
