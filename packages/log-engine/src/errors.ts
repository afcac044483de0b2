/**
 * StorageFormatError: the file at `path` is not a database this engine can
 * open — not SQLite at all, corrupted, another engine's file, or written by a
 * newer format version. Opening never rewrites such a file.
 */
export class StorageFormatError extends Error {
  constructor(
    readonly path: string,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`${path}: ${message}`);
    this.name = 'StorageFormatError';
  }
}

/**
 * StorageOpenError: the database could not be created or opened for reasons
 * of the environment (directory not writable, path is a directory, ...),
 * not of the file's content.
 */
export class StorageOpenError extends Error {
  constructor(
    readonly path: string,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`${path}: ${message}`);
    this.name = 'StorageOpenError';
  }
}

/**
 * StorageCorruptError: the integrity check on opening found damage (or
 * SQLite reported corruption while opening). `problems` holds what the
 * check reported, at most a few lines. It is a StorageFormatError, so code
 * that refuses any bad file keeps working; the file is left untouched.
 */
export class StorageCorruptError extends StorageFormatError {
  constructor(
    path: string,
    readonly problems: readonly string[],
    cause?: unknown,
  ) {
    super(path, `database file is corrupted (${problems.slice(0, 3).join('; ')}${problems.length > 3 ? `; ${problems.length - 3} more` : ''})`, cause);
    this.name = 'StorageCorruptError';
  }
}

/**
 * StorageFaultKind sorts the failures of an open database that are the
 * disk's or the file's doing, not the caller's: 'disk-full' (SQLITE_FULL,
 * ENOSPC, EDQUOT), 'corrupt' (SQLITE_CORRUPT, SQLITE_NOTADB) and 'io'
 * (SQLITE_IOERR, EIO: the device failed a read, write or fsync).
 */
export type StorageFaultKind = 'disk-full' | 'corrupt' | 'io';

/**
 * StorageFaultError: a read or write of an open database failed for a
 * StorageFaultKind reason. `path` names the file, `code` is SQLite's (or
 * the OS's) code, `operation` what was being done. After a failed write
 * the engine is poisoned: nothing of that write is on disk, and the host
 * must reopen the engine (restart) before using it again.
 */
export class StorageFaultError extends Error {
  constructor(
    readonly path: string,
    readonly kind: StorageFaultKind,
    readonly code: string,
    readonly operation: string,
    override readonly cause?: unknown,
  ) {
    super(`${path}: ${operation} failed: ${FAULT_TEXT[kind]} (${code}${cause instanceof Error ? `: ${cause.message}` : ''})`);
    this.name = 'StorageFaultError';
  }
}

const FAULT_TEXT: Record<StorageFaultKind, string> = {
  'disk-full': 'the disk is full',
  corrupt: 'the database file is corrupted',
  io: 'the device reported an I/O error',
};

/**
 * storageFaultKind classifies an error thrown by SQLite or the file system
 * (looking through `cause`), or returns undefined for anything else: a
 * bug, an assertion, a bad argument. Only the undefined case may be a
 * programming error; the others are the environment's.
 */
export function storageFaultKind(err: unknown): StorageFaultKind | undefined {
  return classify(err)?.kind;
}

function classify(err: unknown): { kind: StorageFaultKind; code: string } | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof StorageFaultError) return { kind: e.kind, code: e.code };
    if (e instanceof StorageCorruptError) return { kind: 'corrupt', code: 'SQLITE_CORRUPT' };
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return { kind: 'disk-full', code };
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return { kind: 'corrupt', code };
    if (code.startsWith('SQLITE_IOERR') || code === 'EIO') return { kind: 'io', code };
  }
  return undefined;
}

/**
 * asStorageFault wraps err as a StorageFaultError of `path` when it is one
 * (storageFaultKind), and returns it unchanged otherwise, so a caller can
 * `throw asStorageFault(err, ...)` in a catch without hiding bugs.
 */
export function asStorageFault(err: unknown, path: string, operation: string): unknown {
  if (err instanceof StorageFaultError) return err;
  const c = classify(err);
  return c === undefined ? err : new StorageFaultError(path, c.kind, c.code, operation, err);
}

/**
 * InvalidBatchError: a write was refused before anything reached the disk
 * because it does not fit the log (an append leaving a gap or reaching below
 * the truncated index, a compaction past the last index). A host bug, but
 * one the engine survives: nothing of the batch was written.
 */
export class InvalidBatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidBatchError';
  }
}

/**
 * WriteBackpressureError: writeAsync refused a batch because `limit` writes
 * are already in flight to the writer thread. Nothing of the batch was
 * written; the caller waits for an earlier write to finish and retries (the
 * store never has more than one round's write in flight, so for it this
 * means a bug upstream, but a library caller can hit it under load).
 */
export class WriteBackpressureError extends Error {
  constructor(
    readonly inFlight: number,
    readonly limit: number,
  ) {
    super(`log engine: ${inFlight} writes already in flight (limit ${limit}); wait for one to finish and retry`);
    this.name = 'WriteBackpressureError';
  }
}

/** EngineClosedError: an operation reached an engine after close(). */
export class EngineClosedError extends Error {
  constructor(what: string) {
    super(`${what}: engine is closed`);
    this.name = 'EngineClosedError';
  }
}

/** assert throws on a broken invariant; it is never caught (TIGER_STYLE). */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
