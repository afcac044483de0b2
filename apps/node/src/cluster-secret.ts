import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '@flotilla/proto';
import { UsageError } from './args';

// cluster-secret.ts: the store-to-store secret of a `flotilla up` cluster.
// The first `up` on a data dir makes 32 random bytes (hex) and keeps them
// in <data-dir>/cluster-secret, readable by its owner only; every later
// `up` on the dir reads them back, so stores restarted by hand with the
// file's secret still talk to the others. Children get the secret in their
// environment (FLOTILLA_CLUSTER_SECRET), never on their command line.

export const CLUSTER_SECRET_FILE = 'cluster-secret';
/** MIN_SECRET_CHARS: shorter secrets are refused, on the command line and in the file. */
export const MIN_SECRET_CHARS = 16;

/** loadOrCreateClusterSecret returns the secret kept in dataDir, making and saving one (mode 0600) the first time. */
export function loadOrCreateClusterSecret(dataDir: string, logger: Logger): string {
  const path = join(dataDir, CLUSTER_SECRET_FILE);
  const existing = readSecret(path, logger);
  if (existing !== undefined) return existing;
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    // Another `up` made it first: use that one.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readSecret(path, logger)!;
    throw e;
  }
  try {
    writeSync(fd, secret + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, 0o600); // whatever the umask did
  logger.info({ path }, 'made a new cluster secret for store-to-store authentication');
  return secret;
}

function readSecret(path: string, logger: Logger): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError(`cannot read the cluster secret ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const secret = text.trim();
  if (secret.length < MIN_SECRET_CHARS || /\s/.test(secret)) {
    throw new UsageError(`${path} must hold the cluster secret: one line of at least ${MIN_SECRET_CHARS} characters without spaces (delete the file to make a new one, then restart every store)`);
  }
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) logger.warn({ path, mode: mode.toString(8) }, 'the cluster secret file is readable by other users; chmod 600 it');
  return secret;
}
