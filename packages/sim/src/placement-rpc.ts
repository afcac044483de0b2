// Placement RPCs in the 3-member simulation: what PlacementClient does over
// WebSocket (find the leader, follow NotLeader redirects, fail over with
// backoff, resend what is safe to resend), with the link between a caller
// (a store, a TSO client) and each member simulated: latency and loss drawn
// from the run's seed, cuts between a caller and a member (a partition
// between placement and stores), and a member that is down refusing at once.
import { PlacementError, PlacementErrorCode } from '@flotilla/placement';
import { mulberry32, type LocalFaults } from '@flotilla/transport';
import { InProcessPlacement } from './placement-adapter';
import type { SimPlacementGroup } from './placement-group';

/** CALL_TIMEOUT_MS: a call gives up after this long (PlacementClient's default request timeout). */
export const CALL_TIMEOUT_MS = 5_000;
/** LOST_AFTER_MS: a request or answer that is lost (or cut off) is noticed after this long. */
const LOST_AFTER_MS = 1_000;

/**
 * RESENDABLE: methods a caller may send again after a lost answer
 * (PlacementClient's list, plus getTimestamps: a lost range is only skipped).
 */
const RESENDABLE: ReadonlySet<string> = new Set(['isBootstrapped', 'allocId', 'putStore', 'storeHeartbeat', 'regionHeartbeat', 'askBatchSplit', 'reportBatchSplit', 'getRegion', 'getRegionById', 'getStore', 'getAllStores', 'getClusterInfo', 'getTimestamps']);

/** Refused: the member is down (connection refused): nothing was done, any call may go elsewhere. */
class Refused extends Error {}
/** Lost: the request or its answer was lost: it may or may not have been applied. */
class Lost extends Error {}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** RpcNet is the simulated link between callers and members: faults, cuts and the seeded draws. */
export class RpcNet {
  private readonly random: () => number;
  private faults: Required<Pick<LocalFaults, 'dropProbability' | 'delay'>> = { dropProbability: 0, delay: [0, 0] };
  /** cuts: "caller/member index" pairs that cannot reach each other. */
  private readonly cuts = new Set<string>();

  constructor(
    readonly group: SimPlacementGroup,
    seed: number,
  ) {
    this.random = mulberry32((seed ^ 0x2545f491) >>> 0);
  }

  setFaults(f: LocalFaults): void {
    this.faults = { dropProbability: f.dropProbability ?? 0, delay: f.delay ?? [0, 0] };
  }

  cut(caller: string, member: number): void {
    this.cuts.add(`${caller}/${member}`);
  }

  /** cutAll cuts caller off from every member. */
  cutAll(caller: string): void {
    for (const s of this.group.slots) this.cut(caller, s.index);
  }

  heal(): void {
    this.cuts.clear();
  }

  isCut(caller: string, member: number): boolean {
    return this.cuts.has(`${caller}/${member}`);
  }

  private delay(): number {
    const [lo, hi] = this.faults.delay;
    return hi === 0 ? 0 : lo + Math.floor(this.random() * (hi - lo + 1));
  }

  private dropped(): boolean {
    return this.faults.dropProbability > 0 && this.random() < this.faults.dropProbability;
  }

  /** request carries one call from caller to member index and its answer back, through the link's faults. */
  async request(caller: string, index: number, method: string, params: unknown): Promise<unknown> {
    const out = this.delay();
    if (out > 0) await sleep(out);
    const member = this.group.slots[index]!.member;
    if (!member) throw new Refused(`placement member ${this.group.slots[index]!.name} is down`);
    if (this.isCut(caller, index) || this.dropped()) {
      await sleep(LOST_AFTER_MS);
      throw new Lost(`request to ${this.group.slots[index]!.name} lost`);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = Promise.resolve().then(() => member.dispatch(method, params));
    const timeout = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Lost(`no answer from ${this.group.slots[index]!.name}`)), CALL_TIMEOUT_MS)));
    let result: unknown;
    try {
      result = await Promise.race([answer, timeout]);
    } finally {
      clearTimeout(timer);
    }
    const back = this.delay();
    if (back > 0) await sleep(back);
    if (this.isCut(caller, index) || this.dropped()) {
      await sleep(LOST_AFTER_MS);
      throw new Lost(`answer from ${this.group.slots[index]!.name} lost`);
    }
    return result;
  }
}

/**
 * GroupCaller is one caller's placement client: it remembers the member it
 * last found leading, follows NotLeader hints, tries the next member when
 * one is down or silent, and gives up after CALL_TIMEOUT_MS with Timeout.
 */
export class GroupCaller {
  private target = 0;
  private readonly random: () => number;

  constructor(
    private readonly net: RpcNet,
    readonly caller: string,
    seed: number,
  ) {
    this.random = mulberry32(seed >>> 0);
  }

  async call(method: string, params: unknown): Promise<unknown> {
    const deadline = Date.now() + CALL_TIMEOUT_MS;
    const n = this.net.group.slots.length;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.net.request(this.caller, this.target, method, params);
      } catch (err) {
        const hint = this.nextTarget(err, method);
        if (hint === undefined) throw err;
        this.target = hint === 'next' ? (this.target + 1) % n : hint;
      }
      if (Date.now() >= deadline) throw new PlacementError(PlacementErrorCode.Timeout, `placement ${method}: no member answered within ${CALL_TIMEOUT_MS} ms`);
      const base = Math.min(1000, 25 * 2 ** Math.min(attempt, 6));
      await sleep(Math.round(base / 2 + (this.random() * base) / 2));
    }
  }

  /** nextTarget: where to retry after err (a member index, or 'next'), or undefined to give err to the caller. */
  private nextTarget(err: unknown, method: string): number | 'next' | undefined {
    if (err instanceof Refused) return 'next';
    if (err instanceof Lost) {
      if (RESENDABLE.has(method)) return 'next';
      throw new PlacementError(PlacementErrorCode.Unavailable, `placement ${method}: ${err.message}; it may or may not have been applied`);
    }
    if (!(err instanceof PlacementError)) return undefined;
    if (err.code === PlacementErrorCode.NotLeader) {
      const i = err.leader === undefined ? -1 : this.net.group.slots.findIndex((s) => s.address === err.leader);
      return i >= 0 && i !== this.target ? i : 'next';
    }
    if (err.code === PlacementErrorCode.Unavailable && RESENDABLE.has(method)) return 'next';
    if (err.code === PlacementErrorCode.TooManyPending) return this.target;
    return undefined;
  }
}

/** GroupPlacement is a store's PlacementApi on the 3-member group (the same calls and copies as InProcessPlacement). */
export class GroupPlacement extends InProcessPlacement {
  constructor(
    private readonly caller: GroupCaller,
    observe?: (method: string, params: unknown, result: unknown) => void,
  ) {
    super(
      () => {
        throw new Error('GroupPlacement has no single cluster');
      },
      () => false,
      observe,
    );
  }

  protected override invoke(method: string, params: unknown): unknown {
    return this.caller.call(method, params);
  }
}
