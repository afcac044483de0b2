import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * MemberIdentity is `<dataDir>/member.json`: which member of which
 * placement group this data directory belongs to. It is local (never
 * replicated): the member's name, its Raft ID, the group token, and
 * whether it joined a running group (its log then starts empty and fills
 * from the leader) or was one of the initial members.
 */
export interface MemberIdentity {
  version: 1;
  name: string;
  id: number;
  clusterToken: string;
  joined: boolean;
}

export const IDENTITY_FILE = 'member.json';

export function readIdentity(dataDir: string): MemberIdentity | null {
  const path = join(dataDir, IDENTITY_FILE);
  if (!existsSync(path)) return null;
  let v: Partial<MemberIdentity>;
  try {
    v = JSON.parse(readFileSync(path, 'utf8')) as Partial<MemberIdentity>;
  } catch (err) {
    throw new Error(`${path}: not valid JSON (${(err as Error).message}); restore it or remove the member and add it again with a fresh --data-dir`);
  }
  if (v.version !== 1 || typeof v.name !== 'string' || !Number.isSafeInteger(v.id) || (v.id as number) <= 0 || typeof v.clusterToken !== 'string' || typeof v.joined !== 'boolean') {
    throw new Error(`${path}: not a placement member identity (version 1 with name, id, clusterToken, joined)`);
  }
  return v as MemberIdentity;
}

/** writeIdentity writes the file durably (temporary file, fsync, rename, fsync of the directory). */
export function writeIdentity(dataDir: string, ident: MemberIdentity): void {
  const path = join(dataDir, IDENTITY_FILE);
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, JSON.stringify(ident, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
