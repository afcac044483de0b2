import fs from 'node:fs';
import path from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Entry, EntryType, Snapshot } from '@flotilla/raft-core';
import { CompactedError, UnavailableError } from '@flotilla/raft-core';
import { encodeBatch } from './batch-codec';
import { assert, asStorageFault, EngineClosedError, InvalidBatchError, StorageFaultError, WriteBackpressureError } from './errors';
import { DEFAULT_INTEGRITY_FULL_MAX_BYTES, type IntegrityReport } from './integrity';
import type { LogBatch, LogOp } from './log-batch';
import { copyConfState, entrySize } from './log-batch';
import { DEFAULT_WRITER_OPTIONS, LogWriter, loadRaftStates } from './log-writer';
import type { CommitResult, WriterOptions } from './log-writer';
import { evictFront, RegionView } from './region-view';
import { RegionLogStorage, type RegionLogReader, type RegionRaftState } from './region-log-storage';
import { LOG_ENGINE_NAME, LOG_FORMAT_VERSION, LOG_SCHEMA } from './schema';
import { openDatabase } from './sqlite-open';
import type { Durability } from './sqlite-open';
import { pageCounts } from './vacuum';
import type { WorkerConfig, WorkerReply, WorkerRequest } from './write-worker';

export interface LogEngineOptions {
  /** path of the database file; its directory is created when missing. */
  path: string;
  /** durability: 'full' (default) fsyncs every write; 'relaxed' is synchronous=NORMAL (see docs/storage.md). */
  durability?: Durability;
  /**
   * writer: 'sync' (default) commits on the calling thread inside write();
   * 'worker' commits on a writer thread: writeAsync/purgeAsync return at
   * once, while write()/purge() block the calling thread until the writer
   * thread has done them (and, being in order, everything posted before).
   */
  writer?: 'sync' | 'worker';
  /** cacheBytes: global budget of the recent-entry cache (default 64 MiB). */
  cacheBytes?: number;
  /** foldRows / foldBytes: when staged writes are folded into the entries table. */
  foldRows?: number;
  foldBytes?: number;
  /** integrityFullMaxBytes: up to this size an existing database gets a whole quick_check on open, past it a bounded one (see integrity.ts). */
  integrityFullMaxBytes?: number;
}

/** EngineStats counts where reads were served from (for tests and metrics). */
export interface EngineStats {
  cacheBytes: number;
  cacheBudgetBytes: number;
  entriesFromCache: number;
  entriesFromSqlite: number;
  writes: number;
  /** commits: write transactions; fewer than writes when the writer thread grouped them. */
  commits: number;
  stagedWrites: number;
}

/** DiskUsage is what the database file holds: its pages as SQLite counts them, and the files' sizes. */
export interface DiskUsage {
  pageSize: number;
  /** pages: the database's size in pages as of the last commit (the main file reaches it at the next checkpoint). */
  pages: number;
  /** freePages: pages on the free list (reused by the next writes; vacuum.ts gives the surplus back). */
  freePages: number;
  fileBytes: number;
  walBytes: number;
}

/** SQL_READ_CHUNK is how many rows one SQLite read fetches at a time. */
const SQL_READ_CHUNK = 256;

/**
 * MAX_PENDING_WRITES bounds the async writes in flight to the writer thread;
 * one more is refused with a WriteBackpressureError (nothing written).
 */
export const MAX_PENDING_WRITES = 1024;

/**
 * SYNC_WAIT_MS bounds how long a blocking write()/purge() in worker mode
 * waits for the writer thread; past it the engine is poisoned (a writer
 * thread that does not answer for two minutes is a failing device).
 */
const SYNC_WAIT_MS = 120_000;

type RequestResult = { seq: number; deleted: number; foldedThrough: number };

interface Pending {
  id: number;
  ops: LogOp[] | undefined;
  resolve: (r: { seq: number; deleted: number; foldedThrough: number }) => void;
  reject: (e: Error) => void;
}

/**
 * LogEngine is a store's raft log: one SQLite database (WAL) holding the
 * logs and raft states of all its Regions. write() commits a LogBatch — any
 * number of Regions' changes — in one transaction with one fsync. Reads are
 * served from an in-memory cache of recent entries under a global byte
 * budget, falling back to SQLite. See README.md for the module map and
 * docs/storage.md for the on-disk format.
 */
