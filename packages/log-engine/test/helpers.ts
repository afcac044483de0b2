import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Entry } from '@flotilla/raft-core';

/** tempDir makes a fresh directory under the OS temp dir. */
export function tempDir(prefix = 'flotilla-log-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** ent builds an entry whose data names its index and term, so reads can be checked. */
export function ent(index: number, term: number, extra = ''): Entry {
  return { entryType: 0, term, index, data: Buffer.from(`e${index}t${term}${extra}`) };
}

export function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(ent(i, term));
  return out;
}

/** brief renders entries as "index/term/data" for readable assertions. */
export function brief(es: Entry[]): string[] {
  return es.map((e) => `${e.index}/${e.term}/${Buffer.from(e.data).toString()}`);
}
