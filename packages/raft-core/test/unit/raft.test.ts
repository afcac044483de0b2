// Feature tests of the Raft state machine beyond the paper: pre-vote,
// check-quorum and lease, leader transfer, priority, flow control and
// backtracking, snapshots, proposal limits, reads, learners, conf changes.
import { describe, expect, it } from 'vitest';
import type { Config } from '../../src/config';
import { encodeConfChangeEntry } from '../../src/confchange-codec';
import { ProposalDroppedError, RequestSnapshotDroppedError } from '../../src/errors';
import { CAMPAIGN_TRANSFER, Raft, StateRole } from '../../src/raft';
import { ProgressState } from '../../src/tracker/progress';
import { ConfChangeTransition, ConfChangeType, EntryType, MessageType } from '../../src/types';
import type { Message } from '../../src/types';
import { Network, entry, msg, newTestMemoryStorage, newTestRaft, propose, readMessages } from './network';

const enc = new TextEncoder();

function tickN(r: Raft, n: number): void {
  for (let i = 0; i < n; i++) r.tick();
}

/** cluster builds n voters, elects 1 and commits its no-op everywhere. */
function cluster(n: number, configure: (c: Config) => void = () => {}): Network {
  const net = new Network(Array.from({ length: n }, () => undefined), configure);
  net.campaign(1);
  expect(net.raft(1).state).toBe(StateRole.Leader);
  return net;
}

describe('pre-vote', () => {
  it('a partitioned node does not raise its term and does not disrupt the leader on rejoin', () => {
    const net = cluster(3, (c) => {
      c.preVote = true;
    });
    net.isolate(3);
    const r3 = net.raft(3);
    for (let i = 0; i < 100; i++) {
      r3.tick();
      net.send(readMessages(r3));
    }
    expect(r3.term).toBe(1);
    expect(r3.state).toBe(StateRole.PreCandidate);
    net.recover();
    net.send([msg({ msgType: MessageType.MsgBeat, from: 1, to: 1 })]);
    expect(net.raft(1).state).toBe(StateRole.Leader);
    expect(net.raft(1).term).toBe(1);
    expect(r3.state).toBe(StateRole.Follower);
  });

  it('pre-vote then vote elects a leader with the term raised once', () => {
    const net = new Network([undefined, undefined, undefined], (c) => {
      c.preVote = true;
    });
    net.campaign(2);
    expect(net.raft(2).state).toBe(StateRole.Leader);
    expect(net.raft(2).term).toBe(1);
  });
});

describe('check-quorum and leader lease', () => {
  it('an isolated leader steps down after an election timeout', () => {
    const net = cluster(3, (c) => {
      c.checkQuorum = true;
    });
    const lead = net.raft(1);
    net.isolate(1);
    // The first check passes on the activity of the election itself and
    // marks everyone inactive; the second finds no quorum.
    tickN(lead, lead.electionTimeout);
    expect(lead.state).toBe(StateRole.Leader);
    tickN(lead, lead.electionTimeout);
    expect(lead.state).toBe(StateRole.Follower);
  });

  it('a follower that heard from the leader recently ignores a disruptive vote request', () => {
    const net = cluster(3, (c) => {
      c.checkQuorum = true;
    });
    const r2 = net.raft(2);
    expect(r2.leaderId).toBe(1);
    r2.step(msg({ msgType: MessageType.MsgRequestVote, from: 3, to: 2, term: 5, index: 100, logTerm: 4 }));
    expect(r2.term).toBe(1);
    expect(readMessages(r2)).toEqual([]);
    // After the lease (an election timeout without the leader) it votes.
    tickN(r2, r2.electionTimeout);
    r2.step(msg({ msgType: MessageType.MsgRequestVote, from: 3, to: 2, term: 5, index: 100, logTerm: 4 }));
    expect(r2.term).toBe(5);
    expect(r2.vote).toBe(3);
  });

  it('a vote request from a leader transfer is granted despite the lease', () => {
    const net = cluster(3, (c) => {
      c.checkQuorum = true;
    });
    const r2 = net.raft(2);
    r2.step(msg({ msgType: MessageType.MsgRequestVote, from: 3, to: 2, term: 2, index: 100, logTerm: 4, context: CAMPAIGN_TRANSFER }));
    expect(r2.term).toBe(2);
    expect(r2.vote).toBe(3);
  });

  it('a stale leader learns the new term from a follower it sends to (check-quorum response)', () => {
    const net = cluster(3, (c) => {
      c.checkQuorum = true;
    });
    const r2 = net.raft(2);
    r2.becomeFollower(3, 0);
    r2.step(msg({ msgType: MessageType.MsgHeartbeat, from: 1, to: 2, term: 1 }));
    const out = readMessages(r2);
    expect(out.map((m) => [m.msgType, m.to, m.term])).toEqual([[MessageType.MsgAppResp, 1, 3]]);
    net.raft(1).step(out[0]!);
    expect(net.raft(1).state).toBe(StateRole.Follower);
    expect(net.raft(1).term).toBe(3);
  });
});