export class LogEngine implements RegionLogReader {
  private readonly views = new Map<number, RegionView>();
  private readonly pinned = new Set<RegionView>();
  private cacheBytes = 0;
  /** lastFoldedThrough: the fold point the pins were last checked against. */
  private lastFoldedThrough = -1;
  private readonly cacheBudget: number;
  private readonly writer: LogWriter | undefined;
  private worker: Worker | undefined;
  /** replies: the writer thread answers here; signal counts its answers, so write() can block on it (Atomics.wait). */
  private replies: MessagePort | undefined;
  private signal: Int32Array | undefined;
  private readonly pending: Pending[] = [];
  private nextRequestId = 1;
  /** tail settles after the last request sent to the writer thread. */
  private tail: Promise<unknown> = Promise.resolve();
  private failed: Error | undefined;
  private closed = false;
  private counters = { entriesFromCache: 0, entriesFromSqlite: 0, writes: 0, commits: 0 };
  private readonly selectRange: Database.Statement;
  private readonly selectTerm: Database.Statement;
  /** integrity: what the check on opening did (undefined only while constructing). */
  integrity: IntegrityReport | undefined;

  private constructor(
    private readonly db: Database.Database,
    readonly options: Required<Omit<LogEngineOptions, 'foldRows' | 'foldBytes' | 'integrityFullMaxBytes'>> & { writerOptions: WriterOptions },
  ) {
    this.cacheBudget = options.cacheBytes;
    // Recovery: fold whatever a crash left staged, then build the views.
    const recovery = new LogWriter(db, options.writerOptions);
    recovery.foldAll();
    const maxIdx = db.prepare('SELECT max(idx) FROM entries WHERE region_id = ?').pluck();
    for (const [id, st] of loadRaftStates(db)) {
      if (st.removed) continue;
      const v = new RegionView(id);
      v.hardState = st.hardState;
      v.confState = st.confState;
      v.truncatedIndex = st.truncatedIndex;
      v.truncatedTerm = st.truncatedTerm;
      v.lastIndex = Math.max((maxIdx.get(id) as number | null) ?? 0, st.truncatedIndex);
      v.cacheFirst = v.lastIndex + 1;
      this.views.set(id, v);
    }
    this.selectRange = db.prepare('SELECT idx, term, type, data, context FROM entries WHERE region_id = ? AND idx >= ? AND idx < ? ORDER BY idx').raw();
    this.selectTerm = db.prepare('SELECT term FROM entries WHERE region_id = ? AND idx = ?').pluck();
    if (options.writer === 'sync') {
      this.writer = recovery;
    } else {
      this.writer = undefined;
      this.startWorker();
    }
  }

  /**
   * open opens or creates the engine's database; bad files give
   * StorageFormatError (StorageCorruptError when the integrity check finds
   * damage) / StorageOpenError, and a fault while recovering staged writes
   * a StorageFaultError.
   */
  static open(options: LogEngineOptions): LogEngine {
    const durability = options.durability ?? 'full';
    const file = path.resolve(options.path);
    const writer = options.writer ?? 'sync';
    // One connection in sync mode: hold the lock (saves lock traffic on every commit).
    const exclusive = writer === 'sync';
    let integrity: IntegrityReport | undefined;
    const check = { fullMaxBytes: options.integrityFullMaxBytes ?? DEFAULT_INTEGRITY_FULL_MAX_BYTES, bulkTables: ['entries'] };
    const db = openDatabase({ file, engine: LOG_ENGINE_NAME, formatVersion: LOG_FORMAT_VERSION, schema: LOG_SCHEMA, durability, exclusive, check, onChecked: (r) => (integrity = r) });
    try {
      const engine = new LogEngine(db, {
        path: file,
        durability,
        writer,
        cacheBytes: options.cacheBytes ?? 64 * 1024 * 1024,
        writerOptions: {
          foldRows: options.foldRows ?? DEFAULT_WRITER_OPTIONS.foldRows,
          foldBytes: options.foldBytes ?? DEFAULT_WRITER_OPTIONS.foldBytes,
        },
      });
      engine.integrity = integrity;
      return engine;
    } catch (err) {
      db.close();
      throw asStorageFault(err, file, 'log engine recovery');
    }
  }

  // ---------------------------------------------------------------- writes

