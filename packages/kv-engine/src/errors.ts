// Open and format errors are the log engine's classes: a host can treat
// both engines' failures alike (instanceof works across them).
export { StorageFormatError, StorageCorruptError, StorageOpenError, StorageFaultError, EngineClosedError } from '@flotilla/log-engine';

/** assert: a broken invariant is a bug; it throws and is never caught. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