describe('leader transfer', () => {
  it('transfers to an up-to-date follower at once', () => {
    const net = cluster(3);
    net.send([msg({ msgType: MessageType.MsgTransferLeader, from: 2, to: 1 })]);
    expect(net.raft(2).state).toBe(StateRole.Leader);
    expect(net.raft(1).state).toBe(StateRole.Follower);
    expect(net.raft(2).term).toBe(2);
  });

  it('catches a lagging transferee up first, and drops proposals meanwhile', () => {
    const net = cluster(3);
    net.isolate(3);
    net.propose(1, 'a');
    net.propose(1, 'b');
    net.recover();
    const lead = net.raft(1);
    // Hold the transferee's responses back so the transfer stays pending.
    net.ignore(MessageType.MsgAppResp);
    net.send([msg({ msgType: MessageType.MsgTransferLeader, from: 3, to: 1 })]);
    expect(lead.leadTransferee).toBe(3);
    expect(() => propose(lead)).toThrow(ProposalDroppedError);
    net.recover();
    net.send([msg({ msgType: MessageType.MsgBeat, from: 1, to: 1 })]);
    expect(net.raft(3).state).toBe(StateRole.Leader);
  });

  it('aborts after an election timeout', () => {
    const net = cluster(3);
    net.isolate(3);
    const lead = net.raft(1);
    net.send([msg({ msgType: MessageType.MsgTransferLeader, from: 3, to: 1 })]);
    expect(lead.leadTransferee).toBe(3);
    for (let i = 0; i < lead.heartbeatTimeout; i++) lead.tick();
    expect(lead.leadTransferee).toBe(3);
    tickN(lead, lead.electionTimeout);
    expect(lead.leadTransferee).toBe(0);
    expect(lead.state).toBe(StateRole.Leader);
  });

  // issue #15 item 9: a MsgTimeoutNow delivered after the transfer was given
  // up (6.5 s late was seen) still makes its receiver campaign with votes that
  // ignore the leader lease, while the old leader trusts its lease again.
  it('a MsgTimeoutNow that arrives after the transfer was abandoned cannot make the old leader serve a stale lease read', () => {
    const net = cluster(3, (c) => {
      c.checkQuorum = true;
      c.readOnlyOption = 'lease-based';
    });
    const lead = net.raft(1);
    const readIndex = (ctx: string) => lead.step(msg({ msgType: MessageType.MsgReadIndex, from: 1, to: 1, entries: [{ entryType: 0, term: 0, index: 0, data: enc.encode(ctx) }] }));
    let late: Message | undefined;
    net.msgHook = (m) => {
      if (m.msgType !== MessageType.MsgTimeoutNow) return true;
      late = m;
      return false;
    };
    net.send([msg({ msgType: MessageType.MsgTransferLeader, from: 3, to: 1 })]);
    net.msgHook = undefined;
    expect(late).toBeDefined();
    expect(lead.leadTransferee).toBe(3);
    // The transfer times out; the leader keeps its quorum and its term.
    for (let i = 0; i < lead.electionTimeout; i++) {
      lead.tick();
      net.send(readMessages(lead));
    }
    expect(lead.leadTransferee).toBe(0);
    expect(lead.state).toBe(StateRole.Leader);
    const before = lead.raftLog.committed;

    // 1 is cut off; the late MsgTimeoutNow reaches 3, whose forced campaign
    // 2 grants although it heard from 1 within its lease. 3 commits a write.
    net.isolate(1);
    net.send([late!]);
    expect(net.raft(3).state).toBe(StateRole.Leader);
    expect(net.raft(3).term).toBe(2);
    net.propose(3, 'w');
    const wIndex = net.raft(3).raftLog.committed;
    expect(net.raft(2).raftLog.committed).toBe(wIndex);
    expect(wIndex).toBeGreaterThan(before);

    // 1 still leads term 1 in its own view. A lease read now would be
    // answered at `before`, missing w: 1 must confirm with a heartbeat
    // round instead, which cannot succeed while it is cut off.
    expect(lead.state).toBe(StateRole.Leader);
    expect(lead.term).toBe(1);
    readIndex('after-late-transfer');
    expect(lead.readStates).toEqual([]);
    expect(readMessages(lead).filter((m) => m.msgType === MessageType.MsgHeartbeat).length).toBe(2);
  });

  it('after sending MsgTimeoutNow a leader confirms every read with a heartbeat round until its term ends', () => {
    const net = cluster(3, (c) => {
      c.checkQuorum = true;
      c.readOnlyOption = 'lease-based';
    });
    const lead = net.raft(1);
    const readIndex = (ctx: string) => net.send([msg({ msgType: MessageType.MsgReadIndex, from: 1, to: 1, entries: [{ entryType: 0, term: 0, index: 0, data: enc.encode(ctx) }] })]);
    net.ignore(MessageType.MsgTimeoutNow);
    net.send([msg({ msgType: MessageType.MsgTransferLeader, from: 3, to: 1 })]);
    net.recover();
    for (let i = 0; i < lead.electionTimeout; i++) {
      lead.tick();
      net.send(readMessages(lead));
    }
    expect(lead.leadTransferee).toBe(0);
    expect(lead.leaseForfeited).toBe(true);
    // Still answered (the network is whole), but through a confirmed round.
    let heartbeats = 0;
    net.msgHook = (m) => {
      if (m.msgType === MessageType.MsgHeartbeat) heartbeats++;
      return true;
    };
    readIndex('r1');
    expect(heartbeats).toBe(2);
    expect(lead.readStates.map((r) => r.index)).toEqual([lead.raftLog.committed]);
    // A new term restores the lease: here 1 hands over to 2 (which gives up
    // its own lease for term 2) and gets it back in term 3.
    net.msgHook = undefined;
    net.send([msg({ msgType: MessageType.MsgTransferLeader, from: 2, to: 1 })]);
    expect(net.raft(2).state).toBe(StateRole.Leader);
    expect(lead.leaseForfeited).toBe(false);
    net.send([msg({ msgType: MessageType.MsgTransferLeader, from: 1, to: 2 })]);
    expect(lead.state).toBe(StateRole.Leader);
    expect(lead.term).toBe(3);
    expect(lead.leaseForfeited).toBe(false);
    lead.readStates = [];
    heartbeats = 0;
    net.msgHook = (m) => {
      if (m.msgType === MessageType.MsgHeartbeat) heartbeats++;
      return true;
    };
    readIndex('r2');
    expect(heartbeats).toBe(0);
    expect(lead.readStates.map((r) => r.index)).toEqual([lead.raftLog.committed]);
  });

  it('ignores transfers to learners and to itself', () => {
    const s = newTestMemoryStorage([1, 2], [3]);
    const r = newTestRaft(1, 10, 1, s);
    r.becomeCandidate();
    r.becomeLeader();
    r.step(msg({ msgType: MessageType.MsgTransferLeader, from: 3, to: 1 }));
    expect(r.leadTransferee).toBe(0);
    r.step(msg({ msgType: MessageType.MsgTransferLeader, from: 1, to: 1 }));
    expect(r.leadTransferee).toBe(0);
  });
});

