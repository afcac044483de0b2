import { indexRegion, type PreparedRegions } from './cluster';
import { RegionTree, compareBytes } from './region-tree';
import type { LoadedState, PlacementStorage } from './storage';
import type { RegionInfo } from './types';

/** LOAD_PAGE_ROWS: Region rows read per query (one page; a slice reads pages until its time is up). */
const LOAD_PAGE_ROWS = 256;
/** SORT_RUN: the merge sort's first runs, sorted in one go each (a few thousand comparisons). */
const SORT_RUN = 256;

/** LoadCancelled: the load was abandoned between two slices (the member stopped leading). */
export class LoadCancelled extends Error {
  constructor() {
    super('placement leader load cancelled');
    this.name = 'LoadCancelled';
  }
}

/** SliceOptions: how much a slice may do before it yields to the event loop. */
export interface SliceOptions {
  /** sliceMs: wall time a slice may take (default 10). */
  sliceMs?: number;
  /** sliceOps: units of work (rows, comparisons) a slice may do whatever the clock says (default 20,000; a simulation's clock stands still). */
  sliceOps?: number;
  /** cancelled: checked after each yield; true ends the load with LoadCancelled. */
  cancelled?: () => boolean;
}

/**
 * Slicer cuts a long computation into slices between event-loop turns:
 * `if (s.due()) await s.yield()` in every loop. A slice ends after sliceMs
 * of wall time or sliceOps units of work, whichever comes first; yielding
 * goes through setImmediate, so timers (raft ticks) and sockets (raft
 * messages, requests) are served between two slices.
 */
export class Slicer {
  private readonly sliceMs: number;
  private readonly sliceOps: number;
  private startedAt = performance.now();
  private ops = 0;
  /** slices: how many slices the work took so far (logs, tests). */
  slices = 1;
  /** longestMs: the longest slice so far, yields excluded (logs, tests). */
  longestMs = 0;

  constructor(private readonly opts: SliceOptions = {}) {
    this.sliceMs = opts.sliceMs ?? 10;
    this.sliceOps = opts.sliceOps ?? 20_000;
  }

  /** due counts n units of work and says whether the slice is used up (the clock is read every 64 calls). */
  due(n = 1): boolean {
    this.ops += n;
    if (this.ops >= this.sliceOps) return true;
    return (this.ops & 63) < n && performance.now() - this.startedAt >= this.sliceMs;
  }

  /** yield lets the event loop run, then starts a new slice (or throws LoadCancelled). */
  async yield(): Promise<void> {
    this.longestMs = Math.max(this.longestMs, performance.now() - this.startedAt);
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.opts.cancelled?.()) throw new LoadCancelled();
    this.startedAt = performance.now();
    this.ops = 0;
    this.slices++;
  }
}

/**
 * sortInSlices sorts items (stably) by cmp, yielding between slices: runs of
 * SORT_RUN sorted in place, then bottom-up merges. Array.prototype.sort
 * over 100,000 Regions by start key took 0.8 s of CPU in one go on this
 * machine; here no slice does more than the Slicer allows.
 */
export async function sortInSlices<T>(items: T[], cmp: (a: T, b: T) => number, s: Slicer): Promise<T[]> {
  const n = items.length;
  for (let lo = 0; lo < n; lo += SORT_RUN) {
    const run = items.slice(lo, lo + SORT_RUN).sort(cmp);
    for (let i = 0; i < run.length; i++) items[lo + i] = run[i]!;
    if (s.due(run.length * 8)) await s.yield();
  }
  let src = items;
  let dst = new Array<T>(n);
  for (let width = SORT_RUN; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n);
      const hi = Math.min(lo + 2 * width, n);
      let i = lo;
      let j = mid;
      for (let k = lo; k < hi; k++) {
        dst[k] = j >= hi || (i < mid && cmp(src[i]!, src[j]!) <= 0) ? src[i++]! : src[j++]!;
        if (s.due()) await s.yield();
      }
    }
    [src, dst] = [dst, src];
  }
  return src;
}

/** LoadedCluster: what a new placement leader builds its PlacementCluster from. */
export interface LoadedCluster {
  /** state: the meta, stores and operators (read last, at once: small); its regions list is empty. */
  state: LoadedState;
  prepared: PreparedRegions;
}

/**
 * loadClusterInSlices reads a placement database's routing table the way
 * a new leader must (issue #16): in slices, so that no event-loop turn
 * blocks its raft ticks and heartbeats (at 100,000 Regions the load at
 * once took 6.6-15.5 s at load 20, longer than the election timeout).
 * Region rows come a page at a time in ID order, are sorted by start key,
 * placed into a RegionTree (the same update rule as RegionTree.load),
 * checked and indexed per store; then the small rest (meta, stores,
 * operators) is read at once. The caller guarantees the tables do not
 * change meanwhile (a leader's own proposals are the only writers of
 * them, and it makes none before it serves).
 */
export async function loadClusterInSlices(storage: PlacementStorage, s: Slicer): Promise<LoadedCluster> {
  const rows: RegionInfo[] = [];
  for (let after = 0; ; ) {
    const page = storage.regionsAfter(after, LOAD_PAGE_ROWS);
    for (const r of page) rows.push(r);
    if (page.length < LOAD_PAGE_ROWS) break;
    after = page[page.length - 1]!.region.id;
    if (s.due(page.length * 4)) await s.yield();
  }
  const ordered = await sortInSlices(rows, (a, b) => compareBytes(a.region.startKey, b.region.startKey), s);
  const tree = new RegionTree();
  const dropped: RegionInfo[] = [];
  for (const info of ordered) {
    tree.loadNext(info, dropped);
    if (s.due(4)) await s.yield();
  }
  for (let i = 0; i < tree.size; i += 1024) {
    tree.checkInvariants(i, i + 1024);
    if (s.due(1024)) await s.yield();
  }
  const regionsByStore = new Map<number, Set<number>>();
  const leadersByStore = new Map<number, Set<number>>();
  for (let i = 0; i < tree.size; i++) {
    indexRegion(regionsByStore, leadersByStore, tree.at(i)!);
    if (s.due(4)) await s.yield();
  }
  return { state: storage.loadState({ regions: false }), prepared: { tree, regionsByStore, leadersByStore, dropped } };
}
