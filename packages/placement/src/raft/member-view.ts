import type { GroupView } from '../dashboard/group';
import type { TimestampOracle } from '../tso/oracle';
import type { MembersView } from '../types';
import type { RaftNode } from './node';

/**
 * groupView is the leader's view of its group for the dashboard: each
 * member's role, its term (the leader's for every member whose log matches
 * some of this term's, else unknown as 0) and match index from the
 * leader's progress tracker, and the oracle's state.
 */
export function groupView(node: RaftNode, view: MembersView, oracle: TimestampOracle | undefined): GroupView {
  const raft = node.raw.raft;
  const members = view.members.map((m) => {
    const pr = raft.prs.progress.get(m.id);
    const matchIndex = m.id === raft.id ? raft.raftLog.lastIndex() : (pr?.match ?? null);
    return { ...m, term: pr !== undefined || m.id === raft.id ? raft.term : 0, matchIndex };
  });
  return {
    term: raft.term,
    leaderId: view.leaderId,
    members,
    commitIndex: raft.raftLog.committed,
    tso: { serving: oracle?.serving ?? false, upperBoundMs: oracle?.upperBoundMs ?? 0, extensions: oracle?.extensions ?? 0 },
  };
}