describe('priority elections', () => {
  it('a voter refuses an equally up-to-date candidate of lower priority, but not a longer log', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]), { priority: 5 });
    r.step(msg({ msgType: MessageType.MsgRequestVote, from: 2, to: 1, term: 2, index: 0, logTerm: 0, priority: 1 }));
    expect(readMessages(r).map((m) => m.reject)).toEqual([true]);
    r.step(msg({ msgType: MessageType.MsgRequestVote, from: 2, to: 1, term: 3, index: 0, logTerm: 0, priority: 5 }));
    expect(readMessages(r).map((m) => m.reject)).toEqual([false]);
    const r2 = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]), { priority: 5 });
    r2.step(msg({ msgType: MessageType.MsgRequestVote, from: 2, to: 1, term: 2, index: 3, logTerm: 1, priority: 1 }));
    expect(readMessages(r2).map((m) => m.reject)).toEqual([false]);
  });

  it('the candidate advertises its priority', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]), { priority: 7 });
    r.step(msg({ msgType: MessageType.MsgHup, from: 1, to: 1 }));
    expect(readMessages(r).map((m) => m.priority)).toEqual([7, 7]);
  });
});

describe('replication flow control and backtracking', () => {
  it('replicate state pipelines up to maxInflightMsgs, then pauses until acks', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2]), { maxInflightMsgs: 3 });
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    r.prs.progress.get(2)!.becomeReplicate();
    for (let i = 0; i < 10; i++) propose(r, `d${i}`);
    const apps = readMessages(r).filter((m) => m.msgType === MessageType.MsgApp && m.to === 2);
    expect(apps.length).toBe(3);
    expect(r.prs.progress.get(2)!.isPaused()).toBe(true);
    // Ack the first message: the window opens and the rest goes out.
    r.step(msg({ msgType: MessageType.MsgAppResp, from: 2, to: 1, term: 1, index: apps[0]!.index + apps[0]!.entries.length }));
    const more = readMessages(r).filter((m) => m.msgType === MessageType.MsgApp && m.to === 2);
    expect(more.length).toBeGreaterThan(0);
    expect(more[0]!.entries.length).toBeGreaterThan(1); // the rest, batched
  });

  it('respects maxInflightBytes', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2]), { maxInflightMsgs: 100, maxSizePerMsg: 10, maxInflightBytes: 25 });
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    r.prs.progress.get(2)!.becomeReplicate();
    for (let i = 0; i < 10; i++) propose(r, '0123456789');
    const apps = readMessages(r).filter((m) => m.msgType === MessageType.MsgApp && m.to === 2);
    // One entry per message (maxSizePerMsg 10): the empty no-op, then three
    // 10-byte entries reach the 25-byte budget.
    expect(apps.map((m) => m.entries.map((e) => e.data.length))).toEqual([[0], [10], [10], [10]]);
    expect(r.prs.progress.get(2)!.inflights.bytes()).toBe(30);
    expect(r.prs.progress.get(2)!.isPaused()).toBe(true);
  });

  it('fast backtracking skips a divergent suffix in few round trips', () => {
    // Follower 2 has a long log of term-2 entries that the leader (term 3+) never had.
    const s1 = newTestMemoryStorage([1, 2, 3]);
    s1.append([entry(1, 1), ...Array.from({ length: 5 }, (_, i) => entry(i + 2, 3))]);
    const s2 = newTestMemoryStorage([1, 2, 3]);
    s2.append([entry(1, 1), ...Array.from({ length: 50 }, (_, i) => entry(i + 2, 2))]);
    const r1 = newTestRaft(1, 10, 1, s1);
    r1.loadStateForTest(3, 0, 1);
    const r2 = newTestRaft(2, 10, 1, s2);
    r2.loadStateForTest(3, 0, 1);
    const net = new Network([r1, r2, undefined]);
    let rejections = 0;
    net.msgHook = (m: Message) => {
      if (m.msgType === MessageType.MsgAppResp && m.reject) rejections++;
      return true;
    };
    net.campaign(1);
    expect(r1.state).toBe(StateRole.Leader);
    expect(rejections).toBeLessThanOrEqual(2);
    expect(r2.raftLog.allEntries().map((e) => [e.index, e.term])).toEqual(r1.raftLog.allEntries().map((e) => [e.index, e.term]));
  });

  it('a heartbeat response unblocks a paused probe', () => {
    const net = cluster(3);
    const pr = net.raft(1).prs.progress.get(2)!;
    pr.becomeProbe();
    net.ignore(MessageType.MsgAppResp);
    net.propose(1, 'x');
    expect(pr.state).toBe(ProgressState.Probe);
    expect(pr.isPaused()).toBe(true);
    net.recover();
    net.send([msg({ msgType: MessageType.MsgBeat, from: 1, to: 1 })]);
    expect(pr.state).toBe(ProgressState.Replicate);
    expect(pr.match).toBe(net.raft(1).raftLog.lastIndex());
  });

  it('MsgUnreachable moves a replicating follower back to probe', () => {
    const net = cluster(3);
    net.propose(1, 'x');
    const lead = net.raft(1);
    expect(lead.prs.progress.get(2)!.state).toBe(ProgressState.Replicate);
    lead.step(msg({ msgType: MessageType.MsgUnreachable, from: 2, to: 1 }));
    expect(lead.prs.progress.get(2)!.state).toBe(ProgressState.Probe);
  });
});

