#!/usr/bin/env node
// build: the installable faces of Flotilla (docs/packaging.md). In the
// monorepo every package runs from its TypeScript source (vitest, tsx, tsc
// resolve "exports" to src/); this builds what a tarball ships instead:
//
//   @flotilla/client  packages/client/dist/index.js + index.d.ts
//   @flotilla/store   packages/store/dist/{index,testing}.js + .d.ts, the log engine's writer thread
//   @flotilla/node    apps/node/dist/flotilla.js (the `flotilla` bin), the writer thread
//
// Each is an esbuild bundle (ES modules, node20) that inlines the internal
// packages it uses (@flotilla/proto, placement, ..., listed in its
// devDependencies) and keeps every package of its `dependencies` external,
// so a tarball needs no internal package from a registry and pulls only the
// npm packages it names. The build fails when bundled code imports an npm
// package that the target does not list, or lists at another version than
// the internal package that imports it.
//
// Types: one `tsc --emitDeclarationOnly --noCheck` over the targets' entry
// files (`pnpm typecheck` is the type check; here tsc only writes .d.ts),
// then rollup-plugin-dts folds each entry's declarations and those of the
// internal packages into one file per entry: a consumer needs no @flotilla
// package it did not install, under any moduleResolution.
//
// Usage: node scripts/build.mjs [--no-types] [--pack DIR] [client|store|node ...]
//   (no target: all three). --pack DIR then runs `pnpm pack` for each built
//   target into DIR (without its prepack, which would build again) and
//   prints one JSON line {"target","tarball"} per tarball on stdout.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * TARGETS: what each installable package ships; `worker` adds the log
 * engine's writer thread next to the bundle; `bin` starts every output with
 * a `#!/usr/bin/env node` line (the bin is one of them; in the others it is
 * a comment to Node).
 */
const TARGETS = {
  client: { dir: 'packages/client', entries: { index: 'src/index.ts' }, types: ['index'] },
  store: { dir: 'packages/store', entries: { index: 'src/index.ts', testing: 'src/testing.ts' }, types: ['index', 'testing'], worker: true },
  node: { dir: 'apps/node', entries: { flotilla: 'src/main.ts' }, types: [], worker: true, bin: true },
};
const LOG_ENGINE = join(root, 'packages/log-engine/src');
const BANNER = "import { createRequire as __flotillaCreateRequire } from 'node:module'; const require = __flotillaCreateRequire(import.meta.url);";

const USAGE = `usage: node scripts/build.mjs [--no-types] [--dist NAME] [--pack DIR] [${Object.keys(TARGETS).join('|')} ...]  (docs/packaging.md)`;
function usage(message) {
  console.error(`build: ${message}\n${USAGE}`);
  process.exit(2);
}

const args = process.argv.slice(2);
let types = true;
let packDir;
/** distName: the output folder inside each target's folder; the test suite builds into its own (.test-dist) so the tarball test's dist/ never swaps under a running child. */
let distName = 'dist';
const names = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--no-types') types = false;
  else if (a === '--pack') packDir = args[++i] ?? usage('--pack needs a directory');
  else if (a === '--dist') distName = args[++i] ?? usage('--dist needs a folder name');
  else if (a === '--help' || a === '-h') {
    console.log(USAGE);
    process.exit(0);
  }
  else if (a in TARGETS) names.push(a);
  else usage(`unknown argument ${a}`);
}
if (names.length === 0) names.push(...Object.keys(TARGETS));

const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));

/** WORKSPACE: every @flotilla package by name: its folder and its subpath exports' TypeScript sources. */
const WORKSPACE = new Map();
for (const group of ['packages', 'apps']) {
  for (const name of readdirSync(join(root, group))) {
    const dir = join(root, group, name);
    if (!existsSync(join(dir, 'package.json'))) continue;
    const pkg = readJson(join(dir, 'package.json'));
    const subpaths = {};
    for (const [sub, target] of Object.entries(pkg.exports ?? {})) if (typeof target === 'object' && target.types) subpaths[sub] = join(dir, target.types);
    WORKSPACE.set(pkg.name, { dir, pkg, subpaths });
  }
}

const packageName = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
const isBuiltin = (spec) => spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]);

/** owningPackage: the workspace package whose folder holds file (for the version check). */
function owningPackage(file) {
  for (const w of WORKSPACE.values()) if (file.startsWith(w.dir + '/')) return w;
  return undefined;
}

/**
 * externalsPlugin keeps the target's dependencies (and Node's built-ins)
 * external and lets esbuild inline every other @flotilla package; any other
 * npm import is an error, as is one that the importing internal package
 * pins to another version than the target.
 */
function externalsPlugin(pkg, problems) {
  const deps = pkg.dependencies ?? {};
  return {
    name: 'flotilla-externals',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (a) => {
        if (a.kind === 'entry-point') return undefined;
        if (isBuiltin(a.path)) return { path: a.path, external: true };
        const name = packageName(a.path);
        const owner = owningPackage(a.importer);
        const ownVersion = owner?.pkg.dependencies?.[name] ?? owner?.pkg.devDependencies?.[name];
        if (name in deps) {
          if (ownVersion && !ownVersion.startsWith('workspace:') && ownVersion !== deps[name]) {
            problems.push(`${relative(root, a.importer)} imports ${a.path} at ${ownVersion}, but ${pkg.name} depends on ${deps[name]}`);
          }
          return { path: a.path, external: true };
        }
        if (name.startsWith('@flotilla/') && WORKSPACE.has(name)) return undefined; // inlined
        problems.push(`${relative(root, a.importer)} imports ${a.path}, which ${pkg.name} does not list in dependencies (its bundle keeps npm packages external)`);
        return { path: a.path, external: true };
      });
    },
  };
}

