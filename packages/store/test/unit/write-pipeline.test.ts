import { afterEach, describe, expect, it, vi } from 'vitest';
import { LogBatch } from '@flotilla/log-engine';
import { MessageType, newMessage, type Entry, type Message } from '@flotilla/raft-core';
import { utf8, type Peer as PeerMeta, type RaftMessage, type Region } from '@flotilla/proto';
import { writeInitialRegion } from '../../src/bootstrap';
import type { StoreContext } from '../../src/context';
import { recover } from '../../src/operation/life';
import type { Peer } from '../../src/raft/peer';
import type { CommandResult } from '../../src/raft/proposal';
import { routeRaftMessage } from '../../src/router/router';
import { unitStore, type UnitStore } from './fake-context';

// The Ready contract under the async write pipeline (issue #19 item 1,
// batch/log-pipeline.ts), with a log writer that completes out of band:
// each round's write is held until the test releases it, in order, as the
// engine's writer thread completes them. Nothing that depends on a held
// write may be visible: no MsgAppResp or vote answer, no apply, no client
// answer; a leader's MsgApp leaves before its own append is durable.

const stores: UnitStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

const EMPTY = new Uint8Array(0);
const REGION = 1;
/** Region 1 with three voters: peer 2 here (store 1), peers 3 and 4 on stores 2 and 3. */
const PEERS: PeerMeta[] = [
  { id: 2, storeId: 1, role: 'voter' },
  { id: 3, storeId: 2, role: 'voter' },
  { id: 4, storeId: 3, role: 'voter' },
];
const region = (): Region => ({ id: REGION, startKey: EMPTY, endKey: EMPTY, epoch: { confVer: 1, version: 1 }, peers: PEERS });

/** HeldWrites holds every async round write until released (oldest first); a blocking write releases those before it, as the writer thread's order does. */
interface HeldWrites {
  count(): number;
  releaseOne(): void;
  releaseAll(): void;
}

function holdWrites(ctx: StoreContext): HeldWrites {
  const held: (() => void)[] = [];
  const writeLog = ctx.writeLog.bind(ctx);
  const releaseAll = (): void => {
    for (const r of held.splice(0)) r();
  };
  ctx.writeLogAsync = (batch) => {
    const copy = new LogBatch();
    copy.ops.push(...batch.ops);
    return new Promise<void>((resolve, reject) =>
      held.push(() => {
        try {
          writeLog(copy);
          resolve();
        } catch (e) {
          reject(e as Error);
        }
      }),
    );
  };
  ctx.writeLog = (batch) => {
    releaseAll();
    writeLog(batch);
  };
  return { count: () => held.length, releaseOne: () => held.shift()?.(), releaseAll };
}

/** threeVoterStore opens store 1 with the async pipeline and Region 1's follower peer 2 on it. */
function threeVoterStore(overrides: Parameters<typeof unitStore>[0] = {}, dir?: string): { u: UnitStore; peer: Peer } {
  const u = unitStore({ writePipeline: 'async', hibernate: false, ...overrides }, 1, {}, dir);
  stores.push(u);
  if (dir === undefined) writeInitialRegion(u.ctx, region());
  recover(u.ctx);
  return { u, peer: u.ctx.peers.get(REGION)! };
}

/** deliver routes a raft message from peer `from` (on store from - 1) to peer 2 here. */
function deliver(u: UnitStore, from: number, m: Partial<Message> & { msgType: MessageType }): void {
  const message = newMessage(m.msgType, { ...m, from, to: 2 });
  const rm: RaftMessage = { regionId: REGION, fromPeer: PEERS.find((p) => p.id === from)!, toPeer: PEERS[0]!, regionEpoch: { confVer: 1, version: 1 }, message, startKey: EMPTY, endKey: EMPTY, isTombstone: false };
  routeRaftMessage(u.ctx, rm, undefined);
}

/** sentOf: the raft messages of a type this store sent so far. */
const sentOf = (u: UnitStore, t: MessageType): Message[] => u.sent.map((x) => x.msg.message).filter((m) => m.msgType === t);

/** settled waits (bounded) until a released write's completion reached the store, then runs the rounds it makes due. */
async function settled(u: UnitStore): Promise<void> {
  await vi.waitFor(() => expect(u.ctx.dirty.size).toBeGreaterThan(0), { timeout: 5_000, interval: 1 });
  u.round();
}