describe('snapshots', () => {
  it('sends a snapshot to a follower that needs compacted entries; reportSnapshot resumes probing', () => {
    const net = cluster(3);
    net.isolate(3);
    for (let i = 0; i < 5; i++) net.propose(1, `v${i}`);
    const lead = net.raft(1);
    const s1 = net.storage.get(1)!;
    lead.raftLog.appliedTo(lead.raftLog.committed);
    s1.createSnapshot(lead.raftLog.committed, lead.prs.confState(), enc.encode('state'));
    s1.compact(lead.raftLog.committed);
    net.recover();
    // Catch 3 up; hold back its MsgSnapStatus-equivalent by inspecting progress.
    let sawSnapshot = false;
    net.msgHook = (m) => {
      if (m.msgType === MessageType.MsgSnapshot) sawSnapshot = true;
      return true;
    };
    net.send([msg({ msgType: MessageType.MsgBeat, from: 1, to: 1 })]);
    expect(sawSnapshot).toBe(true);
    const r3 = net.raft(3);
    expect(r3.raftLog.committed).toBe(lead.raftLog.committed);
    expect(r3.raftLog.firstIndex()).toBe(lead.raftLog.committed + 1);
    // The follower's MsgAppResp after restoring moved it out of Snapshot state.
    const pr = lead.prs.progress.get(3)!;
    expect(pr.state).toBe(ProgressState.Replicate);
    expect(pr.match).toBe(lead.raftLog.committed);
    // A successful report on a snapshot still in flight resumes probing past it.
    pr.becomeSnapshot(pr.match);
    expect(pr.isPaused()).toBe(true);
    lead.step(msg({ msgType: MessageType.MsgSnapStatus, from: 3, to: 1 }));
    expect(pr.state).toBe(ProgressState.Probe);
    expect(pr.next).toBe(pr.match + 1);
    net.send([msg({ msgType: MessageType.MsgBeat, from: 1, to: 1 })]);
    net.propose(1, 'after');
    expect(r3.raftLog.lastIndex()).toBe(lead.raftLog.lastIndex());
  });

  it('a follower may request a snapshot (raft-rs request_snapshot)', () => {
    const net = cluster(3);
    net.propose(1, 'x');
    const lead = net.raft(1);
    const r2 = net.raft(2);
    const s1 = net.storage.get(1)!;
    lead.raftLog.appliedTo(lead.raftLog.committed);
    s1.createSnapshot(lead.raftLog.committed, lead.prs.confState(), enc.encode('state'));
    // Leaders cannot request; followers without a current-term last entry cannot either.
    expect(() => lead.requestSnapshot()).toThrow(RequestSnapshotDroppedError);
    let snaps = 0;
    net.msgHook = (m) => {
      if (m.msgType === MessageType.MsgSnapshot) snaps++;
      return true;
    };
    r2.requestSnapshot();
    expect(r2.pendingRequestSnapshot).toBe(r2.raftLog.lastIndex());
    expect(() => r2.requestSnapshot()).toThrow(/already pending/);
    net.send(readMessages(r2));
    expect(snaps).toBe(1);
    expect(r2.pendingRequestSnapshot).toBe(0);
    expect(net.storage.get(2)!.snapshot(0, 0).data).toEqual(enc.encode('state'));
    lead.step(msg({ msgType: MessageType.MsgSnapStatus, from: 2, to: 1 }));
    net.send([msg({ msgType: MessageType.MsgBeat, from: 1, to: 1 })]);
    net.propose(1, 'y');
    expect(r2.raftLog.lastIndex()).toBe(lead.raftLog.lastIndex());
    expect(r2.raftLog.committed).toBe(lead.raftLog.committed);
  });

  it('a failed snapshot report forgets the pending snapshot', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2]));
    r.becomeCandidate();
    r.becomeLeader();
    const pr = r.prs.progress.get(2)!;
    pr.becomeSnapshot(11);
    r.step(msg({ msgType: MessageType.MsgSnapStatus, from: 2, to: 1, reject: true }));
    expect(pr.state).toBe(ProgressState.Probe);
    expect(pr.pendingSnapshot).toBe(0);
    expect(pr.isPaused()).toBe(true);
  });

  it('a follower ignores a snapshot that does not include it or is older than its commit', () => {
    const r = newTestRaft(2, 10, 1, newTestMemoryStorage([1, 2]));
    const snap = (index: number, voters: number[]) => ({ data: new Uint8Array(0), metadata: { index, term: 1, confState: { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } } });
    expect(r.restore(snap(10, [1, 3]))).toBe(false);
    expect(r.restore(snap(10, [1, 2]))).toBe(true);
    expect(r.raftLog.committed).toBe(10);
    expect(r.restore(snap(9, [1, 2]))).toBe(false);
  });
});

