import type { ConfState } from '../types';
import { ConfChangeType } from '../types';
import type { ConfChangeSingle } from '../types';
import { Changer } from './changer';
import type { ChangeResult } from './changer';

/**
 * toConfChangeSingle translates a ConfState into the changes that rebuild it
 * from an empty config: `outgoing` builds the outgoing voters one by one,
 * `incoming` then enters the joint config (removing the outgoing voters
 * first, then adding voters, learners and learnersNext).
 */
export function toConfChangeSingle(cs: ConfState): { outgoing: ConfChangeSingle[]; incoming: ConfChangeSingle[] } {
  const outgoing: ConfChangeSingle[] = [];
  const incoming: ConfChangeSingle[] = [];
  for (const id of cs.votersOutgoing) outgoing.push({ changeType: ConfChangeType.AddNode, nodeId: id });
  for (const id of cs.votersOutgoing) incoming.push({ changeType: ConfChangeType.RemoveNode, nodeId: id });
  for (const id of cs.voters) incoming.push({ changeType: ConfChangeType.AddNode, nodeId: id });
  for (const id of cs.learners) incoming.push({ changeType: ConfChangeType.AddLearnerNode, nodeId: id });
  // learnersNext are outgoing voters; AddLearnerNode on them lands in LearnersNext.
  for (const id of cs.learnersNext) incoming.push({ changeType: ConfChangeType.AddLearnerNode, nodeId: id });
  return { outgoing, incoming };
}

/**
 * restoreConfState builds the tracker configuration described by cs,
 * starting from the (empty) configuration of changer.tracker. Throws
 * ConfChangeError if cs is not a valid configuration.
 */
export function restoreConfState(changer: Changer, cs: ConfState): ChangeResult {
  const { outgoing, incoming } = toConfChangeSingle(cs);
  const tracker = changer.tracker;
  let result: ChangeResult | undefined;
  const step = (f: (c: Changer) => ChangeResult): void => {
    result = f(new Changer(tracker, changer.lastIndex));
    tracker.setConfig(result.config, result.progress);
  };
  if (outgoing.length === 0) {
    for (const cc of incoming) step((c) => c.simple([cc]));
  } else {
    for (const cc of outgoing) step((c) => c.simple([cc]));
    step((c) => c.enterJoint(cs.autoLeave, incoming));
  }
  return result ?? { config: tracker.config, progress: tracker.progress };
}
