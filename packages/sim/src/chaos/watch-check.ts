// watch-check.ts: the watch checker of `pnpm chaos --workload watch`, a pure
// function over what the writers recorded and what one watcher delivered.
// (W1's packages/sim/src/watch/checker.ts for the simulation was not there
// when this was written; this one knows only the chaos workload's records.)
//
// What it holds a watcher to (issue #18): every change it delivered in
// [start, end) above its start revision is a committed put or delete, in
// (revision, key) order, none twice; every acknowledged transaction whose
// commit ts is in (from, until] shows up at exactly its commit ts with all
// of its changes in the range; an undetermined transaction (the commit was
// sent, its fate never learnt) shows up at most once, whole.

/** WatchMutation is one write of a transaction: a put of value, or a delete. */
export interface WatchMutation {
  key: string;
  type: 'put' | 'delete';
  /** value: the put's value (every put of one transaction writes the transaction's own unique value). */
  value?: string;
}

/** WatchWrite is one transaction a writer ran: acknowledged with its commit ts ('ok') or undetermined ('info'). Definite failures are not recorded. */
export interface WatchWrite {
  /** id names the transaction; its puts write exactly this value. */
  id: string;
  status: 'ok' | 'info';
  commitTs?: bigint;
  mutations: readonly WatchMutation[];
}

/** DeliveredChange is one change a watcher yielded, in the order it was yielded. */
export interface DeliveredChange {
  revision: bigint;
  key: string;
  type: 'put' | 'delete';
  value?: string;
}

/** WatchSpec is one watcher's range [start, end) (end '' = no end), start revision and the revision it was known complete to. */
export interface WatchSpec {
  name: string;
  start: string;
  end: string;
  fromRevision: bigint;
  /** until: the watch's revision had passed this when it was closed, so everything at or below it must have been delivered. */
  until: bigint;
}

/** WatchCheck is the verdict for one watcher: problems is empty when it held. */
export interface WatchCheck {
  name: string;
  problems: string[];
  /** delivered: changes at or below until that were checked; acked: acknowledged transactions seen; undetermined: undetermined ones seen / not seen. */
  delivered: number;
  acked: number;
  undeterminedSeen: number;
  undeterminedAbsent: number;
}

/** MAX_PROBLEMS: a broken watcher is reported by its first few problems, not thousands of lines. */
const MAX_PROBLEMS = 20;

const inRange = (spec: WatchSpec, key: string): boolean => key >= spec.start && (spec.end === '' || key < spec.end);

/** sig is a comparable text of a set of changes: sorted by key, type and value. */
function sig(ms: readonly { key: string; type: string; value?: string | undefined }[]): string {
  return ms
    .map((m) => `${m.type} ${m.key}${m.type === 'put' ? `=${m.value ?? ''}` : ''}`)
    .sort()
    .join(', ');
}

/** checkOrder: over everything it yielded (also above until), (revision, key) strictly increases. */
function checkOrder(delivered: readonly DeliveredChange[], problem: (p: string) => void): void {
  for (let i = 1; i < delivered.length; i++) {
    const a = delivered[i - 1]!;
    const b = delivered[i]!;
    if (b.revision < a.revision || (b.revision === a.revision && b.key <= a.key)) {
      problem(`${b.revision === a.revision && b.key === a.key ? 'duplicated' : 'out of order'}: change #${i} ${b.type} ${b.key} @${b.revision} came after ${a.type} ${a.key} @${a.revision}`);
    }
  }
}

/** groupByRevision groups the checked changes by revision (one revision = one transaction's changes in the range), checking each is above the start and in the range. */
function groupByRevision(spec: WatchSpec, checked: readonly DeliveredChange[], problem: (p: string) => void): Map<bigint, DeliveredChange[]> {
  const groups = new Map<bigint, DeliveredChange[]>();
  for (const d of checked) {
    if (d.revision <= spec.fromRevision) problem(`at or below the start revision ${spec.fromRevision}: ${d.type} ${d.key} @${d.revision}`);
    if (!inRange(spec, d.key)) problem(`outside the range: ${d.type} ${d.key} @${d.revision}`);
    const g = groups.get(d.revision);
    if (g) g.push(d);
    else groups.set(d.revision, [d]);
  }
  return groups;
}

