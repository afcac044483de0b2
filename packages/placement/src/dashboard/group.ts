import type { PlacementCluster } from '../cluster';
import type { MemberInfo } from '../types';

/**
 * GroupView is the placement group as its leader sees it, for the
 * dashboard's members panel: every member with its role, the term it was
 * last heard in (the leader's own for members that follow it) and how far
 * its log has caught up; and the timestamp oracle's state.
 */
export interface GroupView {
  term: number;
  leaderId: number;
  members: (MemberInfo & { term: number; matchIndex: number | null })[];
  commitIndex: number;
  tso: { serving: boolean; upperBoundMs: number; extensions: number };
}

const views = new WeakMap<PlacementCluster, () => GroupView>();

/** setGroupView tells the dashboard where the group's view of a leader's cluster comes from (the member sets it when it leads). */
export function setGroupView(cluster: PlacementCluster, read: () => GroupView): void {
  views.set(cluster, read);
}

/** groupViewOf: the view for the dashboard; null for a cluster that no placement member serves (tests, benchmarks). */
export function groupViewOf(cluster: PlacementCluster): GroupView | null {
  return views.get(cluster)?.() ?? null;
}
