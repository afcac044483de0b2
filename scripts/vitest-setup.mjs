// vitest-setup: the suite's global setup. It bundles the `flotilla` CLI once
// (scripts/build.mjs, no types, into apps/node/.test-dist/) and points
// FLOTILLA_CLI_JS at it, so that every CLI child a test spawns (stores,
// placement, `flotilla up` and its children, ctl commands) starts from plain
// JavaScript: ~0.4 s of CPU instead of ~1.5 s through tsx, on a 2-core CI
// machine where the suite spawns hundreds of them. The bundle is built from
// the same source the tests import, at the start of every run, so a child
// never runs stale code. Tests that exercise tsx itself (`pnpm flotilla`)
// still go through pnpm and tsx. FLOTILLA_TEST_TSX=1 skips the bundle.
//
// Each run builds into a folder of its own (.test-dist/<pid>) and removes it
// when it ends: two vitest runs in one tree (two developers, or a run while
// another is still going) would otherwise rebuild the bundle under each
// other's running children. Folders left by a run that was killed are
// removed by the next run once they are a day old.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export default function setup() {
  // Each vitest project runs the global setup; the first build serves all.
  if (process.env.FLOTILLA_TEST_TSX === '1' || process.env.FLOTILLA_CLI_JS) return;
  const base = join(root, 'apps/node/.test-dist');
  removeStale(base);
  const distName = `.test-dist/${process.pid}`;
  const r = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--no-types', '--dist', distName, 'node'], { cwd: root, encoding: 'utf8' });
  const own = join(root, 'apps/node', distName);
  const bundle = join(own, 'flotilla.js');
  if (r.status !== 0 || !existsSync(bundle)) throw new Error(`vitest-setup: building the CLI bundle failed (FLOTILLA_TEST_TSX=1 runs children through tsx instead):\n${r.stdout}${r.stderr}`);
  process.env.FLOTILLA_CLI_JS = bundle;
  return () => rmSync(own, { recursive: true, force: true });
}

const STALE_MS = 24 * 3600_000;

/** removeStale: drops folders under base older than a day (a killed run's), and the plain files of the old single-folder layout; another run's folders (and its build in progress, <pid>.next-<pid>) are younger and stay. */
function removeStale(base) {
  if (!existsSync(base)) return;
  const now = Date.now();
  for (const name of readdirSync(base)) {
    const path = join(base, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (st && (!st.isDirectory() || now - st.mtimeMs > STALE_MS)) rmSync(path, { recursive: true, force: true });
  }
}
