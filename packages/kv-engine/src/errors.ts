// Same error names as @flotilla/log-engine's, so a host can treat both engines' open failures alike (match on err.name).
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
