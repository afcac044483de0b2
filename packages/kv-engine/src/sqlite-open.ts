// The KV engine opens its database exactly as the log engine does (WAL,
// durability, format/version checks, typed errors naming the path), so it
// reuses the log engine's helper rather than keeping a copy.
// That includes incremental auto-vacuum (log-engine's vacuum.ts): set on a new
// file, turned on by one VACUUM on open when the live pages are small enough,
// and vacuumStep gives free pages back in bounded steps (KvEngine.reclaimSpace).
export { openDatabase, DEFAULT_INTEGRITY_FULL_MAX_BYTES, vacuumStep, VACUUM_STEP_PAGES } from '@flotilla/log-engine';
export type { Durability, OpenSpec, IntegrityReport } from '@flotilla/log-engine';
