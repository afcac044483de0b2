// RawNode: the Ready contract, synchronous and asynchronous persistence.
import { describe, expect, it } from 'vitest';
import { ConfChangeError, ConfigError, ProposalDroppedError, StepLocalMsgError, StepPeerNotFoundError } from '../../src/errors';
import { MemoryStorage } from '../../src/memory-storage';
import { RawNode } from '../../src/raw-node';
import type { Ready } from '../../src/raw-node';
import { ConfChangeType, EntryType, MessageType } from '../../src/types';
import type { Message } from '../../src/types';
import { newSeededRandom } from '../../src/util';
import { msg } from './network';

const enc = new TextEncoder();
const dec = new TextDecoder();

function newNode(id: number, voters: number[], storage = new MemoryStorage({ voters })): RawNode {
  return new RawNode({ id, electionTick: 10, heartbeatTick: 1, maxInflightMsgs: 256, random: newSeededRandom(id) }, storage);
}

/** persistReady writes a Ready's durable parts to storage. */
function persistReady(s: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) s.applySnapshot(rd.snapshot);
  s.append(rd.entries);
  if (rd.hardState) s.setHardState(rd.hardState);
}

describe('RawNode', () => {
  it('refuses local messages and responses from unknown peers', () => {
    const rn = newNode(1, [1, 2]);
    expect(() => rn.step(msg({ msgType: MessageType.MsgHup, from: 1, to: 1 }))).toThrow(StepLocalMsgError);
    expect(() => rn.step(msg({ msgType: MessageType.MsgAppResp, from: 9, to: 1, term: 1 }))).toThrow(StepPeerNotFoundError);
    expect(() => newNode(0, [1])).toThrow(ConfigError);
  });

  it('single node: campaign, Ready, advance and LightReady with committed entries', () => {
    const s = new MemoryStorage({ voters: [1] });
    const rn = newNode(1, [1], s);
    expect(rn.hasReady()).toBe(false);
    rn.campaign();
    expect(rn.hasReady()).toBe(true);
    let rd = rn.ready();
    expect(rd.softState).toEqual({ leaderId: 1, raftState: 'Leader' });
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 });
    expect(rd.entries.map((e) => [e.index, e.term])).toEqual([[1, 1]]);
    expect(rd.mustSync).toBe(true);
    // Nothing is committed before our own append is durable.
    expect(rd.committedEntries).toEqual([]);
    persistReady(s, rd);
    let lr = rn.advance(rd);
    expect(lr.commitIndex).toBe(1);
    expect(lr.committedEntries.map((e) => e.index)).toEqual([1]);
    rn.advanceApply();
    rd = rn.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 1 });
    expect(rd.committedEntries).toEqual([]); // already handed out in the LightReady
    expect(rd.mustSync).toBe(false);
    persistReady(s, rd);
    rn.advance(rd);
    rn.propose(enc.encode('a'));
    rn.propose(enc.encode('b'));
    rd = rn.ready();
    expect(rd.entries.map((e) => dec.decode(e.data))).toEqual(['a', 'b']);
    persistReady(s, rd);
    lr = rn.advance(rd);
    expect(lr.committedEntries.map((e) => dec.decode(e.data))).toEqual(['a', 'b']);
    rn.advanceApply();
    expect(rn.status().applied).toBe(3);
    expect(rn.hasReady()).toBe(true); // the new commit index
    rd = rn.ready();
    expect(rd.hardState?.commit).toBe(3);
    rn.advance(rd);
    expect(rn.hasReady()).toBe(false);
  });

  it('a Ready is handed out once: entries are not repeated before advance', () => {
    const rn = newNode(1, [1]);
    rn.campaign();
    const rd1 = rn.ready();
    expect(rd1.entries.length).toBe(1);
    rn.propose(enc.encode('x'));
    const rd2 = rn.ready();
    expect(rd2.entries.map((e) => e.index)).toEqual([2]);
    expect(rd2.number).toBe(rd1.number + 1);
  });

  it('restarts from storage without re-emitting the stored hard state', () => {
    const s = new MemoryStorage({ voters: [1] });
    const rn = newNode(1, [1], s);
    rn.campaign();
    for (let i = 0; i < 3 && rn.hasReady(); i++) {
      const rd = rn.ready();
      persistReady(s, rd);
      rn.advance(rd);
      rn.advanceApply();
    }
    const applied = rn.status().applied;
    const rn2 = new RawNode({ id: 1, electionTick: 10, heartbeatTick: 1, maxInflightMsgs: 256, random: newSeededRandom(1), applied }, s);
    expect(rn2.status().hardState).toEqual(s.hardState);
    expect(rn2.hasReady()).toBe(false);
  });

  it('messages to send at once vs after persistence', () => {
    const ids = [1, 2, 3];
    const nodes = ids.map((id) => newNode(id, ids));
    nodes[0]!.campaign();
    const rd = nodes[0]!.ready();
    // Vote requests depend on our durable term and vote.
    expect(rd.messages).toEqual([]);
    expect(rd.persistedMessages.map((m) => [m.msgType, m.to])).toEqual([
      [MessageType.MsgRequestVote, 2],
      [MessageType.MsgRequestVote, 3],
    ]);
    nodes[1]!.step(rd.persistedMessages[0]!);
    const rd2 = nodes[1]!.ready();
    expect(rd2.hardState).toEqual({ term: 1, vote: 1, commit: 0 });
    expect(rd2.messages).toEqual([]);
    expect(rd2.persistedMessages.map((m) => [m.msgType, m.reject])).toEqual([[MessageType.MsgRequestVoteResponse, false]]);
  });

  it('asynchronous persistence: votes and acks wait for onPersistReady; the leader self-acks only when durable', () => {
    const ids = [1, 2, 3];
    const stores = ids.map((id) => new MemoryStorage({ voters: ids }));
    const nodes = ids.map((id, i) => newNode(id, ids, stores[i]!));
    const pending: { node: number; rd: Ready }[] = [];
    const wire: Message[] = [];
    const take = (i: number): Ready => {
      const rd = nodes[i]!.ready();
      wire.push(...rd.messages); // sent at once
      nodes[i]!.advanceAppendAsync(rd);
      pending.push({ node: i, rd });
      return rd;
    };
    /** writeAll makes every pending Ready durable in order, releasing its persistedMessages. */
    const writeAll = (only?: number): void => {
      for (const p of pending.filter((x) => only === undefined || x.node === only)) {
        persistReady(stores[p.node]!, p.rd);
        wire.push(...p.rd.persistedMessages);
        nodes[p.node]!.onPersistReady(p.rd.number);
        pending.splice(pending.indexOf(p), 1);
      }
    };
    const deliver = (): void => {
      while (wire.length > 0) {
        const m = wire.shift()!;
        nodes[m.to - 1]!.step(m);
      }
    };
    const round = (): void => {
      for (let i = 0; i < 3; i++) if (nodes[i]!.hasReady()) take(i);
    };

    nodes[0]!.campaign();
    round();
    deliver();
    expect(wire).toEqual([]); // the vote requests wait for node 1's write
    writeAll();
    deliver();
    round();
    deliver();
    writeAll();
    deliver();
    expect(nodes[0]!.raft.state).toBe('Leader');
    // Settle the no-op.
    for (let i = 0; i < 5; i++) {
      round();
      deliver();
      writeAll();
      deliver();
    }
    const lead = nodes[0]!.raft;
    const commit0 = lead.raftLog.committed;

    nodes[0]!.propose(enc.encode('p'));
    round(); // leader's MsgApp goes out before its own write
    const li = lead.raftLog.lastIndex();
    expect(lead.prs.progress.get(1)!.match).toBe(li - 1);
    deliver();
    round(); // followers append; their MsgAppResp waits for their writes
    deliver();
    expect(lead.raftLog.committed).toBe(commit0);
    writeAll(1); // follower 2's write completes
    deliver();
    // Only follower 2 has the entry durably: one of three, no quorum yet.
    expect(lead.prs.progress.get(2)!.match).toBe(li);
    expect(lead.raftLog.committed).toBe(commit0);
    writeAll(0); // the leader's own write completes: self-ack makes a quorum
    expect(lead.prs.progress.get(1)!.match).toBe(li);
    expect(lead.raftLog.committed).toBe(li);
    round();
    const last = pending.find((p) => p.node === 0)!.rd;
    expect(last.committedEntries.map((e) => dec.decode(e.data))).toEqual(['p']);
  });

  it('proposeConfChange and applyConfChange add a learner', () => {
    const s = new MemoryStorage({ voters: [1] });
    const rn = newNode(1, [1], s);
    rn.campaign();
    const drain = (): Ready[] => {
      const out: Ready[] = [];
      while (rn.hasReady()) {
        const rd = rn.ready();
        out.push(rd);
        persistReady(s, rd);
        const lr = rn.advance(rd);
        for (const e of [...rd.committedEntries, ...lr.committedEntries]) {
          if (e.entryType === EntryType.EntryConfChange) rn.applyConfChange({ changeType: ConfChangeType.AddLearnerNode, nodeId: 2 });
        }
        rn.advanceApply();
      }
      return out;
    };
    drain();
    rn.proposeConfChange({ changeType: ConfChangeType.AddLearnerNode, nodeId: 2 });
    drain();
    expect(rn.status().config.learners).toEqual([2]);
    expect(rn.status().progress?.get(2)?.isLearner).toBe(true);
  });

  it('invalid conf changes: undecodable proposals are dropped, impossible applies throw ConfChangeError', () => {
    const rn = newNode(1, [1, 2, 3]);
    rn.raft.becomeCandidate();
    rn.raft.becomeLeader();
    const bad = msg({ msgType: MessageType.MsgProp, from: 1, entries: [{ entryType: EntryType.EntryConfChangeV2, term: 0, index: 0, data: new Uint8Array([9, 9]) }] });
    expect(() => rn.step(bad)).toThrow(ProposalDroppedError);
    expect(() =>
      rn.applyConfChange({
        transition: 0,
        changes: [],
      }),
    ).toThrow(ConfChangeError);
    // Two voter changes without joint consensus: Auto with 2 changes enters joint instead.
    const cs = rn.applyConfChange({
      transition: 0,
      changes: [
        { changeType: ConfChangeType.AddNode, nodeId: 4 },
        { changeType: ConfChangeType.AddNode, nodeId: 5 },
      ],
    });
    expect(cs.votersOutgoing).toEqual([1, 2, 3]);
    expect(cs.autoLeave).toBe(true);
    expect(() => rn.applyConfChange({ changeType: ConfChangeType.AddNode, nodeId: 6 })).toThrow(/joint/);
  });

  it('transferLeader, readIndex and reportUnreachable route through step', () => {
    const rn = newNode(1, [1]);
    expect(() => rn.propose(enc.encode('x'))).toThrow(ProposalDroppedError);
    rn.campaign();
    rn.readIndex(enc.encode('ctx'));
    const rd = rn.ready();
    expect(rd.readStates.map((r) => dec.decode(r.requestCtx))).toEqual(['ctx']);
    rn.reportUnreachable(1);
    rn.transferLeader(1);
    expect(rn.raft.leadTransferee).toBe(0);
  });
});