async function bundle(name, outDir) {
  const t = TARGETS[name];
  const dir = join(root, t.dir);
  const pkg = readJson(join(dir, 'package.json'));
  const entryPoints = Object.fromEntries(Object.entries(t.entries).map(([k, v]) => [k, join(dir, v)]));
  if (t.worker) entryPoints['write-worker'] = join(LOG_ENGINE, 'write-worker.ts');
  const problems = [];
  const result = await build({
    entryPoints,
    outdir: outDir,
    bundle: true,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: true,
    sourcesContent: false,
    metafile: true,
    plugins: [externalsPlugin(pkg, problems)],
    banner: { js: t.bin ? `#!/usr/bin/env node\n${BANNER}` : BANNER },
    logLevel: 'warning',
  });
  const inputs = Object.keys(result.metafile.inputs);
  // The log engine starts its writer thread from files next to its own module (engine.ts): they must ship too.
  if (!t.worker && inputs.some((f) => f.endsWith('packages/log-engine/src/engine.ts'))) problems.push(`${pkg.name} bundles the log engine: set worker: true in TARGETS`);
  if (t.worker) copyFileSync(join(LOG_ENGINE, 'worker-bootstrap.mjs'), join(outDir, 'worker-bootstrap.mjs'));
  if (problems.length > 0) throw new Error(`${pkg.name}:\n  ${problems.join('\n  ')}`);
}

/** emitDeclarations runs tsc once over every entry that ships types, internal packages mapped to their sources so they are emitted too. */
function emitDeclarations(targets, typesDir) {
  const paths = {};
  for (const [name, w] of WORKSPACE) for (const [sub, file] of Object.entries(w.subpaths)) paths[sub === '.' ? name : `${name}/${sub.slice(2)}`] = [file];
  const files = targets.flatMap((n) => TARGETS[n].types.map((e) => join(root, TARGETS[n].dir, TARGETS[n].entries[e])));
  const tsconfig = join(typesDir, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(root, 'tsconfig.base.json'),
      compilerOptions: { declaration: true, emitDeclarationOnly: true, noEmit: false, noCheck: true, rootDir: root, outDir: join(typesDir, 'out'), paths, typeRoots: [join(root, 'node_modules/@types')] },
      files,
    }),
  );
  const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc (declarations) failed:\n${r.stdout}${r.stderr}`);
}

/** bundleDeclarations folds each entry's .d.ts and the internal packages' into dist/<entry>.d.ts; the target's dependencies stay imports. */
async function bundleDeclarations(name, typesDir, outDir) {
  const t = TARGETS[name];
  if (t.types.length === 0) return;
  const { rollup } = await import('rollup');
  const { dts } = await import('rollup-plugin-dts');
  const pkg = readJson(join(root, t.dir, 'package.json'));
  const emitted = (source) => join(typesDir, 'out', relative(root, source)).replace(/\.ts$/, '.d.ts');
  const input = Object.fromEntries(t.types.map((e) => [e, emitted(join(root, t.dir, t.entries[e]))]));
  const internal = {
    name: 'flotilla-internal-types',
    resolveId(spec) {
      if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('\0')) return null;
      const pkgName = packageName(spec);
      const w = WORKSPACE.get(pkgName);
      if (!w || pkgName in (pkg.dependencies ?? {})) return { id: spec, external: true };
      const file = w.subpaths[spec === pkgName ? '.' : `./${spec.slice(pkgName.length + 1)}`];
      if (!file) throw new Error(`${spec}: not an export of ${pkgName}`);
      return emitted(file);
    },
  };
  const b = await rollup({ input, plugins: [internal, dts()], onwarn: (w) => console.error(`build: ${name} types: ${w.message}`) });
  await b.write({ dir: outDir, format: 'es', entryFileNames: '[name].d.ts', chunkFileNames: 'types-[hash].d.ts' });
  await b.close();
}

/** pack runs `pnpm pack` in the target's folder (the prepack that would build again is skipped) and returns the tarball's path. */
function pack(name, dest) {
  const r = spawnSync('pnpm', ['pack', '--config.ignore-scripts=true', '--pack-destination', dest, '--json'], { cwd: join(root, TARGETS[name].dir), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pnpm pack (${name}) failed:\n${r.stdout}${r.stderr}`);
  const out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  const file = out.filename ?? out.path ?? out[0]?.filename;
  if (!file) throw new Error(`pnpm pack (${name}): no tarball named in ${r.stdout}`);
  return resolve(dest, file);
}

const work = mkdtempSync(join(tmpdir(), 'flotilla-build-'));
try {
  if (types && names.some((n) => TARGETS[n].types.length > 0)) emitDeclarations(names.filter((n) => TARGETS[n].types.length > 0), work);
  for (const name of names) {
    // Built beside dist/ and swapped in whole: a reader never sees half a dist, and nothing stale survives.
    const dist = join(root, TARGETS[name].dir, distName);
    const next = `${dist}.next-${process.pid}`;
    rmSync(next, { recursive: true, force: true });
    mkdirSync(next, { recursive: true });
    await bundle(name, next);
    if (types) await bundleDeclarations(name, work, next);
    rmSync(dist, { recursive: true, force: true });
    renameSync(next, dist);
    console.error(`build: ${relative(root, dist)}/ (${readdirSync(dist).filter((f) => !f.endsWith('.map')).join(', ')})`);
  }
  if (packDir) {
    mkdirSync(packDir, { recursive: true });
    for (const name of names) console.log(JSON.stringify({ target: name, tarball: pack(name, resolve(packDir)) }));
  }
} catch (err) {
  console.error(`build: ${err.message}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
  for (const name of names) rmSync(`${join(root, TARGETS[name].dir, distName)}.next-${process.pid}`, { recursive: true, force: true });
}
