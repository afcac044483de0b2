import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { boolFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';

// `flotilla version`: what is installed, cheaply (no cluster, no data dir):
// this package's version, Node's, and the SQLite that better-sqlite3 was
// built with. It is also what the packed-tarball test runs to see that the
// installed CLI starts (apps/node/test/tarball.test.ts).

/** VersionInfo is what `flotilla version --json` prints. */
export interface VersionInfo {
  flotilla: string;
  node: string;
  betterSqlite3: string | null;
  sqlite: string | null;
  /** sqliteError says why SQLite could not be loaded (a missing or mismatched native module); the stores need it, the ctl commands do not. */
  sqliteError?: string;
}

/**
 * ownPackageJson finds @flotilla/node's package.json above this module: two
 * levels up from src/commands/ when run from source, one from dist/ when
 * bundled, so the version printed is the one installed.
 */
function ownPackageJson(): { version: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@flotilla/node' && pkg.version) return { version: pkg.version };
    } catch {
      // no package.json here; keep going up
    }
    dir = dirname(dir);
  }
  return { version: 'unknown' };
}

/** versionInfo loads better-sqlite3 only here, so no other command pays for the native module it does not use. */
export async function versionInfo(): Promise<VersionInfo> {
  const info: VersionInfo = { flotilla: ownPackageJson().version, node: process.versions.node, betterSqlite3: null, sqlite: null };
  try {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(':memory:');
    try {
      info.sqlite = db.prepare('SELECT sqlite_version()').pluck().get() as string;
    } finally {
      db.close();
    }
    const { createRequire } = await import('node:module');
    const req = createRequire(import.meta.url);
    info.betterSqlite3 = (JSON.parse(readFileSync(req.resolve('better-sqlite3/package.json'), 'utf8')) as { version: string }).version;
  } catch (err) {
    info.sqliteError = (err as Error).message.split('\n')[0];
  }
  return info;
}

const versionSpec: CommandSpec = {
  path: ['version'],
  summary: 'Print the versions of flotilla, Node.js and SQLite (better-sqlite3).',
  positionals: [],
  flags: [{ name: 'json', type: 'boolean', description: 'print JSON instead of text', schema: boolFlag() }],
  examples: ['flotilla version', 'flotilla version --json'],
};

export const versionCommand: Command = {
  spec: versionSpec,
  async run(ctx: CommandContext) {
    const v = await versionInfo();
    if (ctx.parsed.values['json'] === true) {
      ctx.io.stdout.write(JSON.stringify(v) + '\n');
      return EXIT.ok;
    }
    const sqlite = v.sqlite ? `SQLite ${v.sqlite} (better-sqlite3 ${v.betterSqlite3})` : `SQLite unavailable: ${v.sqliteError}`;
    ctx.io.stdout.write(`flotilla ${v.flotilla}\nnode ${v.node}\n${sqlite}\n`);
    return EXIT.ok;
  },
};
