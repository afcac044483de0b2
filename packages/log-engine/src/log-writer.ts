import type Database from 'better-sqlite3';
import type { ConfState, Entry, HardState } from '@flotilla/raft-core';
import { emptyConfState } from '@flotilla/raft-core';
import { decodeBatch, decodeConfState, encodeConfState } from './batch-codec';
import { assert, InvalidBatchError } from './errors';
import type { LogOp } from './log-batch';
import { vacuumStep } from './vacuum';

/** RaftStateRow is one Region's row of raft_state, as the writer mirrors it. */
export interface RaftStateRow {
  hardState: HardState;
  confState: ConfState;
  truncatedIndex: number;
  truncatedTerm: number;
  removed: boolean;
}

export interface WriterOptions {
  /** foldRows: fold staged writes into the tables once this many are staged. */
  foldRows: number;
  /** foldBytes: ... or once their encoded bodies reach this many bytes. */
  foldBytes: number;
}

/** MULTI_ROWS is how many entries one multi-row INSERT of a fold carries (fewer statement round trips). */
const MULTI_ROWS = 32;

export const DEFAULT_WRITER_OPTIONS: WriterOptions = { foldRows: 256, foldBytes: 8 * 1024 * 1024 };

/** CommitResult tells the engine where a write landed. */
export interface CommitResult {
  /** seq is the write's sequence number (staging row id). */
  seq: number;
  /** commits counts this writer's transactions so far (group commits make it lag the writes). */
  commits: number;
  /** foldedThrough: every write with seq <= this now lives in entries/raft_state. */
  foldedThrough: number;
}

export function defaultRaftState(): RaftStateRow {
  return { hardState: { term: 0, vote: 0, commit: 0 }, confState: emptyConfState(), truncatedIndex: 0, truncatedTerm: 0, removed: false };
}

/**
 * loadRaftStates reads every raft_state row. Used by the engine (its view)
 * and by the writer (its mirror).
 */
export function loadRaftStates(db: Database.Database): Map<number, RaftStateRow> {
  const rows = db
    .prepare('SELECT region_id, term, vote, commit_index, truncated_index, truncated_term, conf_state, removed FROM raft_state')
    .raw()
    .all() as [number, number, number, number, number, number, Buffer, number][];
  const out = new Map<number, RaftStateRow>();
  for (const [id, term, vote, commit, ti, tt, cs, removed] of rows) {
    out.set(id, { hardState: { term, vote, commit }, confState: decodeConfState(cs), truncatedIndex: ti, truncatedTerm: tt, removed: removed !== 0 });
  }
  return out;
}

/**
 * LogWriter is the only code that writes the log database. It runs on the
 * thread that owns the writing connection: the main thread (sync mode) or
 * the writer worker. A write commits its encoded batch as one `staging` row
 * (one transaction, one fsync); every `foldRows` writes (or `foldBytes`), the
 * same transaction also replays all staged batches into `entries` and
 * `raft_state` and empties `staging`. Restart replays whatever is staged.
 *
 * A failed commit leaves the writer's mirrors unreliable, so the writer
 * poisons itself: every later call throws and the engine must be reopened.
 */
export class LogWriter {
  private readonly states: Map<number, RaftStateRow>;
  /** tableMax: highest idx stored in `entries` per Region (0 = none), loaded lazily. */
  private readonly tableMax = new Map<number, number>();
  private readonly dirty = new Set<number>();
  /**
   * pending: per Region, the run of entries appended by the fold in
   * progress and not yet inserted. Runs are inserted with multi-row INSERTs
   * at the end of the fold (or before an op that needs the table current),
   * and an overwrite inside a run just cuts it.
   */
  private readonly pending = new Map<number, { first: number; entries: Entry[] }>();
  private readonly multiArgs: unknown[] = new Array(MULTI_ROWS * 6);
  /** purgeCandidates: Regions that may hold entries below their truncated index (or are removed). */
  private readonly purgeCandidates = new Set<number>();
  /**
   * shadow: per Region, the log bounds after every committed write (staged
   * or folded). Each batch is checked against it before anything is written,
   * so a bad batch fails cleanly instead of poisoning a later fold.
   */
  private readonly shadow = new Map<number, { truncated: number; last: number }>();
  private readonly maxIdxStmt: Database.Statement;
  private staged: { seq: number; body: Uint8Array }[] = [];
  private stagedBytes = 0;
  private nextSeq: number;
  private foldedThrough: number;
  private poisoned: unknown;
  private commits = 0;

