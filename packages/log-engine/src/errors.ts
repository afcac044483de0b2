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
