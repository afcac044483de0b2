// checkWatches: the watch checker (issue #18). For every watcher, the
// events it delivered must be exactly the committed writes of its range
// with a revision (commit ts) above its start and at or below the last
// revision it reported complete, in (revision, key) order, none missed,
// none duplicated; progress notifications never go backwards and no event
// at or below one comes after it.
//
// What "committed" is comes from the transaction history the workload
// recorded (history.ts of this folder): an acknowledged commit (ok) has a
// known commit ts and write set; an undetermined one (info) may or may not
// have committed, at a ts nobody told us. A delivered revision that no
// acknowledged commit explains must be exactly the in-range write set of
// one undetermined transaction (same keys, same values); once any watcher
// places that transaction at revision R, it committed at R, and every
// watcher whose range and span include R must deliver it too. A write of a
// transaction that definitely failed never explains anything.
import type { WatchCommit, WatcherRecord, WatchDelivered } from './history';

/** WatchFailure is one watcher's first divergence, and the count of what was wrong with it. */
export interface WatchFailure {
  watcher: number;
  /** revision of the first divergence. */
  revision: bigint;
  /** explanation: one line naming the watcher, the revision, and expected vs delivered. */
  explanation: string;
  /** kinds: what went wrong, counted (missed, duplicated, phantom, out-of-order, ...). */
  kinds: Record<string, number>;
}

export interface WatchCheckResult {
  ok: boolean;
  failures: WatchFailure[];
  stats: { watchers: number; events: number; progress: number; expected: number; undeterminedPlaced: number };
}

/** Want is one event a watcher must deliver: a write of transaction txn at revision (shown as `put k001=[1,2]@123 (T7)`). */
interface Want {
  type: 'put' | 'delete';
  key: string;
  value: string | undefined;
  revision: bigint;
  txn: number;
}

