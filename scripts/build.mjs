#!/usr/bin/env node
// build: bundle the `flotilla` CLI into one ES module, apps/node/dist/flotilla.mjs,
// runnable with plain `node` (no tsx). Native and optional modules stay
// external and resolve from node_modules at run time. In the monorepo the
// packages themselves run from TypeScript source (vitest, tsx); this is the
// artefact to ship. `pnpm typecheck` is the type-level check.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'apps/node/dist/flotilla.mjs');
await build({
  entryPoints: [join(root, 'apps/node/src/main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  external: ['better-sqlite3', 'msgpackr-extract', 'pino', 'pino-pretty', 'thread-stream', 'tsx', 'esbuild', 'bufferutil', 'utf-8-validate'],
  banner: { js: "import { createRequire as __flotillaCreateRequire } from 'node:module'; const require = __flotillaCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
console.log(`build: wrote ${outfile}`);
