import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { StorageCorruptError, StorageFormatError, StorageOpenError } from './errors';
import { checkIntegrity, type IntegrityCheck, type IntegrityReport } from './integrity';
import { CONVERT_MAX_LIVE_BYTES, ensureIncremental, requestIncremental } from './vacuum';

/** SQLITE_HEADER is the 16-byte magic every SQLite 3 database file starts with. */
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** Durability chooses the fsync policy: 'full' fsyncs every commit; 'relaxed' (synchronous=NORMAL) may lose the last commits on power loss, never tear one. */
export type Durability = 'full' | 'relaxed';

export interface OpenSpec {
  /** file is the database path; its directory is created when missing. */
  file: string;
  /** engine names the kind of database; a file of another kind is refused. */
  engine: string;
  /** formatVersion is what this code writes; a newer one on disk is refused. */
  formatVersion: number;
  /** schema creates every table of a new database (run in the creating transaction). */
  schema: string;
  durability: Durability;
  readonly?: boolean;
  /**
   * exclusive holds the database lock for the connection's lifetime
   * (locking_mode=EXCLUSIVE): no shared-memory lock traffic per transaction,
   * and no second process can open the file. Only for single-connection use.
   */
  exclusive?: boolean;
  /**
   * check: the integrity check of an existing file (see integrity.ts);
   * false skips it, for a second connection to a file already checked.
   */
  check: IntegrityCheck | false;
  /** onChecked receives what the check did (the engines keep it for their host to log). */
  onChecked?: (report: IntegrityReport) => void;
  /**
   * migrate upgrades an existing file of an older format version in place
   * (in one transaction with the version bump, before the integrity check);
   * without it an older file is refused.
   */
  migrate?: (db: Database.Database, fromVersion: number) => void;
  /**
   * convertMaxLiveBytes: an existing file without auto-vacuum is rewritten
   * (VACUUM) on open to turn it on when its live pages total at most this
   * (default CONVERT_MAX_LIVE_BYTES; 0 never converts). Only on the checking
   * connection (check !== false). See vacuum.ts.
   */
  convertMaxLiveBytes?: number;
}

/**
 * openDatabase opens (or creates) a WAL-mode SQLite database and checks that
 * it is a `spec.engine` database of a format this code understands. Every
 * expected failure is a typed error naming the path: StorageOpenError for the
 * environment, StorageFormatError for the file's content (StorageCorruptError
 * when the integrity check finds damage). A file that fails the checks is
 * left untouched.
 */
export function openDatabase(spec: OpenSpec): Database.Database {
  const file = path.resolve(spec.file);
  const dir = path.dirname(file);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new StorageOpenError(dir, `cannot create the database directory: ${(err as Error).message}`, err);
  }
  let existing = false;
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) throw new StorageOpenError(file, 'path is a directory, expected a database file');
    existing = st.size > 0;
  } catch (err) {
    if (err instanceof StorageOpenError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new StorageOpenError(file, `cannot stat the database file: ${(err as Error).message}`, err);
    }
  }
  if (existing) checkHeader(file);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    if (existing) fs.accessSync(file, fs.constants.R_OK | fs.constants.W_OK);
  } catch (err) {
    throw new StorageOpenError(file, `database is not writable: ${(err as Error).message}`, err);
  }

  let db: Database.Database;
  try {
    db = new Database(file, { readonly: spec.readonly ?? false });
  } catch (err) {
    throw new StorageOpenError(file, `cannot open the database: ${(err as Error).message}`, err);
  }
  try {
    // Fail fast at open when another process holds the database.
    db.pragma('busy_timeout = 500');
    if (spec.exclusive) db.pragma('locking_mode = EXCLUSIVE');
    // A new file only (an existing one is not written before its checks), and
    // before journal_mode: switching a new file to WAL writes its first page,
    // and auto-vacuum can be turned on without a VACUUM only before that.
    if (!spec.readonly && !existing) requestIncremental(db);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${spec.durability === 'full' ? 'FULL' : 'NORMAL'}`);
    // The WAL file is reused after each checkpoint; keep it from growing past 64 MiB.
    db.pragma('journal_size_limit = 67108864');
    db.pragma('cache_size = -32768');
    const created = checkOrCreateMeta(db, file, spec);
    if (created) spec.onChecked?.({ file, mode: 'new', bytes: 0, ms: 0 });
    else if (spec.check !== false) {
      const report = checkIntegrity(db, file, spec.schema, spec.check);
      // Only a file the check trusts is rewritten.
      if (!spec.readonly) report.autoVacuum = ensureIncremental(db, spec.convertMaxLiveBytes ?? CONVERT_MAX_LIVE_BYTES);
      spec.onChecked?.(report);
    }
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    db.close();
    if (err instanceof StorageFormatError || err instanceof StorageOpenError) throw err;
    const code = (err as { code?: string }).code ?? '';
    if (code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB')) {
      throw new StorageCorruptError(file, [`${code}: ${(err as Error).message}`], err);
    }
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      throw new StorageOpenError(file, `database is locked, probably by another process using it: ${(err as Error).message}`, err);
    }
    if (code === 'SQLITE_FULL') throw new StorageOpenError(file, `cannot use the database: the disk is full (${(err as Error).message})`, err);
    if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_IOERR')) {
      throw new StorageOpenError(file, `cannot use the database: ${(err as Error).message}`, err);
    }
    throw err;
  }
  return db;
}

function checkHeader(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(16);
    const n = fs.readSync(fd, head, 0, 16, 0);
    if (n < 16 || !head.equals(SQLITE_HEADER)) {
      throw new StorageFormatError(file, 'not a SQLite database (bad file header); refusing to open or overwrite it');
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** checkOrCreateMeta creates a new database's tables (true) or checks an existing one's engine and version rows (false). */
function checkOrCreateMeta(db: Database.Database, file: string, spec: OpenSpec): boolean {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
  if (tables.length === 0) {
    if (spec.readonly) throw new StorageFormatError(file, 'database is empty');
    db.transaction(() => {
      db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID');
      db.exec(spec.schema);
      const put = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
      put.run('engine', spec.engine);
      put.run('format_version', spec.formatVersion);
    })();
    return true;
  }
  if (!tables.includes('meta')) {
    throw new StorageFormatError(file, `not a ${spec.engine} database (no meta table)`);
  }
  const rows = db.prepare('SELECT key, value FROM meta').all() as { key: string; value: unknown }[];
  const meta = new Map(rows.map((r) => [r.key, r.value]));
  if (meta.get('engine') !== spec.engine) {
    throw new StorageFormatError(file, `not a ${spec.engine} database (engine is ${JSON.stringify(meta.get('engine') ?? null)})`);
  }
  const version = meta.get('format_version');
  if (typeof version !== 'number' || !Number.isInteger(version)) {
    throw new StorageFormatError(file, `format version is missing or malformed (${JSON.stringify(version ?? null)})`);
  }
  if (version > spec.formatVersion) {
    throw new StorageFormatError(
      file,
      `format version ${version} is newer than this code supports (${spec.formatVersion}); upgrade the software`,
    );
  }
  if (version < spec.formatVersion) {
    const migrate = spec.migrate;
    if (migrate === undefined || spec.readonly) throw new StorageFormatError(file, `format version ${version} is older than ${spec.formatVersion} and no migration exists`);
    db.transaction(() => {
      migrate(db, version);
      db.prepare("UPDATE meta SET value = ? WHERE key = 'format_version'").run(spec.formatVersion);
    })();
  }
  return false;
}