const cmp = (a: { revision: bigint; key: string }, b: { revision: bigint; key: string }): number => (a.revision < b.revision ? -1 : a.revision > b.revision ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/** inRange: start <= key < end, an empty end unbounded. */
export function inRange(key: string, start: string, end: string): boolean {
  return key >= start && (end === '' || key < end);
}

function show(e: { type: string; key: string; value?: string | undefined; revision: bigint }, txn?: number): string {
  return `${e.type} ${e.key}${e.type === 'put' ? `=${e.value ?? '?'}` : ''}@${e.revision}${txn !== undefined ? ` (T${txn})` : ''}`;
}

/** writesIn: a commit's writes of keys in the watcher's range, as wanted events at revision. */
function writesIn(c: WatchCommit, w: WatcherRecord, revision: bigint): Want[] {
  return c.writes.filter((x) => inRange(x.key, w.start, w.end)).map((x) => ({ type: x.value === null ? 'delete' : 'put', key: x.key, value: x.value ?? undefined, revision, txn: c.id }));
}

/** sameSet: the delivered events of one revision are exactly these wanted events (keys, types, values). */
function sameSet(got: readonly WatchDelivered[], want: readonly Want[]): boolean {
  if (got.length !== want.length) return false;
  const byKey = new Map(want.map((x) => [x.key, x]));
  return got.every((g) => {
    const x = byKey.get(g.key);
    return x !== undefined && x.type === g.type && (g.type === 'delete' || x.value === g.value);
  });
}

/** span: the revisions a watcher is complete over, (from, upTo]. upTo is its last progress, or from when it reported none. */
function upTo(w: WatcherRecord): bigint {
  let last = w.from;
  for (const it of w.items) if (it.type === 'progress' && it.revision > last) last = it.revision;
  return last;
}

/**
 * placeUndetermined decides, over every watcher, at which revision each
 * undetermined transaction committed (when some watcher delivered it): a
 * revision group no acknowledged commit explains is matched to the first
 * undetermined transaction whose in-range writes it equals, preferring one
 * already placed at that revision by another watcher.
 */
function placeUndetermined(commits: readonly WatchCommit[], watchers: readonly WatcherRecord[]): Map<number, bigint> {
  const okAt = new Set(commits.filter((c) => c.status === 'ok' && c.commitTs !== undefined).map((c) => c.commitTs!));
  const info = commits.filter((c) => c.status === 'info');
  const placed = new Map<number, bigint>();
  const atRevision = new Map<bigint, number>();
  for (const w of watchers) {
    const groups = new Map<bigint, WatchDelivered[]>();
    for (const it of w.items) {
      if (it.type === 'progress' || okAt.has(it.revision)) continue;
      groups.set(it.revision, [...(groups.get(it.revision) ?? []), it]);
    }
    for (const [revision, got] of groups) {
      const already = atRevision.get(revision);
      const candidates = already !== undefined ? info.filter((c) => c.id === already) : info.filter((c) => !placed.has(c.id));
      const c = candidates.find((c) => sameSet(got, writesIn(c, w, revision)));
      if (c === undefined) continue;
      placed.set(c.id, revision);
      atRevision.set(revision, c.id);
    }
  }
  return placed;
}

/** Problems collects one watcher's problems: counts by kind, and each with its revision (the report names the earliest). */
class Problems {
  readonly kinds: Record<string, number> = {};
  readonly notes: { revision: bigint; line: string }[] = [];
  add(kind: string, revision: bigint, line: string): void {
    this.kinds[kind] = (this.kinds[kind] ?? 0) + 1;
    this.notes.push({ revision, line });
  }
}

/** wanted: every acknowledged commit in (from, bound] and every undetermined one placed there, as the watcher's events, sorted. */
function wanted(commits: readonly WatchCommit[], placed: ReadonlyMap<number, bigint>, w: WatcherRecord, bound: bigint): Want[] {
  const want: Want[] = [];
  for (const c of commits) {
    const at = c.status === 'ok' ? c.commitTs : c.status === 'info' ? placed.get(c.id) : undefined;
    if (at === undefined || at <= w.from || at > bound) continue;
    want.push(...writesIn(c, w, at));
  }
  return want.sort(cmp);
}

/** orderRules checks the sequence as delivered (start, progress, order, duplicates) and returns its events at or below bound. */
function orderRules(w: WatcherRecord, bound: bigint, p: Problems): { got: WatchDelivered[]; events: number; progress: number } {
  const got: WatchDelivered[] = [];
  let lastProgress: bigint | undefined;
  let prev: WatchDelivered | undefined;
  let events = 0;
  let progress = 0;
  for (const it of w.items) {
    if (it.type === 'progress') {
      progress++;
      if (lastProgress !== undefined && it.revision < lastProgress) p.add('progress-backwards', it.revision, `progress ${it.revision} after progress ${lastProgress}`);
      lastProgress = it.revision;
      continue;
    }
    events++;
    if (it.revision <= w.from) p.add('at-or-below-start', it.revision, `delivered ${show(it)} at or below the start revision ${w.from}`);
    if (lastProgress !== undefined && it.revision <= lastProgress) p.add('after-progress', it.revision, `delivered ${show(it)} after progress ${lastProgress}`);
    if (prev !== undefined) {
      const c = cmp(prev, it);
      if (c === 0) p.add('duplicated', it.revision, `delivered ${show(it)} twice`);
      else if (c > 0) p.add('out-of-order', it.revision, `delivered ${show(it)} after ${show(prev)}`);
    }
    prev = it;
    if (it.revision <= bound) got.push(it);
  }
  return { got, events, progress };
}

/** exactDelivery compares the wanted events with the delivered ones as sets: phantom, wrong value, missed. */
function exactDelivery(want: readonly Want[], got: readonly WatchDelivered[], p: Problems): void {
  const wantKeys = new Map(want.map((x) => [`${x.key}@${x.revision}`, x]));
  const seen = new Set<string>();
  for (const g of got) {
    const id = `${g.key}@${g.revision}`;
    const x = wantKeys.get(id);
    if (x === undefined) p.add('phantom', g.revision, `delivered ${show(g)}, which no commit in the history explains`);
    else if (x.type !== g.type || (g.type === 'put' && x.value !== g.value)) p.add('wrong-value', g.revision, `delivered ${show(g)}, but T${x.txn} wrote ${show(x)}`);
    seen.add(id);
  }
  for (const x of want) if (!seen.has(`${x.key}@${x.revision}`)) p.add('missed', x.revision, `missed ${show(x, x.txn)}`);
}

/** divergence describes the first position where the delivered sequence leaves the wanted one. */
function divergence(w: WatcherRecord, bound: bigint, want: readonly Want[], got: readonly WatchDelivered[], p: Problems): WatchFailure {
  let i = 0;
  while (i < want.length && i < got.length && cmp(want[i]!, got[i]!) === 0 && want[i]!.value === got[i]!.value) i++;
  const wantAt = want[i];
  const gotAt = got[i];
  const first = p.notes.reduce((a, b) => (b.revision < a.revision ? b : a));
  const where = wantAt && gotAt ? (cmp(wantAt, gotAt) <= 0 ? wantAt.revision : gotAt.revision) : (wantAt?.revision ?? gotAt?.revision ?? first.revision);
  const seqLine = wantAt || gotAt ? `at event #${i + 1}, revision ${where}: expected ${wantAt ? show(wantAt, wantAt.txn) : 'nothing more'}, delivered ${gotAt ? show(gotAt) : 'nothing more'}` : `revision ${first.revision}: ${first.line}`;
  const kinds = Object.entries(p.kinds)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const range = `[${w.start}, ${w.end === '' ? '∞' : w.end})`;
  return { watcher: w.id, revision: where, explanation: `watcher W${w.id} ${range} from ${w.from} (complete to ${bound}): ${seqLine}; ${kinds}; first: ${first.line}`, kinds: p.kinds };
}

/** checkWatches checks every watcher against the history (see the file header). */
export function checkWatches(commits: readonly WatchCommit[], watchers: readonly WatcherRecord[]): WatchCheckResult {
  const placed = placeUndetermined(commits, watchers);
  const failures: WatchFailure[] = [];
  const stats = { watchers: watchers.length, events: 0, progress: 0, expected: 0, undeterminedPlaced: placed.size };
  for (const w of watchers) {
    const bound = upTo(w);
    const p = new Problems();
    const want = wanted(commits, placed, w, bound);
    const { got, events, progress } = orderRules(w, bound, p);
    exactDelivery(want, got, p);
    stats.expected += want.length;
    stats.events += events;
    stats.progress += progress;
    if (p.notes.length > 0) failures.push(divergence(w, bound, want, got, p));
  }
  return { ok: failures.length === 0, failures, stats };
}
