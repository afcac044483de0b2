// The replicated placement's checkers (issue #16, the simulation's bullet):
//   IdLedger          no ID is ever issued twice, across leaders: every ID that
//                     leaves placement (allocId, askBatchSplit, the operator and
//                     new-peer IDs in heartbeat answers) is recorded with its use
//   checkTso          TSO linearizability: every timestamp returned is greater
//                     than every timestamp returned before its request was sent,
//                     and no timestamp is returned twice
//   LeaderRouting     routing-table invariants on the current leader: no overlap
//                     (the tree's own check), epochs per Region never go back
//                     within a leadership, and a new leader never routes to a
//                     Region older than one already committed in a term it follows
// Each takes plain records, so a unit test can feed it a bad history.
import type { RegionEpoch } from '@flotilla/proto';

/** IdLedger remembers, for every ID placement handed out, the one use it was handed out for. */
export class IdLedger {
  private readonly uses = new Map<number, string>();
  private answers = 0;
  readonly violations: string[] = [];

  get size(): number {
    return this.uses.size;
  }

  /** issue records that id was handed out for use; another use of the same id is a violation. */
  issue(id: number, use: string): void {
    const prev = this.uses.get(id);
    if (prev === undefined) this.uses.set(id, use);
    else if (prev !== use) this.violations.push(`ID ${id} issued twice: for ${prev}, then for ${use}`);
  }

  /** observe reads one answered placement call and records the IDs it hands out. */
  observe(caller: string, method: string, params: unknown, result: unknown): void {
    if (method === 'allocId') {
      const n = ++this.answers;
      for (const id of (result as { ids: number[] }).ids) this.issue(id, `allocId answer #${n} to ${caller}`);
    } else if (method === 'askBatchSplit') {
      const n = ++this.answers;
      for (const s of (result as { ids: { newRegionId: number; newPeerIds: number[] }[] }).ids) {
        this.issue(s.newRegionId, `askBatchSplit answer #${n} to ${caller} (Region)`);
        for (const p of s.newPeerIds) this.issue(p, `askBatchSplit answer #${n} to ${caller} (peer)`);
      }
    } else if (method === 'regionHeartbeat') {
      this.observeOperator((params as { region: { id: number } }).region.id, (result as { operator?: HeartbeatOperator }).operator);
    }
  }

  /** observeOperator: an operator's ID names one operator; a peer it adds is one new peer of one Region on one store. */
  private observeOperator(regionId: number, op: HeartbeatOperator | undefined): void {
    if (!op) return;
    this.issue(op.operatorId, `operator ${op.operatorId} (${op.kind} of Region ${regionId})`);
    const step = op.step as { type?: string; peer?: { id: number; storeId: number } } | undefined;
    if (step?.peer && (step.type === 'addLearner' || step.type === 'addPeer')) this.issue(step.peer.id, `new peer of Region ${regionId} on store ${step.peer.storeId}`);
  }
}

interface HeartbeatOperator {
  operatorId: number;
  kind: string;
  step?: unknown;
}

/** TsoRecord is one answered getTimestamps: when it was sent and answered (a global event order) and the range. */
export interface TsoRecord {
  client: number;
  sentSeq: number;
  answeredSeq: number;
  first: bigint;
  last: bigint;
}

