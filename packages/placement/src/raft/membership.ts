import { ConfChangeType } from '@flotilla/raft-core';
import { PlacementError, PlacementErrorCode } from '../errors';
import type { MemberInfo, MembersView } from '../types';
import type { PlacementFsm } from './fsm';
import type { Leadership } from './leadership';
import { encodeMemberContext, roleOf, type MemberRecord } from './members';
import type { RaftNode } from './node';

/**
 * Membership changes the placement group online, one single-step conf
 * change at a time (raft refuses a second while one is unapplied). A new
 * member joins as a learner, which votes in nothing while it catches up;
 * the leader promotes it to voter once its log has caught up
 * (promoteLearners, on every tick). Removal keeps the member's record, so
 * its ID is never handed out again; removing the leader first hands
 * leadership to another voter.
 */
export class Membership {
  constructor(
    private readonly node: RaftNode,
    private readonly fsm: PlacementFsm,
    private readonly selfId: () => number,
    private readonly selfName: () => string,
  ) {}

  info(m: MemberRecord): MemberInfo {
    return { id: m.id, name: m.name, address: m.address, role: roleOf(m, this.fsm.store.confState(), this.node.raw.raft.leaderId) };
  }

  view(): MembersView {
    const members = this.fsm.store.members().filter((m) => !m.removed).map((m) => this.info(m));
    return { members, leaderId: this.node.raw.raft.leaderId, answeredBy: this.selfName() };
  }

  private checkNoPendingChange(): void {
    const r = this.node.raw.raft;
    if (r.pendingConfIndex > r.raftLog.applied) throw new PlacementError(PlacementErrorCode.Unavailable, 'another placement membership change is still being applied; retry');
  }

  /** add adds a learner; the same name and address again answers with the existing member (a join that is retried). */
  async add(l: Leadership, name: string, address: string): Promise<{ member: MemberInfo; members: MemberInfo[] }> {
    const members = this.fsm.store.members();
    const live = members.filter((m) => !m.removed);
    const same = live.find((m) => m.name === name);
    if (same) {
      if (same.address !== address) throw new PlacementError(PlacementErrorCode.InvalidArgument, `addMember params: name: member ${name} already serves at ${same.address}; remove it first to replace it`);
      return { member: this.info(same), members: this.view().members };
    }
    const clash = live.find((m) => m.address === address);
    if (clash) throw new PlacementError(PlacementErrorCode.InvalidArgument, `addMember params: address: ${address} is member ${clash.name}'s address`);
    this.checkNoPendingChange();
    const id = Math.max(this.fsm.store.nextMemberId, ...members.map((m) => m.id + 1));
    await l.proposer.waitApplied(l.proposer.proposeConfChange({ changeType: ConfChangeType.AddLearnerNode, nodeId: id, context: encodeMemberContext({ name, address }) }));
    const added = this.fsm.store.members().find((m) => m.id === id && !m.removed);
    if (!added) throw new PlacementError(PlacementErrorCode.Unavailable, 'the membership change was superseded by another; retry');
    return { member: this.info(added), members: this.view().members };
  }

  /** remove takes a member out of the group. */
  async remove(l: Leadership, name: string): Promise<{ member: MemberInfo }> {
    const target = this.fsm.store.members().find((m) => !m.removed && m.name === name);
    if (!target) throw new PlacementError(PlacementErrorCode.InvalidArgument, `removeMember params: name: no placement member is named ${JSON.stringify(name)}`);
    const conf = this.fsm.store.confState();
    const otherVoters = conf.voters.filter((v) => v !== target.id);
    if (conf.voters.includes(target.id) && otherVoters.length === 0) throw new PlacementError(PlacementErrorCode.InvalidArgument, `removeMember params: name: ${name} is the only voter; add another member first`);
    if (target.id === this.selfId()) {
      // The leader does not remove itself: it hands leadership to the most caught-up voter, which then does.
      const progress = this.node.raw.status().progress;
      const best = otherVoters.sort((a, b) => (progress?.get(b)?.match ?? 0) - (progress?.get(a)?.match ?? 0))[0]!;
      this.node.transferLeader(best);
      throw new PlacementError(PlacementErrorCode.NotLeader, `placement member ${name} leads; leadership is moving to another member, which will remove it: retry`);
    }
    this.checkNoPendingChange();
    await l.proposer.waitApplied(l.proposer.proposeConfChange({ changeType: ConfChangeType.RemoveNode, nodeId: target.id }));
    const after = this.fsm.store.members().find((m) => m.id === target.id);
    if (!after?.removed) throw new PlacementError(PlacementErrorCode.Unavailable, 'the membership change was superseded by another; retry');
    return { member: { ...this.info(after), role: 'removed' } };
  }

  /** promoteLearners makes one caught-up, active learner a voter (leader only, one change at a time). */
  promoteLearners(l: Leadership): void {
    const r = this.node.raw.raft;
    if (r.pendingConfIndex > r.raftLog.applied) return;
    const conf = this.fsm.store.confState();
    if (conf.learners.length === 0) return;
    const progress = this.node.raw.status().progress;
    const last = r.raftLog.lastIndex();
    for (const id of conf.learners) {
      const pr = progress?.get(id);
      const m = this.fsm.store.members().find((x) => x.id === id);
      // match 0: the learner never acknowledged an append (it may not even run yet); on a short log
      // "within 16 entries" alone would promote it, and a voter that is not there weakens the quorum.
      if (!pr || !m || !pr.recentActive || pr.match === 0 || pr.match + 16 < last) continue;
      try {
        l.proposer.proposeConfChange({ changeType: ConfChangeType.AddNode, nodeId: id, context: encodeMemberContext(m) });
      } catch {
        return; // refused (leadership moving): the next tick tries again
      }
      return;
    }
  }
}