/** electHere makes peer 2 the leader of term 6, releasing writes as the election needs them. */
async function electHere(u: UnitStore, peer: Peer, held: HeldWrites): Promise<void> {
  peer.raw.campaign();
  u.ctx.markDirty(peer);
  u.round();
  const pre = sentOf(u, MessageType.MsgRequestPreVote).filter((m) => m.to === 3);
  expect(pre.length).toBeGreaterThan(0);
  deliver(u, 3, { msgType: MessageType.MsgRequestPreVoteResponse, term: pre[0]!.term });
  u.round();
  // The candidate's own vote counts only once its term and vote are durable.
  held.releaseAll();
  await settled(u);
  const vote = sentOf(u, MessageType.MsgRequestVote).filter((m) => m.to === 3);
  expect(vote.length).toBeGreaterThan(0);
  deliver(u, 3, { msgType: MessageType.MsgRequestVoteResponse, term: vote[0]!.term });
  u.round();
  expect(peer.isLeader).toBe(true);
  // The leader's empty entry of its term: acknowledged by both followers and durable here.
  held.releaseAll();
  await settled(u);
  const last = peer.raw.raft.raftLog.lastIndex();
  for (const f of [3, 4]) deliver(u, f, { msgType: MessageType.MsgAppResp, term: peer.raw.raft.term, index: last });
  u.round();
  expect(peer.raw.raft.raftLog.committed).toBe(last);
  expect(held.count()).toBe(0);
}

/** put queues a client write through the peer's mailbox (as the client API does) and returns its answers. */
function put(u: UnitStore, peer: Peer, key: string): CommandResult[] {
  const answers: CommandResult[] = [];
  const req = { id: 1, header: { regionId: peer.regionId, regionEpoch: peer.region.epoch }, op: 'write' as const, writes: [{ type: 'put' as const, key: utf8(key), value: utf8(`v-${key}`) }] };
  u.ctx.send(peer, { kind: 'command', req, cb: (r) => answers.push(r) });
  return answers;
}

const text = (v: Uint8Array | undefined): string | undefined => (v === undefined ? undefined : new TextDecoder().decode(v));
const entry = (index: number, term: number): Entry => ({ entryType: 0, term, index, data: EMPTY }) as Entry;

