// Changer computes a new configuration from the current one and a list of
// changes, in etcd's confchange design: simple (at most one voter changes),
// enterJoint and leaveJoint. It never mutates the tracker; it returns a new
// config and progress map, which raft installs with switchToConfig.
import { ConfChangeError } from '../errors';
import { JointConfig } from '../quorum/joint';
import { MajorityConfig } from '../quorum/majority';
import { Inflights } from '../tracker/inflights';
import { Progress } from '../tracker/progress';
import type { ProgressMap, ProgressTracker, TrackerConfig } from '../tracker/progress-tracker';
import { describeTrackerConfig } from '../tracker/progress-tracker';
import { ConfChangeType } from '../types';
import type { ConfChangeSingle } from '../types';

/** MutableConfig is the working copy of a TrackerConfig while changes are applied. */
interface MutableConfig {
  incoming: Set<number>;
  outgoing: Set<number>;
  learners: Set<number>;
  learnersNext: Set<number>;
  autoLeave: boolean;
}

export interface ChangeResult {
  config: TrackerConfig;
  progress: ProgressMap;
}

export class Changer {
  constructor(
    readonly tracker: ProgressTracker,
    /** lastIndex initializes the Progress of added peers (next = max(lastIndex, 1)). */
    readonly lastIndex: number,
  ) {}

  /**
   * enterJoint moves to the joint configuration (old voters, new voters) and
   * applies ccs to the incoming half. autoLeave marks the config so the
   * leader leaves it automatically once applied.
   */
  enterJoint(autoLeave: boolean, ccs: ConfChangeSingle[]): ChangeResult {
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.outgoing.size > 0) throw new ConfChangeError('config is already joint');
    if (cfg.incoming.size === 0) {
      // A zero-voter config cannot become joint: the joint quorum would be meaningless.
      throw new ConfChangeError("can't make a zero-voter config joint");
    }
    for (const id of cfg.incoming) cfg.outgoing.add(id);
    this.apply(cfg, prs, ccs);
    cfg.autoLeave = autoLeave;
    return checkAndReturn(cfg, prs);
  }

  /**
   * leaveJoint drops the outgoing half: learnersNext become learners and
   * outgoing-only voters are removed.
   */
  leaveJoint(): ChangeResult {
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.outgoing.size === 0) throw new ConfChangeError(`can't leave a non-joint config: ${describeTrackerConfig(this.tracker.config)}`);
    for (const id of cfg.learnersNext) {
      cfg.learners.add(id);
      prs.get(id)!.isLearner = true;
    }
    cfg.learnersNext.clear();
    for (const id of cfg.outgoing) {
      if (!cfg.incoming.has(id) && !cfg.learners.has(id)) prs.delete(id);
    }
    cfg.outgoing.clear();
    cfg.autoLeave = false;
    return checkAndReturn(cfg, prs);
  }

  /**
   * simple applies changes that alter at most one voter, without joint
   * consensus: any two majorities of the old and new config then intersect.
   */
  simple(ccs: ConfChangeSingle[]): ChangeResult {
    const [cfg, prs] = this.checkAndCopy();
    if (cfg.outgoing.size > 0) throw new ConfChangeError("can't apply simple config change in joint config");
    const before = new Set(cfg.incoming);
    this.apply(cfg, prs, ccs);
    let diff = 0;
    for (const id of before) if (!cfg.incoming.has(id)) diff++;
    for (const id of cfg.incoming) if (!before.has(id)) diff++;
    if (diff > 1) throw new ConfChangeError('more than one voter changed without entering joint config');
    return checkAndReturn(cfg, prs);
  }

  private apply(cfg: MutableConfig, prs: ProgressMap, ccs: ConfChangeSingle[]): void {
    for (const cc of ccs) {
      if (cc.nodeId === 0) continue; // etcd ignores changes to node 0 (used for no-op changes)
      switch (cc.changeType) {
        case ConfChangeType.AddNode:
          this.makeVoter(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.AddLearnerNode:
          this.makeLearner(cfg, prs, cc.nodeId);
          break;
        case ConfChangeType.RemoveNode:
          remove(cfg, prs, cc.nodeId);
          break;
        default:
          throw new ConfChangeError(`unexpected conf change type ${String(cc.changeType)}`);
      }
    }
    if (cfg.incoming.size === 0) throw new ConfChangeError('removed all voters');
  }

  private makeVoter(cfg: MutableConfig, prs: ProgressMap, id: number): void {
    const pr = prs.get(id);
    if (pr === undefined) {
      this.initProgress(cfg, prs, id, false);
      return;
    }
    pr.isLearner = false;
    cfg.learners.delete(id);
    cfg.learnersNext.delete(id);
    cfg.incoming.add(id);
  }

  /**
   * makeLearner demotes or adds a learner. A voter of the outgoing config
   * cannot become a learner until the joint config is left, so it goes to
   * learnersNext instead.
   */
  private makeLearner(cfg: MutableConfig, prs: ProgressMap, id: number): void {
    const pr = prs.get(id);
    if (pr === undefined) {
      this.initProgress(cfg, prs, id, true);
      return;
    }
    if (pr.isLearner) return;
    remove(cfg, prs, id);
    prs.set(id, pr); // keep the progress: the peer stays tracked
    if (cfg.outgoing.has(id)) {
      cfg.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      cfg.learners.add(id);
    }
  }

  private initProgress(cfg: MutableConfig, prs: ProgressMap, id: number, isLearner: boolean): void {
    if (isLearner) cfg.learners.add(id);
    else cfg.incoming.add(id);
    const pr = new Progress(Math.max(this.lastIndex, 1), new Inflights(this.tracker.maxInflight, this.tracker.maxInflightBytes), isLearner);
    // A new peer is considered active, so check-quorum does not depose the leader right after adding it.
    pr.recentActive = true;
    prs.set(id, pr);
  }

  /** checkAndCopy validates the current config and returns deep copies to mutate. */
  private checkAndCopy(): [MutableConfig, ProgressMap] {
    const c = this.tracker.config;
    const cfg: MutableConfig = {
      incoming: new Set(c.voters.incoming.ids),
      outgoing: new Set(c.voters.outgoing.ids),
      learners: new Set(c.learners),
      learnersNext: new Set(c.learnersNext),
      autoLeave: c.autoLeave,
    };
    const prs: ProgressMap = new Map();
    for (const [id, pr] of this.tracker.progress) prs.set(id, pr.clone());
    checkInvariants(cfg, prs);
    return [cfg, prs];
  }
}