describe('proposals', () => {
  it('the leader drops proposals past maxUncommittedEntriesSize', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]), { maxUncommittedEntriesSize: 20 });
    r.becomeCandidate();
    r.becomeLeader();
    propose(r, '0123456789');
    propose(r, '0123456789');
    expect(() => propose(r, 'x')).toThrow(ProposalDroppedError);
    // Empty entries always pass (they carry no payload).
    r.step(msg({ msgType: MessageType.MsgProp, from: 1, entries: [entry(0, 0, '')] }));
    r.reduceUncommittedSize(20);
    propose(r, '0123456789');
    expect(r.uncommittedSize).toBe(10);
  });

  it('a single large proposal is accepted when nothing is uncommitted', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]), { maxUncommittedEntriesSize: 5 });
    r.becomeCandidate();
    r.becomeLeader();
    propose(r, '0123456789');
    expect(r.uncommittedSize).toBe(10);
  });

  it('followers forward proposals unless forwarding is disabled; candidates drop them', () => {
    const net = cluster(3, (c) => {
      if (c.id === 3) c.disableProposalForwarding = true;
    });
    expect(() => propose(net.raft(3))).toThrow(ProposalDroppedError);
    propose(net.raft(2));
    expect(readMessages(net.raft(2)).map((m) => [m.msgType, m.to])).toEqual([[MessageType.MsgProp, 1]]);
    const c = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
    c.becomeCandidate();
    expect(() => propose(c)).toThrow(ProposalDroppedError);
    const f = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
    expect(() => propose(f)).toThrow(/no leader/);
  });
});

