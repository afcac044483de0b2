import { BalanceLeader, type BalanceLeaderOptions } from './balance-leader';
import { BalanceRegion, type BalanceRegionOptions } from './balance-region';
import { HotRegion, type HotRegionOptions } from './hot-region';
import { MergeChecker, type MergeCheckerOptions } from './merge-checker';
import { ReplicaChecker, type ReplicaCheckerOptions } from './replica-checker';
import type { Scheduler } from './scheduler';

/** BuiltInSchedulerOptions configures placement's built-in schedulers (part of ClusterOptions). */
export interface BuiltInSchedulerOptions {
  /** schedulers replaces the built-in set (replica checker, merge checker, balance-leader, balance-region, hot-region). */
  schedulers?: Scheduler[];
  replicaChecker?: ReplicaCheckerOptions;
  balanceLeader?: BalanceLeaderOptions | false;
  balanceRegion?: BalanceRegionOptions | false;
  /**
   * mergeChecker folds small adjacent Regions together (on by default;
   * false disables it). Defaults: 20 MiB / 200,000 keys, no merge within
   * 1 h of a split or of placement's start, 8 operators in flight.
   */
  mergeChecker?: MergeCheckerOptions | false;
  /**
   * hotRegion spreads hot leaders across stores by their reported flow
   * (schedule/hot-region.ts). Off unless given (true or options):
   * balance-leader counts leaders, not load, and may hand a moved hot leader
   * back, so the two are not yet tuned to run together by default.
   */
  hotRegion?: HotRegionOptions | boolean;
}

/** defaultSchedulers builds the built-in set. Checkers come before balancers, as in PD: repairs and merges claim their Regions before a balancer moves them. */
export function defaultSchedulers(opts: BuiltInSchedulerOptions): Scheduler[] {
  if (opts.schedulers) return opts.schedulers;
  const hot = opts.hotRegion;
  return [
    new ReplicaChecker(opts.replicaChecker),
    ...(opts.mergeChecker === false ? [] : [new MergeChecker(opts.mergeChecker)]),
    ...(opts.balanceLeader === false ? [] : [new BalanceLeader(opts.balanceLeader)]),
    ...(opts.balanceRegion === false ? [] : [new BalanceRegion(opts.balanceRegion)]),
    ...(hot === undefined || hot === false ? [] : [new HotRegion(hot === true ? {} : hot)]),
  ];
}