/** Index finds the transaction behind a revision's changes: by commit ts (acknowledged), by the value its puts wrote, or (delete-only, undetermined) by its changes. */
interface Index {
  byCommitTs: Map<bigint, WatchWrite>;
  byValue: Map<string, WatchWrite>;
  deleteOnly: Map<string, WatchWrite[]>;
}

function indexWrites(spec: WatchSpec, writes: readonly WatchWrite[], problem: (p: string) => void): Index {
  const ix: Index = { byCommitTs: new Map(), byValue: new Map(), deleteOnly: new Map() };
  for (const w of writes) {
    if (w.status === 'ok' && w.commitTs !== undefined) {
      const other = ix.byCommitTs.get(w.commitTs);
      if (other) problem(`two acknowledged transactions ${other.id} and ${w.id} have one commit ts ${w.commitTs}`);
      ix.byCommitTs.set(w.commitTs, w);
    }
    ix.byValue.set(w.id, w);
    // Undetermined transactions whose changes in the range are only deletes cannot be told apart by value: match them by their changes.
    const e = expectedOf(spec, w);
    if (w.status === 'info' && e.length > 0 && e.every((m) => m.type === 'delete')) {
      const k = sig(e);
      ix.deleteOnly.set(k, [...(ix.deleteOnly.get(k) ?? []), w]);
    }
  }
  return ix;
}

const expectedOf = (spec: WatchSpec, w: WatchWrite): WatchMutation[] => w.mutations.filter((m) => inRange(spec, m.key));

/** checkWatch checks one watcher's delivered changes against the writers' records (see the file comment). */
export function checkWatch(spec: WatchSpec, writes: readonly WatchWrite[], delivered: readonly DeliveredChange[]): WatchCheck {
  const problems: string[] = [];
  const problem = (p: string): void => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  checkOrder(delivered, problem);
  const checked = delivered.filter((d) => d.revision <= spec.until);
  const groups = groupByRevision(spec, checked, problem);
  const ix = indexWrites(spec, writes, problem);
  const seen = new Set<WatchWrite>();
  let acked = 0;
  let undeterminedSeen = 0;
  for (const [revision, g] of groups) {
    const got = sig(g);
    const put = g.find((d) => d.type === 'put');
    let w = ix.byCommitTs.get(revision) ?? (put?.value !== undefined ? ix.byValue.get(put.value) : undefined);
    if (!w && !put) w = ix.deleteOnly.get(got)?.find((c) => !seen.has(c));
    if (!w) {
      problem(`no transaction wrote the changes at revision ${revision}: ${got}`);
      continue;
    }
    if (seen.has(w)) {
      problem(`transaction ${w.id} delivered twice (again at revision ${revision})`);
      continue;
    }
    seen.add(w);
    if (w.status === 'ok') {
      acked++;
      if (w.commitTs !== revision) problem(`transaction ${w.id} committed at ${String(w.commitTs)} but was delivered at revision ${revision}`);
    } else undeterminedSeen++;
    const want = sig(expectedOf(spec, w));
    if (got !== want) problem(`revision ${revision} (transaction ${w.id}): delivered [${got}], the transaction wrote [${want}] in the range`);
  }
  // Every acknowledged commit in (from, until] with a change in the range was delivered.
  for (const w of writes) {
    if (w.status !== 'ok' || w.commitTs === undefined || seen.has(w)) continue;
    if (w.commitTs > spec.fromRevision && w.commitTs <= spec.until && expectedOf(spec, w).length > 0) {
      problem(`missed: transaction ${w.id} committed at ${w.commitTs} [${sig(expectedOf(spec, w))}]`);
    }
  }
  const undeterminedAbsent = writes.filter((w) => w.status === 'info' && !seen.has(w) && expectedOf(spec, w).length > 0).length;
  return { name: spec.name, problems, delivered: checked.length, acked, undeterminedSeen, undeterminedAbsent };
}
