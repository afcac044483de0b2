// Paper tests: each checks a statement of the Raft paper ("In Search of an
// Understandable Consensus Algorithm", extended version), in the spirit of
// etcd's raft_paper_test.go. Section numbers refer to that paper.
import { describe, expect, it } from 'vitest';
import { Raft, StateRole } from '../src/raft';
import { MessageType } from '../src/types';
import type { Entry, Message } from '../src/types';
import { Network, entry, msg, newTestMemoryStorage, newTestRaft, persist, propose, readMessages } from './unit/network';

const enc = new TextEncoder();

function acceptAndReply(m: Message): Message {
  expect(m.msgType).toBe(MessageType.MsgApp);
  return msg({ msgType: MessageType.MsgAppResp, from: m.to, to: m.from, term: m.term, index: m.index + m.entries.length });
}

/** commitNoopEntry gets the leader's empty entry committed by acking it from every follower. */
function commitNoopEntry(r: Raft): void {
  expect(r.state).toBe(StateRole.Leader);
  r.bcastAppend();
  for (const m of readMessages(r)) {
    if (m.msgType !== MessageType.MsgApp) continue;
    r.step(acceptAndReply(m));
  }
  readMessages(r); // drop the commit-refresh messages
  r.raftLog.appliedTo(r.raftLog.committed);
}

function sortByTo(msgs: Message[]): Message[] {
  return [...msgs].sort((a, b) => a.to - b.to || a.msgType - b.msgType);
}

function ents(...terms: number[]): Entry[] {
  return terms.map((t, i) => entry(i + 1, t));
}

function entsData(es: Entry[]): { index: number; term: number; data: string }[] {
  return es.map((e) => ({ index: e.index, term: e.term, data: new TextDecoder().decode(e.data) }));
}

describe('§5.1 terms', () => {
  // "If one server's current term is smaller than the other's, then it
  // updates its current term to the larger value. If a candidate or leader
  // discovers that its term is out of date, it immediately reverts to
  // follower state."
  for (const role of [StateRole.Follower, StateRole.Candidate, StateRole.Leader]) {
    it(`${role} updates its term from a message with a higher term`, () => {
      const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
      if (role === StateRole.Follower) r.becomeFollower(1, 2);
      if (role === StateRole.Candidate) r.becomeCandidate();
      if (role === StateRole.Leader) {
        r.becomeCandidate();
        r.becomeLeader();
      }
      r.step(msg({ msgType: MessageType.MsgApp, from: 3, to: 1, term: 2 }));
      expect(r.term).toBe(2);
      expect(r.state).toBe(StateRole.Follower);
      expect(r.leaderId).toBe(3);
    });
  }

  // "If a server receives a request with a stale term number, it rejects the request."
  it('ignores messages with a stale term', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2]));
    r.becomeFollower(2, 2);
    persist(r);
    const before = r.raftLog.lastIndex();
    r.step(msg({ msgType: MessageType.MsgApp, from: 2, to: 1, term: 1, index: 0, logTerm: 0, entries: [entry(1, 1)], commit: 1 }));
    expect(r.readMessages()).toEqual([]);
    expect(r.term).toBe(2);
    expect(r.raftLog.lastIndex()).toBe(before);
    expect(r.raftLog.committed).toBe(0);
  });
});

