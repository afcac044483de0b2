import type { Raft, SoftState } from './raft';
import { StateRole } from './raft';
import type { ProgressState } from './tracker/progress';
import type { ConfState, HardState } from './types';

/** ProgressStatus is a snapshot of the leader's view of one peer. */
export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  paused: boolean;
  pendingSnapshot: number;
  recentActive: boolean;
  isLearner: boolean;
  inflightCount: number;
  inflightBytes: number;
}

/** Status is a copy of a peer's state for observation (metrics, debugging, placement heartbeats). */
export interface Status {
  id: number;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  /** progress is set on the leader only. */
  progress?: Map<number, ProgressStatus>;
  leadTransferee: number;
  config: ConfState;
}

/** getStatus copies the observable state of r; nothing in it aliases raft's internals. */
export function getStatus(r: Raft): Status {
  const s: Status = {
    id: r.id,
    hardState: r.hardState(),
    softState: r.softState(),
    applied: r.raftLog.applied,
    leadTransferee: r.leadTransferee,
    config: r.prs.confState(),
  };
  if (r.state === StateRole.Leader) {
    const progress = new Map<number, ProgressStatus>();
    for (let i = 0; i < r.prs.ids.length; i++) {
      const pr = r.prs.prs[i]!;
      progress.set(r.prs.ids[i]!, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        paused: pr.isPaused(),
        pendingSnapshot: pr.pendingSnapshot,
        recentActive: pr.recentActive,
        isLearner: pr.isLearner,
        inflightCount: pr.inflights.count(),
        inflightBytes: pr.inflights.bytes(),
      });
    }
    s.progress = progress;
  }
  return s;
}
