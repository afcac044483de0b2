// vitest-setup: the suite's global setup. It bundles the `flotilla` CLI once
// (scripts/build.mjs, no types, into apps/node/.test-dist/) and points
// FLOTILLA_CLI_JS at it, so that every CLI child a test spawns (stores,
// placement, `flotilla up` and its children, ctl commands) starts from plain
// JavaScript: ~0.4 s of CPU instead of ~1.5 s through tsx, on a 2-core CI
// machine where the suite spawns hundreds of them. The bundle is built from
// the same source the tests import, at the start of every run, so a child
// never runs stale code. Tests that exercise tsx itself (`pnpm flotilla`)
// still go through pnpm and tsx. FLOTILLA_TEST_TSX=1 skips the bundle.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export default function setup() {
  // Each vitest project runs the global setup; the first build serves all.
  if (process.env.FLOTILLA_TEST_TSX === '1' || process.env.FLOTILLA_CLI_JS) return;
  const r = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--no-types', '--dist', '.test-dist', 'node'], { cwd: root, encoding: 'utf8' });
  const bundle = join(root, 'apps/node/.test-dist/flotilla.js');
  if (r.status !== 0 || !existsSync(bundle)) throw new Error(`vitest-setup: building the CLI bundle failed (FLOTILLA_TEST_TSX=1 runs children through tsx instead):\n${r.stdout}${r.stderr}`);
  process.env.FLOTILLA_CLI_JS = bundle;
}