describe('§5.2 leader election', () => {
  // "When servers start up, they begin as followers."
  it('starts as a follower', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
    expect(r.state).toBe(StateRole.Follower);
  });

  // "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log
  // entries) to all followers in order to maintain their authority."
  it('leader broadcasts heartbeats every heartbeat timeout', () => {
    const hi = 1;
    const r = newTestRaft(1, 10, hi, newTestMemoryStorage([1, 2, 3]));
    r.becomeCandidate();
    r.becomeLeader();
    for (let i = 0; i < 10; i++) r.appendEntry([entry(0, 0)]);
    readMessages(r);
    for (let i = 0; i < hi; i++) r.tick();
    const msgs = sortByTo(r.readMessages());
    expect(msgs.map((m) => ({ from: m.from, to: m.to, term: m.term, type: m.msgType, entries: m.entries.length }))).toEqual([
      { from: 1, to: 2, term: 1, type: MessageType.MsgHeartbeat, entries: 0 },
      { from: 1, to: 3, term: 1, type: MessageType.MsgHeartbeat, entries: 0 },
    ]);
  });

  // "If a follower receives no communication over a period of time called
  // the election timeout, then it ... begins an election": it increments its
  // term, votes for itself and issues RequestVote RPCs in parallel.
  for (const role of [StateRole.Follower, StateRole.Candidate]) {
    it(`${role} starts a new election after the election timeout`, () => {
      const et = 10;
      const r = newTestRaft(1, et, 1, newTestMemoryStorage([1, 2, 3]));
      if (role === StateRole.Follower) r.becomeFollower(1, 2);
      else r.becomeCandidate();
      for (let i = 1; i < 2 * et; i++) r.tick();
      expect(r.term).toBe(2);
      expect(r.state).toBe(StateRole.Candidate);
      expect(r.prs.votes.get(r.id)).toBe(true);
      const msgs = sortByTo(readMessages(r));
      expect(msgs.map((m) => ({ to: m.to, term: m.term, type: m.msgType }))).toEqual([
        { to: 2, term: 2, type: MessageType.MsgRequestVote },
        { to: 3, term: 2, type: MessageType.MsgRequestVote },
      ]);
    });
  }

  // "A candidate wins an election if it receives votes from a majority of
  // the servers in the full cluster for the same term."
  it('wins an election in one round with a majority of votes', () => {
    const cases: { size: number; votes: Record<number, boolean>; state: StateRole }[] = [
      { size: 1, votes: {}, state: StateRole.Leader },
      { size: 3, votes: { 2: true, 3: true }, state: StateRole.Leader },
      { size: 3, votes: { 2: true }, state: StateRole.Leader },
      { size: 5, votes: { 2: true, 3: true, 4: true, 5: true }, state: StateRole.Leader },
      { size: 5, votes: { 2: true, 3: true, 4: true }, state: StateRole.Leader },
      { size: 5, votes: { 2: true, 3: true }, state: StateRole.Leader },
      // "each server will vote for at most one candidate ... on a first-come-first-served basis"
      { size: 3, votes: { 2: false, 3: false }, state: StateRole.Follower },
      { size: 5, votes: { 2: false, 3: false, 4: false, 5: false }, state: StateRole.Follower },
      { size: 5, votes: { 2: true, 3: false, 4: false, 5: false }, state: StateRole.Follower },
      // "a candidate neither wins nor loses the election": it stays candidate.
      { size: 3, votes: {}, state: StateRole.Candidate },
      { size: 5, votes: { 2: true }, state: StateRole.Candidate },
      { size: 5, votes: { 2: false, 3: false }, state: StateRole.Candidate },
      { size: 5, votes: {}, state: StateRole.Candidate },
    ];
    for (const tt of cases) {
      const ids = Array.from({ length: tt.size }, (_, i) => i + 1);
      const r = newTestRaft(1, 10, 1, newTestMemoryStorage(ids));
      r.step(msg({ msgType: MessageType.MsgHup, from: 1, to: 1 }));
      persist(r);
      for (const [id, vote] of Object.entries(tt.votes)) {
        r.step(msg({ msgType: MessageType.MsgRequestVoteResponse, from: Number(id), to: 1, term: r.term, reject: !vote }));
      }
      expect(r.state, JSON.stringify(tt)).toBe(tt.state);
      expect(r.term).toBe(1);
    }
  });

  // "Each server will vote for at most one candidate in a given term, on a
  // first-come-first-served basis."
  it('a follower votes for at most one candidate per term', () => {
    const cases = [
      { vote: 0, nvote: 2, wreject: false },
      { vote: 0, nvote: 3, wreject: false },
      { vote: 2, nvote: 2, wreject: false },
      { vote: 3, nvote: 3, wreject: false },
      { vote: 2, nvote: 3, wreject: true },
      { vote: 3, nvote: 2, wreject: true },
    ];
    for (const tt of cases) {
      const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
      r.term = 1;
      r.vote = tt.vote;
      r.step(msg({ msgType: MessageType.MsgRequestVote, from: tt.nvote, to: 1, term: 1 }));
      const msgs = readMessages(r);
      expect(msgs.map((m) => ({ from: m.from, to: m.to, term: m.term, type: m.msgType, reject: m.reject }))).toEqual([
        { from: 1, to: tt.nvote, term: 1, type: MessageType.MsgRequestVoteResponse, reject: tt.wreject },
      ]);
    }
  });

  // "While waiting for votes, a candidate may receive an AppendEntries RPC
  // from another server claiming to be leader. If the leader's term is at
  // least as large as the candidate's current term, then the candidate
  // recognizes the leader as legitimate and returns to follower state."
  it('a candidate falls back to follower on AppendEntries from a legitimate leader', () => {
    for (const term of [1, 2]) {
      const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
      r.step(msg({ msgType: MessageType.MsgHup, from: 1, to: 1 }));
      expect(r.state).toBe(StateRole.Candidate);
      r.step(msg({ msgType: MessageType.MsgApp, from: 2, to: 1, term }));
      expect(r.state).toBe(StateRole.Follower);
      expect(r.term).toBe(term);
    }
  });

  // "votes could be split so that no candidate obtains a majority. When this
  // happens, each candidate will time out and start a new election".
  it('dueling candidates: the one whose log is not up-to-date falls back', () => {
    const n = new Network([undefined, undefined, undefined]);
    n.cut(1, 3);
    n.campaign(1);
    n.campaign(3);
    // 1 won with 2's vote; 3 is a candidate that 2 refused (already voted in term 1).
    expect(n.raft(1).state).toBe(StateRole.Leader);
    expect(n.raft(3).state).toBe(StateRole.Candidate);
    n.recover();
    // 3 campaigns again at term 2; 1 and 2 have a longer log (the no-op), so 3 loses,
    // and the term change makes 1 step down.
    n.campaign(3);
    expect(n.raft(3).state).toBe(StateRole.Follower);
    expect(n.raft(1).state).toBe(StateRole.Follower);
    expect(n.raft(1).term).toBe(2);
    expect(n.raft(1).raftLog.lastIndex()).toBe(1);
    expect(n.raft(3).raftLog.lastIndex()).toBe(0);
  });

  // "Raft uses randomized election timeouts ... chosen randomly from a fixed interval."
  for (const role of [StateRole.Follower, StateRole.Candidate]) {
    it(`${role} election timeout is randomized over [et, 2*et)`, () => {
      const et = 10;
      const r = newTestRaft(1, et, 1, newTestMemoryStorage([1, 2, 3]));
      const timeouts = new Set<number>();
      for (let round = 0; round < 50 * et; round++) {
        if (role === StateRole.Follower) r.becomeFollower(r.term + 1, 2);
        else r.becomeCandidate();
        let time = 0;
        while (readMessages(r).length === 0) {
          r.tick();
          time++;
        }
        timeouts.add(time);
      }
      for (let d = et + 1; d < 2 * et; d++) expect(timeouts.has(d), `timeout ${d}`).toBe(true);
      for (const t of timeouts) {
        expect(t).toBeGreaterThanOrEqual(et);
        expect(t).toBeLessThanOrEqual(2 * et);
      }
    });
  }

  // "In most cases only a single server will time out": randomized timeouts
  // make simultaneous elections (split votes) rare.
  for (const role of [StateRole.Follower, StateRole.Candidate]) {
    it(`${role}s rarely time out at the same time`, () => {
      const et = 10;
      const size = 5;
      const ids = Array.from({ length: size }, (_, i) => i + 1);
      const rs = ids.map((id) => newTestRaft(id, et, 1, newTestMemoryStorage(ids)));
      let conflicts = 0;
      const rounds = 1000;
      for (let round = 0; round < rounds; round++) {
        for (const r of rs) {
          if (role === StateRole.Follower) r.becomeFollower(r.term + 1, 0);
          else r.becomeCandidate();
        }
        let timeoutNum = 0;
        while (timeoutNum === 0) {
          for (const r of rs) {
            r.tick();
            if (readMessages(r).length > 0) timeoutNum++;
          }
        }
        if (timeoutNum > 1) conflicts++;
      }
      expect(conflicts / rounds).toBeLessThanOrEqual(0.3);
    });
  }
});