  /**
   * write durably commits a batch (one transaction, one fsync) on the calling
   * thread and then updates the in-memory views. Only in writer:'sync' mode.
   * A failed write poisons the engine (reopen it): nothing of the batch is
   * on disk, and a full disk or a damaged file throws StorageFaultError.
   */
  write(batch: LogBatch): void {
    this.checkOpen('write');
    if (this.writer === undefined) {
      if (batch.isEmpty) return;
      const ops = batch.ops.slice();
      this.requestBlocking({ type: 'write', id: 0, body: encodeBatch(ops) }, ops);
      return;
    }
    if (batch.isEmpty) return;
    let r: CommitResult;
    try {
      r = this.writer.commit(encodeBatch(batch.ops), batch.ops);
    } catch (err) {
      if (err instanceof InvalidBatchError) throw err;
      this.failed = err as Error;
      throw asStorageFault(err, this.options.path, 'log write');
    }
    this.counters.commits = r.commits;
    this.applyToViews(batch.ops, r.seq, r.foldedThrough);
  }

  /**
   * writeAsync commits a batch; the promise resolves once it is durable and
   * visible to reads. With writer:'worker' the SQLite work and fsync run on
   * the writer thread while this thread goes on; writes complete in order.
   * The batch may be cleared and reused as soon as this returns.
   */
  writeAsync(batch: LogBatch): Promise<void> {
    if (this.worker === undefined) {
      try {
        this.write(batch);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    try {
      this.checkOpen('writeAsync');
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (batch.isEmpty) return this.tail.then(() => undefined);
    if (this.pending.length >= MAX_PENDING_WRITES) return Promise.reject(new WriteBackpressureError(this.pending.length, MAX_PENDING_WRITES));
    const ops = batch.ops.slice();
    return this.request({ type: 'write', id: 0, body: encodeBatch(ops) }, ops).then(() => undefined);
  }

  /**
   * purge physically deletes up to about maxRows entries made unreachable by
   * compaction or Region removal, in one transaction; returns rows deleted
   * (0 = nothing left). Call it from the host's background tick.
   */
  purge(maxRows: number): number {
    this.checkOpen('purge');
    if (this.writer === undefined) {
      const res = this.requestBlocking({ type: 'purge', id: 0, maxRows }, undefined);
      this.unpinAll(res.foldedThrough);
      return res.deleted;
    }
    let r: { deleted: number; foldedThrough: number };
    try {
      r = this.writer.purge(maxRows);
    } catch (err) {
      this.failed = err as Error;
      throw asStorageFault(err, this.options.path, 'log purge');
    }
    this.unpinAll(r.foldedThrough);
    return r.deleted;
  }

  purgeAsync(maxRows: number): Promise<number> {
    if (this.worker === undefined) {
      try {
        return Promise.resolve(this.purge(maxRows));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    try {
      this.checkOpen('purgeAsync');
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.request({ type: 'purge', id: 0, maxRows }, undefined).then((r) => {
      this.unpinAll(r.foldedThrough);
      return r.deleted;
    });
  }

  /** close folds staged writes into the tables and closes the database (waits for writes in flight). */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.worker !== undefined) {
      const w = this.worker;
      if (this.failed === undefined) {
        try {
          await this.request({ type: 'close', id: 0 }, undefined);
        } catch {
          // The worker already failed; closing our side is all that is left.
        }
      }
      this.closed = true;
      await w.terminate();
      this.worker = undefined;
    } else {
      this.closed = true;
      try {
        if (this.failed === undefined) this.writer?.foldAll();
      } catch (err) {
        // Nothing is lost: the staged rows stay, and the next open folds them.
        this.db.close();
        throw asStorageFault(err, this.options.path, 'log fold on close');
      }
    }
    this.db.close();
  }

  // ----------------------------------------------------------------- reads

  /** regionIds lists the Regions that have raft state in this engine. */
  regionIds(): number[] {
    return [...this.views.keys()].sort((a, b) => a - b);
  }

  hasRegion(regionId: number): boolean {
    return this.views.has(regionId);
  }

  /** raftState returns a Region's durable raft state (zero values for an unknown Region). */
  raftState(regionId: number): RegionRaftState {
    const v = this.views.get(regionId) ?? new RegionView(regionId);
    return {
      hardState: { ...v.hardState },
      confState: copyConfState(v.confState),
      truncatedIndex: v.truncatedIndex,
      truncatedTerm: v.truncatedTerm,
      firstIndex: v.firstIndex,
      lastIndex: v.lastIndex,
    };
  }

  firstIndex(regionId: number): number {
    return (this.views.get(regionId)?.truncatedIndex ?? 0) + 1;
  }

  lastIndex(regionId: number): number {
    return this.views.get(regionId)?.lastIndex ?? 0;
  }

  /**
   * entries returns [lo, hi) of a Region's log, limited to maxSize bytes
   * (at least one entry when lo < hi). Throws CompactedError below
   * firstIndex and UnavailableError past lastIndex+1 (raft's Storage contract).
   */
  entries(regionId: number, lo: number, hi: number, maxSize?: number): Entry[] {
    this.checkOpen('entries');
    const v = this.views.get(regionId);
    const truncated = v?.truncatedIndex ?? 0;
    const last = v?.lastIndex ?? 0;
    if (lo <= truncated) throw new CompactedError(`region ${regionId}: entries from ${lo}, log starts at ${truncated + 1}`);
    if (hi > last + 1) throw new UnavailableError(`region ${regionId}: entries up to ${hi - 1}, last index is ${last}`);
    assert(lo <= hi, `region ${regionId}: entries range ${lo} > ${hi}`);
    if (lo === hi || v === undefined) return [];
    const limit = maxSize ?? Infinity;
    const out: Entry[] = [];
    let size = 0;
    if (lo < v.cacheFirst) {
      const sqlHi = Math.min(hi, v.cacheFirst);
      // Chunked reads with .all(): far cheaper per row than a row iterator,
      // and a size-limited read stops after the chunk that crossed the limit.
      let next = lo;
      while (next < sqlHi) {
        const chunkHi = Math.min(sqlHi, next + SQL_READ_CHUNK);
        const rows = this.readRange(regionId, next, chunkHi);
        assert(rows.length === chunkHi - next, `region ${regionId}: log has a hole in [${next}, ${chunkHi}) (${rows.length} rows)`);
        for (const [idx, term, type, data, context] of rows) {
          assert(idx === next, `region ${regionId}: log has a hole at ${next} (found ${idx})`);
          next++;
          const e: Entry = { entryType: type as EntryType, term, index: idx, data };
          if (context !== null) e.context = context;
          size += entrySize(e);
          if (out.length > 0 && size > limit) {
            this.counters.entriesFromSqlite += out.length;
            return out;
          }
          out.push(e);
        }
      }
      this.counters.entriesFromSqlite += out.length;
      if (sqlHi === hi) return out;
    }
    const cache = v.cache;
    const from = Math.max(lo, v.cacheFirst) - v.cacheFirst;
    const to = hi - v.cacheFirst;
    if (limit === Infinity) {
      this.counters.entriesFromCache += to - from;
      if (out.length === 0) return cache.slice(from, to);
      for (let i = from; i < to; i++) out.push(cache[i]!);
      return out;
    }
    let i = from;
    for (; i < to; i++) {
      const e = cache[i]!;
      size += entrySize(e);
      if (out.length > 0 && size > limit) break;
      out.push(e);
    }
    this.counters.entriesFromCache += i - from;
    return out;
  }

  /** term returns the term of entry `index` (truncatedIndex included: the dummy entry). */
  term(regionId: number, index: number): number {
    this.checkOpen('term');
    const v = this.views.get(regionId);
    const truncated = v?.truncatedIndex ?? 0;
    const last = v?.lastIndex ?? 0;
    if (index < truncated) throw new CompactedError(`region ${regionId}: term of ${index}, log starts at ${truncated + 1}`);
    if (index > last) throw new UnavailableError(`region ${regionId}: term of ${index}, last index is ${last}`);
    if (v === undefined) return 0;
    if (index === truncated) return v.truncatedTerm;
    const cached = v.cachedTerm(index);
    if (cached !== undefined) return cached;
    let t: number | undefined;
    try {
      t = this.selectTerm.get(regionId, index) as number | undefined;
    } catch (err) {
      throw asStorageFault(err, this.options.path, 'log read');
    }
    assert(t !== undefined, `region ${regionId}: entry ${index} missing from the log`);
    this.counters.entriesFromSqlite++;
    return t;
  }

  /** storage returns raft-core's Storage view of one Region (see RegionLogStorage). */
  storage(regionId: number, snapshotProvider?: (requestIndex: number, to: number) => Snapshot): RegionLogStorage {
    return new RegionLogStorage(this, regionId, snapshotProvider);
  }

  /** diskUsage reports the file's pages (see DiskUsage) and the main and WAL files' sizes on disk. */
  diskUsage(): DiskUsage {
    this.checkOpen('diskUsage');
    const c = pageCounts(this.db);
    const bytes = (f: string) => {
      try {
        return fs.statSync(f).size;
      } catch {
        return 0;
      }
    };
    return { pageSize: c.pageSize, pages: c.pages, freePages: c.free, fileBytes: bytes(this.options.path), walBytes: bytes(`${this.options.path}-wal`) };
  }

  stats(): EngineStats {
    return {
      cacheBytes: this.cacheBytes,
      cacheBudgetBytes: this.cacheBudget,
      entriesFromCache: this.counters.entriesFromCache,
      entriesFromSqlite: this.counters.entriesFromSqlite,
      writes: this.counters.writes,
      commits: this.counters.commits,
      stagedWrites: this.writer?.stagedCount ?? -1,
    };
  }

  // -------------------------------------------------------------- internals

  private checkOpen(what: string): void {
    if (this.closed) throw new EngineClosedError(`log engine ${what}`);
    if (this.failed === undefined) return;
    const fault = asStorageFault(this.failed, this.options.path, 'an earlier log write');
    if (fault instanceof StorageFaultError) {
      throw new StorageFaultError(fault.path, fault.kind, fault.code, `log engine ${what} (the engine must be reopened after an earlier failed write)`, fault);
    }
    throw new Error(`log engine failed earlier and must be reopened: ${this.failed.message}`);
  }

  private readRange(regionId: number, lo: number, hi: number): [number, number, number, Buffer, Buffer | null][] {
    try {
      return this.selectRange.all(regionId, lo, hi) as [number, number, number, Buffer, Buffer | null][];
    } catch (err) {
      throw asStorageFault(err, this.options.path, 'log read');
    }
  }

  private applyToViews(ops: readonly LogOp[], seq: number, foldedThrough: number): void {
    this.counters.writes++;
    for (const op of ops) {
      const id = op.regionId;
      switch (op.kind) {
        case 'append': {
          const v = this.view(id);
          this.cacheBytes += v.append(op.entries, seq);
          this.pinned.add(v);
          // Keep the views map in least-recently-appended order for eviction.
          this.views.delete(id);
          this.views.set(id, v);
          break;
        }
        case 'hardState':
          this.view(id).hardState = { ...op.hardState };
          break;
        case 'confState':
          this.view(id).confState = op.confState;
          break;
        case 'compact':
          this.cacheBytes += this.view(id).compact(op.truncatedIndex, op.truncatedTerm);
          break;
        case 'snapshot':
          this.cacheBytes += this.view(id).applySnapshot(op.index, op.term, op.confState);
          break;
        case 'remove': {
          const v = this.views.get(id);
          if (v !== undefined) {
            this.cacheBytes -= v.cacheBytes;
            this.views.delete(id);
            this.pinned.delete(v);
          }
          break;
        }
      }
    }
    this.unpinAll(foldedThrough);
  }

  private unpinAll(foldedThrough: number): void {
    // Pins only go away when a fold happened: skip the walk otherwise.
    if (foldedThrough !== this.lastFoldedThrough) {
      this.lastFoldedThrough = foldedThrough;
      this.unpinWalk(foldedThrough);
    }
    if (this.cacheBytes > this.cacheBudget) this.evict();
  }

  private unpinWalk(foldedThrough: number): void {
    for (const v of this.pinned) {
      v.unpin(foldedThrough);
      if (v.pins.length === 0) this.pinned.delete(v);
    }
  }

  private view(regionId: number): RegionView {
    let v = this.views.get(regionId);
    if (v === undefined) {
      v = new RegionView(regionId);
      this.views.set(regionId, v);
    }
    return v;
  }

  /** evict frees cache down to 90% of the budget, least recently appended Regions first. */
  private evict(): void {
    let need = this.cacheBytes - Math.floor(this.cacheBudget * 0.9);
    for (const v of this.views.values()) {
      if (need <= 0) break;
      if (v.cache.length === 0) continue;
      const freed = evictFront(v, need);
      this.cacheBytes -= freed;
      need -= freed;
    }
  }

  private startWorker(): void {
    const config: WorkerConfig = { file: this.options.path, durability: this.options.durability, writerOptions: this.options.writerOptions };
    const entry = new URL('./write-worker' + (import.meta.url.endsWith('.ts') ? '.ts' : '.js'), import.meta.url).href;
    const { port1, port2 } = new MessageChannel();
    const signal = new Int32Array(new SharedArrayBuffer(4));
    const w = new Worker(new URL('./worker-bootstrap.mjs', import.meta.url), { workerData: { entry, config, replies: port2, signal }, transferList: [port2], execArgv: workerExecArgv() });
    w.unref();
    port1.on('message', (reply: WorkerReply) => this.onReply(reply));
    port1.unref();
    w.on('error', (err) => this.failAll(err));
    w.on('exit', (code) => {
      if (!this.closed) this.failAll(new Error(`log engine writer thread exited with code ${code}`));
    });
    this.worker = w;
    this.replies = port1;
    this.signal = signal;
  }

  private request(req: WorkerRequest, ops: LogOp[] | undefined): Promise<RequestResult> {
    const promise = new Promise<RequestResult>((resolve, reject) => this.post(req, ops, resolve, reject));
    this.tail = promise.catch(() => undefined);
    return promise;
  }

  private post(req: WorkerRequest, ops: LogOp[] | undefined, resolve: (r: RequestResult) => void, reject: (e: Error) => void): void {
    const id = this.nextRequestId++;
    req.id = id;
    this.pending.push({ id, ops, resolve, reject });
    if (this.pending.length === 1) this.worker!.ref();
    if (req.type === 'write') this.worker!.postMessage(req, [req.body.buffer as ArrayBuffer]);
    else this.worker!.postMessage(req);
  }

  /**
   * requestBlocking posts a request and blocks this thread until the writer
   * thread answered it: the replies of earlier requests are handled on the
   * way (their promises settle as usual), so order is kept. It throws what
   * the request failed with. Only for the rare writes whose caller needs the
   * result before it goes on (a split's new Regions, start-up, close).
   */
  private requestBlocking(req: WorkerRequest, ops: LogOp[] | undefined): RequestResult {
    if (this.pending.length >= MAX_PENDING_WRITES) throw new WriteBackpressureError(this.pending.length, MAX_PENDING_WRITES);
    let result: RequestResult | undefined;
    let error: Error | undefined;
    this.post(req, ops, (r) => (result = r), (e) => (error = e));
    const port = this.replies!;
    const signal = this.signal!;
    const deadline = Date.now() + SYNC_WAIT_MS;
    while (result === undefined && error === undefined) {
      const seen = Atomics.load(signal, 0);
      const m = receiveMessageOnPort(port);
      if (m !== undefined) {
        this.onReply(m.message as WorkerReply);
        continue;
      }
      if (Date.now() > deadline) {
        this.failAll(new StorageFaultError(this.options.path, 'io', 'ETIMEDOUT', `log write (the writer thread did not answer within ${SYNC_WAIT_MS} ms)`));
        continue;
      }
      Atomics.wait(signal, 0, seen, 100);
    }
    if (error !== undefined) throw error;
    return result!;
  }

  private onReply(reply: WorkerReply): void {
    if (reply.type === 'ready') return;
    if (reply.type === 'fatal') {
      this.failAll(Object.assign(new Error(reply.message), { name: reply.name }));
      return;
    }
    // After a failure every pending request was already rejected.
    if (this.failed !== undefined) return;
    const p = this.pending.shift();
    assert(p !== undefined && p.id === reply.id, `writer thread replied to request ${reply.id} out of order`);
    if (this.pending.length === 0) this.worker?.unref();
    if (reply.type === 'failed') {
      const err = Object.assign(new Error(`log engine write failed: ${reply.message}`), reply.code === undefined ? {} : { code: reply.code });
      err.name = reply.name;
      const fault = asStorageFault(err, this.options.path, 'log write (writer thread)');
      this.failAll(fault instanceof Error ? fault : err, p);
      return;
    }
    if (reply.commits >= 0) this.counters.commits = reply.commits;
    if (p.ops !== undefined) this.applyToViews(p.ops, reply.seq, reply.foldedThrough);
    p.resolve({ seq: reply.seq, deleted: reply.deleted, foldedThrough: reply.foldedThrough });
  }

  private failAll(err: Error, first?: Pending): void {
    if (this.failed === undefined) this.failed = err;
    first?.reject(err);
    for (const p of this.pending.splice(0)) p.reject(err);
  }
}

/**
 * workerExecArgv is the process's node flags for the writer thread, less
 * --input-type: a worker inherits execArgv, and a process started with
 * `node --input-type=module -e …` would hand the thread a flag it refuses
 * (the thread then never starts, and a blocking write would wait for it).
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--input-type=')) continue;
    if (a === '--input-type') {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}
