// The KV engine opens its database exactly as the log engine does (WAL,
// durability, format/version checks, typed errors naming the path), so it
// reuses the log engine's helper rather than keeping a copy.
export { openDatabase, DEFAULT_INTEGRITY_FULL_MAX_BYTES } from '@flotilla/log-engine';
export type { Durability, OpenSpec, IntegrityReport } from '@flotilla/log-engine';