function remove(cfg: MutableConfig, prs: ProgressMap, id: number): void {
  if (!prs.has(id)) return;
  cfg.incoming.delete(id);
  cfg.learners.delete(id);
  cfg.learnersNext.delete(id);
  // An outgoing voter keeps its progress until the joint config is left.
  if (!cfg.outgoing.has(id)) prs.delete(id);
}

/** checkInvariants throws ConfChangeError if the config and progress map disagree. */
function checkInvariants(cfg: MutableConfig, prs: ProgressMap): void {
  for (const set of [cfg.incoming, cfg.outgoing, cfg.learners, cfg.learnersNext]) {
    for (const id of set) if (!prs.has(id)) throw new ConfChangeError(`no progress for ${id}`);
  }
  for (const id of cfg.learnersNext) {
    if (!cfg.outgoing.has(id)) throw new ConfChangeError(`${id} is in LearnersNext, but not Voters[1]`);
    if (prs.get(id)!.isLearner) throw new ConfChangeError(`${id} is in LearnersNext, but is already marked as learner`);
  }
  for (const id of cfg.learners) {
    if (cfg.outgoing.has(id)) throw new ConfChangeError(`${id} is in Learners and Voters[1]`);
    if (cfg.incoming.has(id)) throw new ConfChangeError(`${id} is in Learners and Voters[0]`);
    if (!prs.get(id)!.isLearner) throw new ConfChangeError(`${id} is in Learners, but is not marked as learner`);
  }
  if (cfg.outgoing.size === 0) {
    if (cfg.learnersNext.size > 0) throw new ConfChangeError('cfg.LearnersNext must be empty when not joint');
    if (cfg.autoLeave) throw new ConfChangeError('AutoLeave must be false when not joint');
  }
}

function checkAndReturn(cfg: MutableConfig, prs: ProgressMap): ChangeResult {
  checkInvariants(cfg, prs);
  return {
    config: {
      voters: new JointConfig(new MajorityConfig(cfg.incoming), new MajorityConfig(cfg.outgoing)),
      learners: cfg.learners,
      learnersNext: cfg.learnersNext,
      autoLeave: cfg.autoLeave,
    },
    progress: prs,
  };
}