describe('§5.3 log replication', () => {
  // "Once a leader has been elected, it begins servicing client requests.
  // ... The leader appends the command to its log as a new entry, then
  // issues AppendEntries RPCs in parallel to each of the other servers."
  it('leader starts replication of a proposal', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
    r.becomeCandidate();
    r.becomeLeader();
    commitNoopEntry(r);
    const li = r.raftLog.lastIndex();
    propose(r, 'some data');
    expect(r.raftLog.lastIndex()).toBe(li + 1);
    expect(r.raftLog.committed).toBe(li);
    const msgs = sortByTo(r.readMessages());
    expect(msgs.map((m) => ({ to: m.to, type: m.msgType, index: m.index, logTerm: m.logTerm, commit: m.commit, ents: entsData(m.entries) }))).toEqual(
      [2, 3].map((to) => ({ to, type: MessageType.MsgApp, index: li, logTerm: 1, commit: li, ents: [{ index: li + 1, term: 1, data: 'some data' }] })),
    );
    expect(entsData(r.raftLog.nextUnstableEnts())).toEqual([{ index: li + 1, term: 1, data: 'some data' }]);
  });

  // "The leader decides when it is safe to apply a log entry to the state
  // machines; such an entry is called committed. ... A log entry is committed
  // once the leader that created the entry has replicated it on a majority."
  it('leader commits an entry replicated on a majority and tells followers', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
    r.becomeCandidate();
    r.becomeLeader();
    commitNoopEntry(r);
    const li = r.raftLog.lastIndex();
    propose(r, 'some data');
    for (const m of readMessages(r)) if (m.msgType === MessageType.MsgApp) r.step(acceptAndReply(m));
    expect(r.raftLog.committed).toBe(li + 1);
    expect(entsData(r.raftLog.nextCommittedEnts())).toEqual([{ index: li + 1, term: 1, data: 'some data' }]);
    const msgs = sortByTo(readMessages(r)).filter((m) => m.msgType === MessageType.MsgApp);
    expect(msgs.map((m) => ({ to: m.to, commit: m.commit }))).toEqual([
      { to: 2, commit: li + 1 },
      { to: 3, commit: li + 1 },
    ]);
  });

  // "A log entry is committed once the leader that created the entry has
  // replicated it on a majority of the servers."
  it('leader acknowledges commit only with a majority of acceptors', () => {
    const cases: { size: number; acceptors: number[]; wack: boolean }[] = [
      { size: 1, acceptors: [], wack: true },
      { size: 3, acceptors: [], wack: false },
      { size: 3, acceptors: [2], wack: true },
      { size: 3, acceptors: [2, 3], wack: true },
      { size: 5, acceptors: [], wack: false },
      { size: 5, acceptors: [2], wack: false },
      { size: 5, acceptors: [2, 3], wack: true },
      { size: 5, acceptors: [2, 3, 4], wack: true },
      { size: 5, acceptors: [2, 3, 4, 5], wack: true },
    ];
    for (const tt of cases) {
      const ids = Array.from({ length: tt.size }, (_, i) => i + 1);
      const r = newTestRaft(1, 10, 1, newTestMemoryStorage(ids));
      r.becomeCandidate();
      r.becomeLeader();
      commitNoopEntry(r);
      const li = r.raftLog.lastIndex();
      propose(r, 'some data');
      for (const m of readMessages(r)) {
        if (m.msgType === MessageType.MsgApp && tt.acceptors.includes(m.to)) r.step(acceptAndReply(m));
      }
      expect(r.raftLog.committed > li, JSON.stringify(tt)).toBe(tt.wack);
    }
  });

  // "When the leader commits an entry, it also commits all preceding entries
  // in the leader's log, including entries created by previous leaders."
  it('leader commits preceding entries along with its own', () => {
    const cases: Entry[][] = [[], [entry(1, 2)], [entry(1, 1), entry(2, 2)], [entry(1, 1)]];
    for (const tt of cases) {
      const s = newTestMemoryStorage([1, 2, 3]);
      s.append(tt);
      const r = newTestRaft(1, 10, 1, s);
      r.term = 2;
      r.becomeCandidate();
      r.becomeLeader();
      propose(r, 'some data');
      for (const m of readMessages(r)) if (m.msgType === MessageType.MsgApp) r.step(acceptAndReply(m));
      persist(r);
      const li = tt.length;
      expect(entsData(r.raftLog.nextCommittedEnts())).toEqual([
        ...tt.map((e) => ({ index: e.index, term: e.term, data: '' })),
        { index: li + 1, term: 3, data: '' },
        { index: li + 2, term: 3, data: 'some data' },
      ]);
    }
  });

  // "Once a follower learns that a log entry is committed, it applies the
  // entry to its local state machine (in log order)."
  it('follower commits entries up to the leader commit it learns', () => {
    const cases: { ents: Entry[]; commit: number }[] = [
      { ents: [entry(1, 1, 'some data')], commit: 1 },
      { ents: [entry(1, 1, 'some data'), entry(2, 1, 'some data2')], commit: 2 },
      { ents: [entry(1, 1, 'some data2'), entry(2, 1, 'some data')], commit: 2 },
      { ents: [entry(1, 1, 'some data'), entry(2, 1, 'some data2')], commit: 1 },
    ];
    for (const tt of cases) {
      const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
      r.becomeFollower(1, 2);
      r.step(msg({ msgType: MessageType.MsgApp, from: 2, to: 1, term: 1, entries: tt.ents, commit: tt.commit }));
      persist(r);
      expect(r.raftLog.committed).toBe(tt.commit);
      expect(entsData(r.raftLog.nextCommittedEnts())).toEqual(entsData(tt.ents.slice(0, tt.commit)));
    }
  });

  // "When sending an AppendEntries RPC, the leader includes the index and
  // term of the entry in its log that immediately precedes the new entries.
  // If the follower does not find an entry in its log with the same index
  // and term, then it refuses the new entries."
  it('follower checks the consistency of MsgApp (index, logTerm)', () => {
    const cases = [
      // match with committed entries
      { term: 0, index: 0, windex: 1, wreject: false, wrejectHint: 0, wlogterm: 0 },
      { term: 1, index: 1, windex: 1, wreject: false, wrejectHint: 0, wlogterm: 0 },
      // match with uncommitted entries
      { term: 2, index: 2, windex: 2, wreject: false, wrejectHint: 0, wlogterm: 0 },
      // unmatch with existing entry
      { term: 1, index: 2, windex: 2, wreject: true, wrejectHint: 1, wlogterm: 1 },
      // unexisting entry
      { term: 3, index: 3, windex: 3, wreject: true, wrejectHint: 2, wlogterm: 2 },
    ];
    for (const tt of cases) {
      const s = newTestMemoryStorage([1, 2, 3]);
      s.append([entry(1, 1), entry(2, 2)]);
      const r = newTestRaft(1, 10, 1, s);
      r.raftLog.commitTo(1);
      r.becomeFollower(2, 2);
      r.step(msg({ msgType: MessageType.MsgApp, from: 2, to: 1, term: 2, logTerm: tt.term, index: tt.index }));
      const msgs = readMessages(r);
      expect(
        msgs.map((m) => ({ to: m.to, type: m.msgType, term: m.term, index: m.index, reject: m.reject, hint: m.rejectHint, logTerm: m.logTerm })),
        JSON.stringify(tt),
      ).toEqual([
        { to: 2, type: MessageType.MsgAppResp, term: 2, index: tt.windex, reject: tt.wreject, hint: tt.wrejectHint, logTerm: tt.wlogterm },
      ]);
    }
  });

  // "If an existing entry conflicts with a new one (same index but different
  // terms), delete the existing entry and all that follow it; append any new
  // entries not already in the log."
  it('follower appends entries, truncating conflicts', () => {
    const cases: { index: number; term: number; ents: Entry[]; wents: [number, number][]; wunstable: [number, number][] }[] = [
      { index: 2, term: 2, ents: [entry(3, 3)], wents: [[1, 1], [2, 2], [3, 3]], wunstable: [[3, 3]] },
      { index: 1, term: 1, ents: [entry(2, 3), entry(3, 4)], wents: [[1, 1], [2, 3], [3, 4]], wunstable: [[2, 3], [3, 4]] },
      { index: 0, term: 0, ents: [entry(1, 1)], wents: [[1, 1], [2, 2]], wunstable: [] },
      { index: 0, term: 0, ents: [entry(1, 3)], wents: [[1, 3]], wunstable: [[1, 3]] },
    ];
    for (const tt of cases) {
      const s = newTestMemoryStorage([1, 2, 3]);
      s.append([entry(1, 1), entry(2, 2)]);
      const r = newTestRaft(1, 10, 1, s);
      r.becomeFollower(2, 2);
      r.step(msg({ msgType: MessageType.MsgApp, from: 2, to: 1, term: 2, logTerm: tt.term, index: tt.index, entries: tt.ents }));
      expect(r.raftLog.allEntries().map((e) => [e.index, e.term])).toEqual(tt.wents);
      expect(r.raftLog.nextUnstableEnts().map((e) => [e.index, e.term])).toEqual(tt.wunstable);
    }
  });

  // Figure 7: "the leader must find the latest log entry where the two logs
  // agree, delete any entries in the follower's log after that point, and
  // send the follower all of the leader's entries after that point."
  it('leader brings every follower log of figure 7 in sync', () => {
    const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers = [
      [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a)
      [1, 1, 1, 4], // (b)
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c)
      [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d)
      [1, 1, 1, 4, 4, 4, 4], // (e)
      [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f)
    ];
    const term = 8;
    for (const fterms of followers) {
      const leadStorage = newTestMemoryStorage([1, 2, 3]);
      leadStorage.append(ents(...leaderTerms));
      const lead = newTestRaft(1, 10, 1, leadStorage);
      lead.loadStateForTest(term, 0, leaderTerms.length);
      const followerStorage = newTestMemoryStorage([1, 2, 3]);
      followerStorage.append(ents(...fterms));
      const follower = newTestRaft(2, 10, 1, followerStorage);
      follower.loadStateForTest(term - 1, 0, 0);
      // The third node grants the leader's vote but is not otherwise involved.
      const n = new Network([lead, follower, undefined]);
      n.campaign(1);
      // The election succeeded through votes of 3, and the empty entry
      // committed: now 1 and 2 must have identical logs.
      n.propose(1);
      expect(lead.state).toBe(StateRole.Leader);
      const a = lead.raftLog.allEntries().map((e) => [e.index, e.term]);
      const b = follower.raftLog.allEntries().map((e) => [e.index, e.term]);
      expect(b).toEqual(a);
      expect(follower.raftLog.committed).toBe(lead.raftLog.committed);
    }
  });
});

