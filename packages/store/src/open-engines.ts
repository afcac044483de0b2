import { dirname, join } from 'node:path';
import { LogEngine } from '@flotilla/log-engine';
import type { Logger } from '@flotilla/proto';
import type { StoreConfig } from './config';
import { KvEngineStateMachine } from './kv/kv-engine-state-machine';
import { asStoreStorageError } from './storage-fault';

/** Engines are a store's two databases: the raft log (raft.db) and the state machine (kv.db). */
export interface Engines {
  log: LogEngine;
  sm: KvEngineStateMachine;
}

/**
 * openEngines opens (or creates) raft.db and kv.db in dataDir. Each engine
 * checks an existing file on open (quick_check, whole up to
 * config.integrityCheckFullMaxBytes, bounded past it); a damaged file, or a
 * disk too full to open it, is a StoreStorageError naming the file and
 * saying what to do, and the store refuses to start with nothing changed.
 * Other open errors (a newer format, a file another process holds) pass
 * as the engines typed them.
 */
export async function openEngines(dataDir: string, config: StoreConfig, logger: Logger): Promise<Engines> {
  const logPath = join(dataDir, 'raft.db');
  const kvPath = join(dataDir, 'kv.db');
  const integrityFullMaxBytes = config.integrityCheckFullMaxBytes;
  let log: LogEngine;
  try {
    // The async write pipeline persists rounds on the engine's writer thread.
    log = LogEngine.open({ path: logPath, integrityFullMaxBytes, writer: config.writePipeline === 'async' ? 'worker' : 'sync' });
  } catch (e) {
    throw asStoreStorageError(e, undefined, dataDir, 'start') ?? e;
  }
  let sm: KvEngineStateMachine;
  try {
    sm = new KvEngineStateMachine(kvPath, (regionId, index) => log.term(regionId, index), { integrityFullMaxBytes });
  } catch (e) {
    await log.close();
    throw asStoreStorageError(e, undefined, dataDir, 'start') ?? e;
  }
  for (const r of [log.integrity, sm.engine.integrity]) {
    if (r !== undefined && r.mode !== 'new') logger.info({ file: r.file, mode: r.mode, bytes: r.bytes, ms: r.ms }, 'database checked on open');
  }
  return { log, sm };
}

/**
 * closeEngines closes both databases, the KV engine even when the log's
 * close fails. A storage failure while closing (the last fold on a full
 * disk) loses nothing acknowledged, so it is logged; anything else throws.
 */
export async function closeEngines(engines: Engines, logger: Logger): Promise<void> {
  const failures: unknown[] = [];
  try {
    await engines.log.close();
  } catch (e) {
    failures.push(e);
  }
  try {
    engines.sm.close();
  } catch (e) {
    failures.push(e);
  }
  for (const e of failures) {
    const f = asStoreStorageError(e, undefined, dirname(engines.log.options.path));
    if (f === undefined) throw e;
    logger.warn({ kind: f.kind, path: f.path, err: f.detail }, 'closing a database failed; nothing acknowledged is lost');
  }
}