/** checkTso returns the violations of TSO linearizability and uniqueness in records (empty when there are none). */
export function checkTso(records: readonly TsoRecord[]): string[] {
  const out: string[] = [];
  for (const r of records) if (r.last < r.first) out.push(`client ${r.client}: range ${r.first}..${r.last} is empty or inverted`);
  // Linearizability: the largest timestamp answered before a request was sent must be below the request's first.
  const byAnswer = [...records].sort((a, b) => a.answeredSeq - b.answeredSeq);
  const maxBefore: bigint[] = [];
  let max = -1n;
  for (const r of byAnswer) maxBefore.push((max = r.last > max ? r.last : max));
  for (const r of records) {
    let lo = 0;
    let hi = byAnswer.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (byAnswer[mid]!.answeredSeq < r.sentSeq) lo = mid + 1;
      else hi = mid;
    }
    const before = lo === 0 ? -1n : maxBefore[lo - 1]!;
    if (r.first <= before) {
      const culprit = byAnswer.slice(0, lo).find((x) => x.last === before)!;
      out.push(`TSO went back: client ${r.client} sent at event ${r.sentSeq} and got ${r.first}, but client ${culprit.client} had been answered ${before} at event ${culprit.answeredSeq}`);
    }
  }
  // Uniqueness: concurrent requests must get disjoint ranges too.
  const byFirst = [...records].sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  for (let i = 1; i < byFirst.length; i++) {
    const p = byFirst[i - 1]!;
    const r = byFirst[i]!;
    if (r.first <= p.last) out.push(`TSO issued a timestamp twice: client ${p.client} got ${p.first}..${p.last}, client ${r.client} got ${r.first}..${r.last}`);
  }
  return out.slice(0, 20);
}

const epochBack = (prev: RegionEpoch, e: RegionEpoch): boolean => e.version < prev.version || e.confVer < prev.confVer;
const show = (e: RegionEpoch) => `${e.version}/${e.confVer}`;

/** LeaderView is what LeaderRouting reads of one leader at one moment. */
export interface LeaderView {
  /** leadership identifies one term of one member (a new object for each). */
  leadership: object;
  member: string;
  term: number;
  regions: { id: number; epoch: RegionEpoch }[];
  /** treeError: the leader's Region tree invariant check failed with this message. */
  treeError?: string;
}

/** LeaderRouting checks the leader's routing table slice by slice; committed() feeds it what members applied. */
export class LeaderRouting {
  private readonly seen = new WeakMap<object, Map<number, RegionEpoch>>();
  /** committedEpochs: by Region, by the term of the member's last applied entry, the highest epoch applied. */
  private readonly committedEpochs = new Map<number, Map<number, RegionEpoch>>();
  readonly violations: string[] = [];

  /** committed records a member's applied Region rows (everything applied is committed); appliedTerm is its last applied entry's term. */
  committed(appliedTerm: number, regions: { id: number; epoch: RegionEpoch }[]): void {
    for (const r of regions) {
      let byTerm = this.committedEpochs.get(r.id);
      if (!byTerm) this.committedEpochs.set(r.id, (byTerm = new Map()));
      const prev = byTerm.get(appliedTerm);
      if (!prev || r.epoch.version > prev.version || (r.epoch.version === prev.version && r.epoch.confVer > prev.confVer)) byTerm.set(appliedTerm, { ...r.epoch });
    }
  }

  check(at: number, v: LeaderView): void {
    if (v.treeError) this.violations.push(`${at} ms: leader ${v.member} (term ${v.term}) Region tree invariant broken: ${v.treeError}`);
    let mine = this.seen.get(v.leadership);
    if (!mine) this.seen.set(v.leadership, (mine = new Map()));
    for (const r of v.regions) {
      const prev = mine.get(r.id);
      if (prev && epochBack(prev, r.epoch)) this.violations.push(`${at} ms: leader ${v.member} (term ${v.term}) Region ${r.id} epoch went back ${show(prev)} -> ${show(r.epoch)}`);
      mine.set(r.id, { ...r.epoch });
      // Leader completeness: entries applied in terms up to the leader's are in its log, so in its table.
      for (const [term, e] of this.committedEpochs.get(r.id) ?? []) {
        if (term <= v.term && epochBack(e, r.epoch)) this.violations.push(`${at} ms: leader ${v.member} (term ${v.term}) routes Region ${r.id} at epoch ${show(r.epoch)}, older than the ${show(e)} committed by term ${term}`);
      }
    }
    if (this.violations.length > 20) this.violations.length = 20;
  }
}