describe('§5.4 safety', () => {
  // §5.4.1: "the RequestVote RPC includes information about the candidate's
  // log": the index and term of its last entry.
  it('vote requests carry the candidate last log index and term', () => {
    const cases = [
      { ents: [entry(1, 1)], wterm: 2 },
      { ents: [entry(1, 1), entry(2, 2)], wterm: 3 },
    ];
    for (const tt of cases) {
      const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
      r.step(msg({ msgType: MessageType.MsgApp, from: 2, to: 1, term: tt.wterm - 1, logTerm: 0, index: 0, entries: tt.ents }));
      readMessages(r);
      for (let i = 1; i < r.electionTimeout * 2; i++) r.tick();
      const msgs = sortByTo(readMessages(r));
      const last = tt.ents[tt.ents.length - 1]!;
      expect(msgs.map((m) => ({ to: m.to, type: m.msgType, term: m.term, index: m.index, logTerm: m.logTerm }))).toEqual(
        [2, 3].map((to) => ({ to, type: MessageType.MsgRequestVote, term: tt.wterm, index: last.index, logTerm: last.term })),
      );
    }
  });

  // §5.4.1: "The voter denies its vote if its own log is more up-to-date
  // than that of the candidate": compare last terms, then log lengths.
  it('a voter grants only to candidates at least as up-to-date', () => {
    const cases: { ents: Entry[]; logterm: number; index: number; wreject: boolean }[] = [
      // same logterm
      { ents: [entry(1, 1)], logterm: 1, index: 1, wreject: false },
      { ents: [entry(1, 1)], logterm: 1, index: 2, wreject: false },
      { ents: [entry(1, 1), entry(2, 1)], logterm: 1, index: 1, wreject: true },
      // candidate higher logterm
      { ents: [entry(1, 1)], logterm: 2, index: 1, wreject: false },
      { ents: [entry(1, 1)], logterm: 2, index: 2, wreject: false },
      { ents: [entry(1, 1), entry(2, 1)], logterm: 2, index: 1, wreject: false },
      // voter higher logterm
      { ents: [entry(1, 2)], logterm: 1, index: 1, wreject: true },
      { ents: [entry(1, 2)], logterm: 1, index: 2, wreject: true },
      { ents: [entry(1, 2), entry(2, 1)], logterm: 1, index: 1, wreject: true },
    ];
    for (const tt of cases) {
      const s = newTestMemoryStorage([1, 2]);
      s.append(tt.ents);
      const r = newTestRaft(1, 10, 1, s);
      r.step(msg({ msgType: MessageType.MsgRequestVote, from: 2, to: 1, term: 3, logTerm: tt.logterm, index: tt.index }));
      const msgs = readMessages(r);
      expect(msgs.length).toBe(1);
      expect(msgs[0]!.msgType).toBe(MessageType.MsgRequestVoteResponse);
      expect(msgs[0]!.reject, JSON.stringify(tt)).toBe(tt.wreject);
    }
  });

  // §5.4.2: "Raft never commits log entries from previous terms by counting
  // replicas. Only log entries from the leader's current term are committed
  // by counting replicas."
  it('leader only commits entries of its current term by counting', () => {
    const cases = [
      // do not commit log entries in previous terms
      { index: 1, wcommit: 0 },
      { index: 2, wcommit: 0 },
      // commit log in current term
      { index: 3, wcommit: 3 },
    ];
    for (const tt of cases) {
      const s = newTestMemoryStorage([1, 2]);
      s.append([entry(1, 1), entry(2, 2)]);
      const r = newTestRaft(1, 10, 1, s);
      r.loadStateForTest(2, 0, 0);
      // become leader at term 3
      r.becomeCandidate();
      r.becomeLeader();
      persist(r);
      r.readMessages();
      // propose an entry to the current term
      propose(r);
      persist(r);
      r.step(msg({ msgType: MessageType.MsgAppResp, from: 2, to: 1, term: r.term, index: tt.index }));
      expect(r.raftLog.committed, JSON.stringify(tt)).toBe(tt.wcommit);
    }
  });
});