describe('reads', () => {
  it('lease-based reads are answered without a heartbeat round', () => {
    const net = cluster(3, (c) => {
      c.checkQuorum = true;
      c.readOnlyOption = 'lease-based';
    });
    net.propose(1, 'x');
    const lead = net.raft(1);
    const ctx = enc.encode('r1');
    lead.step(msg({ msgType: MessageType.MsgReadIndex, entries: [{ entryType: 0, term: 0, index: 0, data: ctx }] }));
    expect(readMessages(lead)).toEqual([]);
    expect(lead.readStates).toEqual([{ index: lead.raftLog.committed, requestCtx: ctx }]);
  });

  it('a follower read is forwarded and answered as a ReadState on the follower', () => {
    const net = cluster(3);
    net.propose(1, 'x');
    const ctx = enc.encode('r2');
    net.send([msg({ msgType: MessageType.MsgReadIndex, from: 2, to: 2, entries: [{ entryType: 0, term: 0, index: 0, data: ctx }] })]);
    expect(net.raft(2).readStates).toEqual([{ index: net.raft(1).raftLog.committed, requestCtx: ctx }]);
  });

  // etcd's TestReadOnlyDuplicateRequest scenario, made into a stale read. A
  // heartbeat response proves leadership only at the time its heartbeat was
  // sent; if rounds are keyed by the caller's context, a late response to an
  // earlier round with the same context confirms a later request.
  it('a late heartbeat response to an earlier round never confirms a later request with the same context', () => {
    const net = cluster(3);
    net.propose(1, 'x');
    const lead = net.raft(1);
    const ctx = enc.encode('same');
    const readIndex = () => net.send([msg({ msgType: MessageType.MsgReadIndex, from: 1, to: 1, entries: [{ entryType: 0, term: 0, index: 0, data: ctx }] })]);

    // Round 1: node 2 answers and releases the read; node 3's answer is held in flight.
    let held: Message | undefined;
    net.msgHook = (m) => {
      if (m.msgType !== MessageType.MsgHeartbeatResponse || m.from !== 3) return true;
      held = m;
      return false;
    };
    readIndex();
    net.msgHook = undefined;
    expect(held).toBeDefined();
    expect(lead.readStates).toEqual([{ index: lead.raftLog.committed, requestCtx: ctx }]);
    lead.readStates = [];
    const firstReadIndex = lead.raftLog.committed;

    // 1 is cut off; 2 and 3 elect 2 and commit a write that 1 never sees.
    net.isolate(1);
    net.campaign(2);
    expect(net.raft(2).state).toBe(StateRole.Leader);
    net.propose(2, 'w');
    const wIndex = net.raft(2).raftLog.committed;
    expect(net.raft(3).raftLog.committed).toBe(wIndex);
    expect(wIndex).toBeGreaterThan(firstReadIndex);

    // 1 still believes it leads term 1 and is asked the same context again;
    // its new heartbeats are lost. Then 3's old answer (term 1) arrives.
    expect(lead.state).toBe(StateRole.Leader);
    readIndex();
    expect(lead.readStates).toEqual([]);
    lead.step(held!);
    readMessages(lead);
    // Releasing here would serve a read at firstReadIndex < wIndex: stale.
    expect(lead.readStates).toEqual([]);
  });

  it('requests with the same context each get their own round and their own ReadState', () => {
    const net = cluster(3);
    const lead = net.raft(1);
    const ctx = enc.encode('twice');
    const req = () => msg({ msgType: MessageType.MsgReadIndex, from: 1, to: 1, entries: [{ entryType: 0, term: 0, index: 0, data: ctx }] });
    lead.step(req());
    const round1 = readMessages(lead).filter((m) => m.msgType === MessageType.MsgHeartbeat);
    net.propose(1, 'x');
    lead.step(req());
    const round2 = readMessages(lead).filter((m) => m.msgType === MessageType.MsgHeartbeat);
    expect(round1.length).toBe(2);
    expect(round2.length).toBe(2);
    // The rounds are told apart on the wire, and the caller's context never goes there.
    expect(round1[0]!.context).not.toEqual(round2[0]!.context);
    expect(round1[0]!.context).not.toEqual(ctx);
    // Answering round 1 releases only the first request, at its own index.
    const c1 = lead.raftLog.committed - 1;
    net.send([round1[0]!]);
    expect(lead.readStates).toEqual([{ index: c1, requestCtx: ctx }]);
    // Answering round 2 releases the second at the later index.
    net.send([round2[0]!]);
    expect(lead.readStates).toEqual([
      { index: c1, requestCtx: ctx },
      { index: c1 + 1, requestCtx: ctx },
    ]);
  });
});