  private readonly stmt: {
    insertEntry: Database.Statement;
    insertEntries: Database.Statement;
    deleteFrom: Database.Statement;
    deleteAbove: Database.Statement;
    deleteAll: Database.Statement;
    deleteRange: Database.Statement;
    maxIdx: Database.Statement;
    minIdx: Database.Statement;
    upsertState: Database.Statement;
    deleteState: Database.Statement;
    insertStaging: Database.Statement;
    clearStaging: Database.Statement;
  };
  private readonly commitStaged: (firstSeq: number, bodies: readonly Uint8Array[]) => void;
  private readonly commitFold: (lastSeq: number, opsList: readonly (readonly LogOp[])[]) => void;
  private readonly purgeTxn: (maxRows: number) => number;

  constructor(
    private readonly db: Database.Database,
    private readonly options: WriterOptions = DEFAULT_WRITER_OPTIONS,
  ) {
    this.stmt = {
      insertEntry: db.prepare('INSERT INTO entries (region_id, idx, term, type, data, context) VALUES (?, ?, ?, ?, ?, ?)'),
      insertEntries: db.prepare(
        'INSERT INTO entries (region_id, idx, term, type, data, context) VALUES ' + new Array(MULTI_ROWS).fill('(?, ?, ?, ?, ?, ?)').join(', '),
      ),
      deleteFrom: db.prepare('DELETE FROM entries WHERE region_id = ? AND idx >= ?'),
      deleteAbove: db.prepare('DELETE FROM entries WHERE region_id = ? AND idx > ?'),
      deleteAll: db.prepare('DELETE FROM entries WHERE region_id = ?'),
      deleteRange: db.prepare('DELETE FROM entries WHERE region_id = ? AND idx >= ? AND idx < ?'),
      maxIdx: db.prepare('SELECT max(idx) FROM entries WHERE region_id = ?').pluck(),
      minIdx: db.prepare('SELECT min(idx) FROM entries WHERE region_id = ?').pluck(),
      upsertState: db.prepare(
        'INSERT OR REPLACE INTO raft_state (region_id, term, vote, commit_index, truncated_index, truncated_term, conf_state, removed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      deleteState: db.prepare('DELETE FROM raft_state WHERE region_id = ?'),
      insertStaging: db.prepare('INSERT INTO staging (seq, body) VALUES (?, ?)'),
      clearStaging: db.prepare('DELETE FROM staging WHERE seq <= ?'),
    };
    this.maxIdxStmt = this.stmt.maxIdx;
    this.states = loadRaftStates(db);
    for (const id of this.states.keys()) this.purgeCandidates.add(id);
    const rows = db.prepare('SELECT seq, body FROM staging ORDER BY seq').raw().all() as [number, Buffer][];
    for (const [seq, body] of rows) {
      this.staged.push({ seq, body });
      this.stagedBytes += body.length;
      this.validate(decodeBatch(body));
    }
    const last = rows.length > 0 ? rows[rows.length - 1]![0] : 0;
    this.nextSeq = last + 1;
    this.foldedThrough = rows.length > 0 ? rows[0]![0] - 1 : last;

    this.commitStaged = db.transaction((firstSeq: number, bodies: readonly Uint8Array[]) => {
      bodies.forEach((body, i) => this.stmt.insertStaging.run(firstSeq + i, body));
    });
    this.commitFold = db.transaction((lastSeq: number, opsList: readonly (readonly LogOp[])[]) => {
      for (const s of this.staged) this.applyOps(decodeBatch(s.body));
      for (const ops of opsList) this.applyOps(ops);
      this.flushPending();
      this.flushStates();
      this.stmt.clearStaging.run(lastSeq);
    });
    this.purgeTxn = db.transaction((maxRows: number) => {
      // Compactions still staged count too: fold them first.
      if (this.staged.length > 0) {
        for (const s of this.staged) this.applyOps(decodeBatch(s.body));
        this.flushPending();
        this.flushStates();
        this.stmt.clearStaging.run(this.staged[this.staged.length - 1]!.seq);
      }
      return this.purgeSteps(maxRows);
    });
  }

  /** stagedCount is the number of committed writes not yet folded. */
  get stagedCount(): number {
    return this.staged.length;
  }

  /**
   * commit durably writes one encoded batch. `ops` may be passed when the
   * caller already has them decoded (sync mode) to skip decoding on a fold.
   */
  commit(body: Uint8Array, ops?: readonly LogOp[]): CommitResult {
    return this.commitGroup([body], ops === undefined ? undefined : [ops])[0]!;
  }

  /**
   * commitGroup durably writes several batches, in order, in ONE transaction
   * with one fsync (the writer thread groups the writes queued behind a
   * slow fsync). Each keeps its own seq. If any batch is refused, nothing is
   * written; with more than one batch the writer is then poisoned (the
   * shadow bounds already include the earlier ones).
   */
  commitGroup(bodies: readonly Uint8Array[], opsList?: readonly (readonly LogOp[])[]): CommitResult[] {
    this.checkUsable();
    const decoded = bodies.map((b, i) => opsList?.[i] ?? decodeBatch(b));
    try {
      for (const ops of decoded) this.validate(ops);
    } catch (err) {
      if (bodies.length > 1) this.poisoned = err;
      throw err;
    }
    const firstSeq = this.nextSeq;
    const lastSeq = firstSeq + bodies.length - 1;
    let bytes = 0;
    for (const b of bodies) bytes += b.length;
    const fold = this.staged.length + bodies.length >= this.options.foldRows || this.stagedBytes + bytes >= this.options.foldBytes;
    try {
      if (fold) this.commitFold(lastSeq, decoded);
      // One row: SQLite's implicit transaction saves the BEGIN/COMMIT round.
      else if (bodies.length === 1) this.stmt.insertStaging.run(firstSeq, bodies[0]!);
      else this.commitStaged(firstSeq, bodies);
    } catch (err) {
      this.poisoned = err;
      throw err;
    }
    this.nextSeq = lastSeq + 1;
    this.commits++;
    if (fold) {
      this.staged = [];
      this.stagedBytes = 0;
      this.foldedThrough = lastSeq;
    } else {
      bodies.forEach((body, i) => this.staged.push({ seq: firstSeq + i, body }));
      this.stagedBytes += bytes;
    }
    return bodies.map((_, i) => ({ seq: firstSeq + i, foldedThrough: this.foldedThrough, commits: this.commits }));
  }

  /** foldAll replays every staged write into the tables now (recovery, close). */
  foldAll(): CommitResult {
    this.checkUsable();
    if (this.staged.length === 0) return { seq: this.nextSeq - 1, foldedThrough: this.foldedThrough, commits: this.commits };
    const seq = this.staged[this.staged.length - 1]!.seq;
    try {
      this.commitFold(seq, []);
    } catch (err) {
      this.poisoned = err;
      throw err;
    }
    this.staged = [];
    this.stagedBytes = 0;
    this.foldedThrough = seq;
    return { seq, foldedThrough: seq, commits: this.commits };
  }

  /**
   * purge physically deletes at most about `maxRows` entries that compaction
   * made unreachable (and the logs of removed Regions), in one transaction,
   * then gives at most VACUUM_STEP_PAGES free pages back to the file system
   * when more are free than the next writes need (vacuum.ts; a second short
   * transaction). It returns the number of rows deleted; 0 means nothing is
   * left to purge (in the folded tables: staged compactions count after
   * their fold).
   */
  purge(maxRows: number): { deleted: number; foldedThrough: number; reclaimedPages: number } {
    this.checkUsable();
    assert(Number.isInteger(maxRows) && maxRows > 0, `purge maxRows must be a positive integer, got ${maxRows}`);
    let deleted = 0;
    let reclaimedPages = 0;
    try {
      if (this.purgeCandidates.size > 0 || this.staged.length > 0) deleted = this.purgeTxn(maxRows);
      if (this.staged.length > 0) {
        this.foldedThrough = this.staged[this.staged.length - 1]!.seq;
        this.staged = [];
        this.stagedBytes = 0;
      }
      reclaimedPages = vacuumStep(this.db);
    } catch (err) {
      this.poisoned = err;
      throw err;
    }
    return { deleted, foldedThrough: this.foldedThrough, reclaimedPages };
  }

  /**
   * validate checks a batch against the shadow bounds and, when it is
   * acceptable, advances them. It throws (leaving the shadow unchanged) on an
   * append that leaves a gap or reaches at or below the truncated index, and
   * on a compaction past the last index.
   */
  private validate(ops: readonly LogOp[]): void {
    const next = new Map<number, { truncated: number; last: number } | undefined>();
    const cur = (id: number) => {
      if (next.has(id)) return next.get(id) ?? { truncated: 0, last: 0 };
      return this.shadowOf(id);
    };
    for (const op of ops) {
      const id = op.regionId;
      const s = { ...cur(id) };
      switch (op.kind) {
        case 'append': {
          const first = op.entries[0]!.index;
          if (first <= s.truncated) throw new InvalidBatchError(`region ${id}: append at ${first} at or below truncated index ${s.truncated}`);
          if (first > s.last + 1) throw new InvalidBatchError(`region ${id}: append at ${first} leaves a gap after last index ${s.last}`);
          s.last = op.entries[op.entries.length - 1]!.index;
          break;
        }
        case 'compact':
          if (op.truncatedIndex > s.truncated) {
            if (op.truncatedIndex > s.last) throw new InvalidBatchError(`region ${id}: compact to ${op.truncatedIndex} beyond last index ${s.last}`);
            s.truncated = op.truncatedIndex;
          }
          break;
        case 'snapshot':
          s.truncated = op.index;
          s.last = op.index;
          break;
        case 'remove':
          next.set(id, undefined);
          continue;
        default:
          break;
      }
      next.set(id, s);
    }
    for (const [id, s] of next) {
      if (s === undefined) this.shadow.set(id, { truncated: 0, last: 0 });
      else this.shadow.set(id, s);
    }
  }

  private shadowOf(id: number): { truncated: number; last: number } {
    let s = this.shadow.get(id);
    if (s === undefined) {
      const st = this.states.get(id);
      if (st === undefined || st.removed) s = { truncated: 0, last: 0 };
      else {
        const max = (this.maxIdxStmt.get(id) as number | null) ?? 0;
        s = { truncated: st.truncatedIndex, last: Math.max(max, st.truncatedIndex) };
      }
      this.shadow.set(id, s);
    }
    return s;
  }

  private checkUsable(): void {
    if (this.poisoned !== undefined) {
      throw new Error(`log engine writer failed earlier and must be reopened: ${(this.poisoned as Error).message}`);
    }
  }

  private purgeSteps(maxRows: number): number {
    let budget = maxRows;
    let deleted = 0;
    for (const id of [...this.purgeCandidates]) {
      if (budget <= 0) break;
      const st = this.states.get(id);
      if (st === undefined) {
        this.purgeCandidates.delete(id);
        continue;
      }
      const target = st.removed ? Infinity : st.truncatedIndex;
      for (;;) {
        const min = this.stmt.minIdx.get(id) as number | null;
        if (min === null || min > target) {
          if (st.removed) {
            // Every entry is gone: the Region's row goes too.
            this.stmt.deleteState.run(id);
            this.states.delete(id);
            this.tableMax.delete(id);
          }
          this.purgeCandidates.delete(id);
          break;
        }
        if (budget <= 0) break;
        const hi = Math.min(target + 1, min + budget);
        const n = this.stmt.deleteRange.run(id, min, hi).changes;
        assert(n >= 1, `purge of region ${id} from ${min} deleted nothing`);
        deleted += n;
        budget -= n;
      }
    }
    return deleted;
  }

  private getTableMax(id: number): number {
    let m = this.tableMax.get(id);
    if (m === undefined) {
      m = (this.stmt.maxIdx.get(id) as number | null) ?? 0;
      this.tableMax.set(id, m);
    }
    return m;
  }

  private live(id: number): RaftStateRow {
    let st = this.states.get(id);
    if (st === undefined) {
      st = defaultRaftState();
      this.states.set(id, st);
      this.tableMax.set(id, this.getTableMax(id));
    } else if (st.removed) {
      // A removed Region comes back (a new peer of it on this store): drop
      // whatever purge has not deleted yet so no old entry shows through.
      this.stmt.deleteAll.run(id);
      Object.assign(st, defaultRaftState());
      this.tableMax.set(id, 0);
    }
    this.dirty.add(id);
    return st;
  }

  private applyOps(ops: readonly LogOp[]): void {
    for (const op of ops) {
      const id = op.regionId;
      switch (op.kind) {
        case 'append': {
          const st = this.live(id);
          const entries: Entry[] = op.entries;
          const first = entries[0]!.index;
          const viewLast = Math.max(this.lastOf(id), st.truncatedIndex);
          assert(first > st.truncatedIndex, `region ${id}: append at ${first} at or below truncated index ${st.truncatedIndex}`);
          assert(first <= viewLast + 1, `region ${id}: append at ${first} leaves a gap after last index ${viewLast}`);
          const p = this.pending.get(id);
          if (p !== undefined && first >= p.first) {
            p.entries.length = first - p.first;
            for (const e of entries) p.entries.push(e);
          } else {
            // The new run starts at or below the table's tail: drop what it replaces.
            this.pending.delete(id);
            if (this.getTableMax(id) >= first) {
              this.stmt.deleteFrom.run(id, first);
              this.tableMax.set(id, first - 1);
            }
            this.pending.set(id, { first, entries: entries.slice() });
          }
          break;
        }
        case 'hardState':
          this.live(id).hardState = { ...op.hardState };
          break;
        case 'confState':
          this.live(id).confState = op.confState;
          break;
        case 'compact': {
          const st = this.live(id);
          if (op.truncatedIndex <= st.truncatedIndex) break;
          const viewLast = Math.max(this.lastOf(id), st.truncatedIndex);
          assert(op.truncatedIndex <= viewLast, `region ${id}: compact to ${op.truncatedIndex} beyond last index ${viewLast}`);
          st.truncatedIndex = op.truncatedIndex;
          st.truncatedTerm = op.truncatedTerm;
          this.purgeCandidates.add(id);
          break;
        }
        case 'snapshot': {
          const st = this.live(id);
          this.flushPendingOf(id);
          const max = this.getTableMax(id);
          if (max > op.index) {
            this.stmt.deleteAbove.run(id, op.index);
            this.tableMax.set(id, op.index);
          }
          st.truncatedIndex = op.index;
          st.truncatedTerm = op.term;
          st.confState = op.confState;
          this.purgeCandidates.add(id);
          break;
        }
        case 'remove': {
          const st = this.states.get(id);
          if (st === undefined || st.removed) break;
          this.flushPendingOf(id);
          Object.assign(st, defaultRaftState());
          st.removed = true;
          this.dirty.add(id);
          this.purgeCandidates.add(id);
          break;
        }
      }
    }
  }

  /** lastOf is a Region's last index as the fold in progress sees it (pending run, else table). */
  private lastOf(id: number): number {
    const p = this.pending.get(id);
    return p !== undefined && p.entries.length > 0 ? p.first + p.entries.length - 1 : this.getTableMax(id);
  }

  /** flushPending inserts every pending run, Region by Region in key order. */
  private flushPending(): void {
    const ids = [...this.pending.keys()].sort((a, b) => a - b);
    for (const id of ids) this.flushPendingOf(id);
  }

  private flushPendingOf(id: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    const es = p.entries;
    if (es.length === 0) return;
    const args = this.multiArgs;
    let i = 0;
    for (; i + MULTI_ROWS <= es.length; i += MULTI_ROWS) {
      for (let j = 0; j < MULTI_ROWS; j++) {
        const e = es[i + j]!;
        const a = j * 6;
        args[a] = id;
        args[a + 1] = e.index;
        args[a + 2] = e.term;
        args[a + 3] = e.entryType;
        args[a + 4] = e.data;
        args[a + 5] = e.context ?? null;
      }
      this.stmt.insertEntries.run(args);
    }
    for (; i < es.length; i++) {
      const e = es[i]!;
      this.stmt.insertEntry.run(id, e.index, e.term, e.entryType, e.data, e.context ?? null);
    }
    this.tableMax.set(id, es[es.length - 1]!.index);
  }

  private flushStates(): void {
    for (const id of this.dirty) {
      const st = this.states.get(id);
      if (st === undefined) continue;
      const hs = st.hardState;
      this.stmt.upsertState.run(id, hs.term, hs.vote, hs.commit, st.truncatedIndex, st.truncatedTerm, encodeConfState(st.confState), st.removed ? 1 : 0);
    }
    this.dirty.clear();
  }
}