describe('the async write pipeline keeps the Ready contract', () => {
  it('a follower answers MsgApp only once the append is durable, also for a repeat that wrote nothing itself, and applies nothing before', async () => {
    const { u, peer } = threeVoterStore();
    const held = holdWrites(u.ctx);
    deliver(u, 3, { msgType: MessageType.MsgApp, term: 6, index: 5, logTerm: 5, entries: [entry(6, 6)], commit: 5 });
    u.round();
    expect(held.count()).toBe(1);
    expect(sentOf(u, MessageType.MsgAppResp)).toEqual([]);
    // The same append again, now with the commit index: this round has nothing of its
    // own to write, but its answer acknowledges entry 6, which is still in flight.
    deliver(u, 3, { msgType: MessageType.MsgApp, term: 6, index: 5, logTerm: 5, entries: [entry(6, 6)], commit: 6 });
    u.round();
    expect(sentOf(u, MessageType.MsgAppResp)).toEqual([]);
    expect(peer.raw.raft.raftLog.committed).toBe(6);
    expect(peer.apply.appliedIndex).toBe(5);
    expect(u.ctx.log.lastIndex(REGION)).toBe(5);

    held.releaseAll();
    await settled(u);
    const resps = sentOf(u, MessageType.MsgAppResp);
    expect(resps.length).toBeGreaterThanOrEqual(2);
    expect(resps.every((m) => m.to === 3 && !m.reject && m.index === 6)).toBe(true);
    expect(u.ctx.log.lastIndex(REGION)).toBe(6);
    u.round();
    expect(peer.apply.appliedIndex).toBe(6);
  });

  it('a vote is answered only once the term and vote are durable', async () => {
    const { u } = threeVoterStore();
    const held = holdWrites(u.ctx);
    deliver(u, 3, { msgType: MessageType.MsgRequestVote, term: 6, index: 5, logTerm: 5 });
    u.round();
    expect(held.count()).toBe(1);
    expect(sentOf(u, MessageType.MsgRequestVoteResponse)).toEqual([]);
    expect(u.ctx.log.raftState(REGION).hardState.vote).toBe(0);
    held.releaseAll();
    await settled(u);
    expect(u.ctx.log.raftState(REGION).hardState).toMatchObject({ term: 6, vote: 3 });
    expect(sentOf(u, MessageType.MsgRequestVoteResponse).map((m) => ({ to: m.to, term: m.term, reject: m.reject }))).toEqual([{ to: 3, term: 6, reject: false }]);
  });

  it('a leader sends MsgApp before its own append is durable, but applies and answers only after it', async () => {
    const { u, peer } = threeVoterStore();
    const held = holdWrites(u.ctx);
    await electHere(u, peer, held);
    const before = sentOf(u, MessageType.MsgApp).length;
    const answers = put(u, peer, 'k');
    u.round();
    const index = peer.raw.raft.raftLog.lastIndex();
    expect(held.count()).toBe(1);
    const apps = sentOf(u, MessageType.MsgApp).slice(before);
    expect(apps.filter((m) => m.entries.some((e) => e.index === index)).map((m) => m.to).sort()).toEqual([3, 4]);
    // Both followers acknowledge: the entry commits without the leader's own append…
    for (const f of [3, 4]) deliver(u, f, { msgType: MessageType.MsgAppResp, term: peer.raw.raft.term, index });
    u.round();
    expect(peer.raw.raft.raftLog.committed).toBe(index);
    // …but it is not applied, nor answered, until that append is durable here.
    expect(answers).toEqual([]);
    expect(u.ctx.sm.get(utf8('k'))).toBeUndefined();
    held.releaseAll();
    await settled(u);
    u.round();
    expect(answers).toEqual([{ ok: true }]);
    expect(text(u.ctx.sm.get(utf8('k')))).toBe('v-k');
  });

  it('a crash between issuing a write and its completion loses nothing acknowledged and acknowledges nothing lost', async () => {
    const { u, peer } = threeVoterStore();
    const held = holdWrites(u.ctx);
    await electHere(u, peer, held);
    const acked = put(u, peer, 'acked');
    u.round();
    const ackedIndex = peer.raw.raft.raftLog.lastIndex();
    held.releaseAll();
    await settled(u);
    for (const f of [3, 4]) deliver(u, f, { msgType: MessageType.MsgAppResp, term: peer.raw.raft.term, index: ackedIndex });
    u.round();
    expect(acked).toEqual([{ ok: true }]);

    const lost = put(u, peer, 'lost');
    u.round();
    const lostIndex = peer.raw.raft.raftLog.lastIndex();
    for (const f of [3, 4]) deliver(u, f, { msgType: MessageType.MsgAppResp, term: peer.raw.raft.term, index: lostIndex });
    u.round();
    expect(held.count()).toBe(1);
    expect(lost).toEqual([]);
    // The process dies here: the held write never reaches the disk. (The
    // engines are closed, and the writer thread waited for, before the
    // files are opened again: two writer connections on one file would race.)
    stores.splice(stores.indexOf(u), 1);
    u.ctx.closed = true;
    await u.ctx.log.close();
    u.ctx.sm.close();

    const { u: again } = threeVoterStore({}, u.dir);
    expect(again.ctx.log.lastIndex(REGION)).toBe(ackedIndex);
    expect(text(again.ctx.sm.get(utf8('acked')))).toBe('v-acked');
    expect(again.ctx.sm.get(utf8('lost'))).toBeUndefined();
    expect(lost).toEqual([]);
  });

  it('bounds the writes in flight: at maxInflightLogWrites a round writes synchronously, after the ones before it', async () => {
    const { u, peer } = threeVoterStore({ maxInflightLogWrites: 2 });
    const held = holdWrites(u.ctx);
    await electHere(u, peer, held);
    const answers: CommandResult[][] = [];
    for (const k of ['a', 'b']) {
      answers.push(put(u, peer, k));
      u.round();
    }
    expect(held.count()).toBe(2);
    expect(u.ctx.inflightWrites.size).toBe(2);
    answers.push(put(u, peer, 'c'));
    u.round();
    // The third write went through the blocking path, which wrote the two before it first.
    expect(held.count()).toBe(0);
    expect(u.ctx.inflightWrites.size).toBe(0);
    const last = peer.raw.raft.raftLog.lastIndex();
    expect(u.ctx.log.lastIndex(REGION)).toBe(last);
    expect(peer.raw.raft.raftLog.persisted).toBe(last);
    for (const f of [3, 4]) deliver(u, f, { msgType: MessageType.MsgAppResp, term: peer.raw.raft.term, index: last });
    u.round();
    expect(answers).toEqual([[{ ok: true }], [{ ok: true }], [{ ok: true }]]);
  });
});