describe('§5.4.3 safety argument', () => {
  // Figure 8: an entry from an earlier term stored on a majority may still
  // be overwritten, so a leader does not commit it by counting replicas; it
  // becomes committed only together with an entry of the leader's own term.
  it('an old-term entry on a majority commits only with a current-term entry', () => {
    const s = newTestMemoryStorage([1, 2, 3, 4, 5]);
    s.append([entry(1, 1), entry(2, 2, 'old')]);
    const r = newTestRaft(1, 10, 1, s);
    r.loadStateForTest(2, 0, 1);
    r.becomeCandidate(); // term 3
    r.becomeLeader(); // appends the no-op at index 3
    persist(r);
    r.readMessages();
    const ack = (from: number, index: number): void => r.step(msg({ msgType: MessageType.MsgAppResp, from, to: 1, term: 3, index }));
    ack(2, 2);
    ack(3, 2); // 'old' is on 1, 2 and 3: a majority of five, but from term 2
    expect(r.raftLog.committed).toBe(1);
    ack(2, 3);
    expect(r.raftLog.committed).toBe(1); // the no-op is on 1 and 2 only
    ack(3, 3);
    expect(r.raftLog.committed).toBe(3);
    persist(r);
    expect(r.raftLog.nextCommittedEnts().map((e) => [e.index, e.term, new TextDecoder().decode(e.data)])).toEqual([
      [1, 1, ''],
      [2, 2, 'old'],
      [3, 3, ''],
    ]);
  });
});

