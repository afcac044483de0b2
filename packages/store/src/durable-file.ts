import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * writeFileDurably writes via a temp file, fsync and rename (then fsyncs
 * the directory), so a crash leaves the old file or the new one, never a
 * torn one.
 */
export function writeFileDurably(path: string, data: string): void {
  const tmp = path + '.tmp';
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