describe('learners and membership', () => {
  it('a learner never campaigns and its vote never counts', () => {
    const r = newTestRaft(3, 10, 1, newTestMemoryStorage([1, 2], [3]));
    expect(r.isLearner).toBe(true);
    tickN(r, 100);
    expect(r.state).toBe(StateRole.Follower);
    expect(readMessages(r)).toEqual([]);
    const c = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2], [3]));
    c.step(msg({ msgType: MessageType.MsgHup, from: 1, to: 1 }));
    expect(readMessages(c).map((m) => m.to)).toEqual([2]); // learners are not asked
    c.step(msg({ msgType: MessageType.MsgRequestVoteResponse, from: 3, to: 1, term: c.term }));
    expect(c.state).toBe(StateRole.Candidate);
  });

  it('an election in a joint configuration needs majorities of both halves', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
    r.applyConfChange({
      transition: ConfChangeTransition.Explicit,
      changes: [
        { changeType: ConfChangeType.RemoveNode, nodeId: 2 },
        { changeType: ConfChangeType.RemoveNode, nodeId: 3 },
        { changeType: ConfChangeType.AddNode, nodeId: 4 },
        { changeType: ConfChangeType.AddNode, nodeId: 5 },
      ],
    });
    r.step(msg({ msgType: MessageType.MsgHup, from: 1, to: 1 }));
    expect(readMessages(r).map((m) => m.to)).toEqual([2, 3, 4, 5]);
    const grant = (from: number): void => r.step(msg({ msgType: MessageType.MsgRequestVoteResponse, from, to: 1, term: r.term }));
    grant(2); // old config (1 2 3) has a majority, new (1 4 5) not yet
    expect(r.state).toBe(StateRole.Candidate);
    grant(4);
    expect(r.state).toBe(StateRole.Leader);
  });

  it('only one conf change may be pending: a second becomes an empty entry', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2]));
    r.becomeCandidate();
    r.becomeLeader();
    const cc = encodeConfChangeEntry({ changeType: ConfChangeType.AddNode, nodeId: 3 });
    const proposeCC = (): void => r.step(msg({ msgType: MessageType.MsgProp, from: 1, entries: [{ ...cc, term: 0, index: 0 }] }));
    proposeCC();
    expect(r.raftLog.allEntries().at(-1)!.entryType).toBe(EntryType.EntryConfChange);
    expect(r.pendingConfIndex).toBe(r.raftLog.lastIndex());
    // The first is not applied yet: the second becomes an empty normal entry.
    proposeCC();
    expect(r.raftLog.allEntries().at(-1)!.entryType).toBe(EntryType.EntryNormal);
    expect(r.raftLog.allEntries().at(-1)!.data.length).toBe(0);
    readMessages(r);
    r.step(msg({ msgType: MessageType.MsgAppResp, from: 2, to: 1, term: 1, index: r.raftLog.lastIndex() }));
    expect(r.raftLog.committed).toBe(r.raftLog.lastIndex());
    r.raftLog.acceptApplying(r.raftLog.committed);
    r.appliedTo(r.raftLog.committed);
    proposeCC();
    expect(r.raftLog.allEntries().at(-1)!.entryType).toBe(EntryType.EntryConfChange);
  });

  it('auto-leave: the leader proposes leaving the joint config once it is applied', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1]));
    r.becomeCandidate();
    r.becomeLeader();
    readMessages(r);
    r.appliedTo(r.raftLog.committed);
    const cc = { transition: ConfChangeTransition.Auto, changes: [{ changeType: ConfChangeType.AddNode, nodeId: 2 }, { changeType: ConfChangeType.AddLearnerNode, nodeId: 3 }] };
    const { entryType, data } = encodeConfChangeEntry(cc);
    r.step(msg({ msgType: MessageType.MsgProp, from: 1, entries: [{ entryType, data, term: 0, index: 0 }] }));
    readMessages(r); // persists: single voter commits
    const ccIndex = r.raftLog.lastIndex();
    expect(r.raftLog.committed).toBe(ccIndex);
    const cs = r.applyConfChange(cc);
    expect(cs.votersOutgoing).toEqual([1]);
    expect(cs.autoLeave).toBe(true);
    r.raftLog.acceptApplying(ccIndex);
    r.appliedTo(ccIndex);
    const last = r.raftLog.allEntries().at(-1)!;
    expect(last.index).toBe(ccIndex + 1);
    expect(last.entryType).toBe(EntryType.EntryConfChangeV2);
    expect(last.data.length).toBe(0);
    // Explicitly empty proposals are refused outside a joint config.
    const leave = r.applyConfChange({ transition: ConfChangeTransition.Auto, changes: [] });
    expect(leave).toEqual({ voters: [1, 2], votersOutgoing: [], learners: [3], learnersNext: [], autoLeave: false });
  });
});