describe('§6 cluster membership changes', () => {
  // "the cluster first switches to a transitional configuration we call
  // joint consensus ... Agreement (for elections and entry commitment)
  // requires separate majorities from both the old and new configurations."
  it('a joint configuration commits only with majorities of both halves', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
    r.becomeCandidate();
    r.becomeLeader();
    commitNoopEntry(r);
    // Enter joint (1 2 3) && (1 4 5) directly.
    r.applyConfChange({
      transition: 2,
      changes: [
        { changeType: 1, nodeId: 2 },
        { changeType: 1, nodeId: 3 },
        { changeType: 0, nodeId: 4 },
        { changeType: 0, nodeId: 5 },
      ],
    });
    readMessages(r);
    const li = r.raftLog.lastIndex();
    propose(r, 'x');
    persist(r);
    const ack = (from: number): void => r.step(msg({ msgType: MessageType.MsgAppResp, from, to: 1, term: r.term, index: li + 1 }));
    ack(2);
    ack(3); // old majority only
    expect(r.raftLog.committed).toBe(li);
    ack(4); // now the new config (1 4 5) has a majority too
    expect(r.raftLog.committed).toBe(li + 1);
  });

  // "a server that is not part of its own latest configuration should step down" (§6, removed leader).
  it('a leader removed from the configuration steps down and refuses proposals', () => {
    const r = newTestRaft(1, 10, 1, newTestMemoryStorage([1, 2, 3]));
    r.becomeCandidate();
    r.becomeLeader();
    r.applyConfChange({ changeType: 1, nodeId: 1 });
    expect(r.state).toBe(StateRole.Follower);
    expect(() => propose(r)).toThrow();
  });

  // "new servers join as non-voting members (learners)": they get entries but do not count for quorum.
  it('learners receive entries but never count towards commit or votes', () => {
    const n = new Network([undefined, undefined, undefined]);
    n.campaign(1);
    const lead = n.raft(1);
    expect(lead.state).toBe(StateRole.Leader);
    lead.applyConfChange({ changeType: 2, nodeId: 3 });
    n.raft(2).applyConfChange({ changeType: 2, nodeId: 3 });
    n.raft(3).applyConfChange({ changeType: 2, nodeId: 3 });
    n.isolate(2);
    const before = lead.raftLog.committed;
    n.propose(1, 'x');
    // Only the leader (voter) and the learner have it: no quorum of voters.
    expect(lead.raftLog.committed).toBe(before);
    expect(n.raft(3).raftLog.lastIndex()).toBe(lead.raftLog.lastIndex());
    // A learner never campaigns.
    for (let i = 0; i < 100; i++) n.raft(3).tick();
    expect(n.raft(3).state).toBe(StateRole.Follower);
  });
});

describe('§8 client interaction', () => {
  // "a leader must have the latest information on which entries are
  // committed ... each leader commit a blank no-op entry into the log at the
  // start of its term" and "a leader must check whether it has been deposed
  // before processing a read-only request ... by exchanging heartbeat
  // messages with a majority of the cluster".
  it('read index waits for the no-op commit and a heartbeat quorum', () => {
    const n = new Network([undefined, undefined, undefined]);
    n.ignore(MessageType.MsgAppResp);
    n.campaign(1);
    const lead = n.raft(1);
    expect(lead.state).toBe(StateRole.Leader);
    expect(lead.committedEntryInCurrentTerm()).toBe(false);
    const ctx = enc.encode('ctx1');
    n.send([msg({ msgType: MessageType.MsgReadIndex, from: 1, to: 1, entries: [{ entryType: 0, term: 0, index: 0, data: ctx }] })]);
    expect(lead.readStates).toEqual([]); // postponed until an entry of this term is committed
    n.recover();
    // A heartbeat round unblocks the paused probes; the acks commit the
    // no-op entry, which releases the pending read.
    n.send([msg({ msgType: MessageType.MsgBeat, from: 1, to: 1 })]);
    expect(lead.readStates.length).toBe(1);
    expect(lead.readStates[0]!.requestCtx).toEqual(ctx);
    expect(lead.readStates[0]!.index).toBe(1); // the commit index once the no-op committed
  });

  // "Clients of Raft send all of their requests to the leader": followers forward proposals.
  it('followers forward proposals to the leader', () => {
    const n = new Network([undefined, undefined, undefined]);
    n.campaign(1);
    const li = n.raft(1).raftLog.lastIndex();
    n.propose(2, 'forwarded');
    expect(n.raft(1).raftLog.lastIndex()).toBe(li + 1);
    expect(n.raft(3).raftLog.committed).toBe(li + 1);
  });
});
