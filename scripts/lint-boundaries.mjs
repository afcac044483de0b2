#!/usr/bin/env node
// lint-boundaries: the architectural rules a type checker cannot see.
//
// 1. packages/raft-core/src stays pure: no Node built-ins, no ws, no
//    better-sqlite3, no pino, no clock, no timers, no Math.random. Time is a
//    tick and randomness comes through Config.
// 2. No package imports another package's files by relative path; packages
//    import each other by name (@flotilla/x) so the dependency graph is the
//    one package.json declares.
// 3. The store's layering (the store-carve design, store-carve.md §2 "The
//    layering"): packages/store/src/raft/ and context.ts import nothing from
//    operation/, batch/, router/router, fsm/ or store.ts; operation/ imports
//    nothing from batch/, router/router, fsm/, store.ts, server/ or start.ts.
//    Relative imports are resolved against the importing file, so the rule
//    holds whichever of these folders exist. index.ts (and the package's own
//    name, @flotilla/store) counts as the top too: it re-exports store.ts.
//    KNOWN_UPWARD (below) may excuse an upward import that has a planned fix
//    (empty since the carve), and reports an entry once it excuses nothing.
// 4. Every @flotilla/x (or @flotilla/x/sub) import is declared in the
//    importing package's package.json (dependencies, devDependencies,
//    peerDependencies or optionalDependencies); a package may import its own
//    name. Workspace packages are the folders pnpm-workspace.yaml lists
//    (packages/*, apps/*, bench), and every source file in them is checked
//    (src/, test/ and anything else: they all resolve through the package's
//    node_modules). scripts/ (less scripts/test/fixtures, which are inputs
//    of this linter's tests) and the root's own files are checked against
//    the root package.json.
//
// 5. Room sizes (scripts/lint-sizes.mjs): no function over 70 lines in
//    packages/{store,transport,sim}/src, no file over 350 lines in
//    packages/store/src and store.ts (the facade) at most 200.
//
// Each violation names its rule at the end of the line, e.g. "(rule 4:
// declared dependencies)".
//
// Usage: node scripts/lint-boundaries.mjs [--root DIR]
// Exit status 0 when clean, 1 when a rule is broken (each violation printed
// as path:line: message), 2 on bad usage.
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { checkSizes } from './lint-sizes.mjs';

const args = process.argv.slice(2);
let root = process.cwd();
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--root' && args[i + 1]) root = resolve(args[++i]);
  else if (args[i] === '--help' || args[i] === '-h') {
    console.log('usage: node scripts/lint-boundaries.mjs [--root DIR]');
    process.exit(0);
  } else {
    console.error(`lint-boundaries: unknown argument ${args[i]}`);
    process.exit(2);
  }
}

const SOURCE = /\.(ts|tsx|mts|cts|js|mjs|cjs)$/;
function walk(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(p, out);
    else if (SOURCE.test(name)) out.push(p);
  }
  return out;
}

/** stripComments blanks comments and string contents except import specifiers, keeping line numbers. */
function stripComments(src) {
  let out = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    const n = src[i + 1];
    if (c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && n === '*') {
      i += 2;
      while (i < src.length && !(src[i] === '*' && src[i + 1] === '/')) {
        if (src[i] === '\n') out += '\n';
        i++;
      }
      i += 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const violations = [];
const report = (file, line, msg) => violations.push(`${relative(root, file)}:${line}: ${msg}`);

const RULE1 = '(rule 1: raft-core purity)';
const RULE2 = '(rule 2: packages import each other by name)';
const RULE3 = '(rule 3: store layering)';
const RULE4 = '(rule 4: declared dependencies)';
const toPosix = (p) => p.split(sep).join('/');

// Rule 1: raft-core purity.
const FORBIDDEN_IMPORT = /(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)['"](node:[^'"]*|fs|path|os|net|http|https|crypto|child_process|worker_threads|timers|perf_hooks|ws|better-sqlite3|pino)(?:\/[^'"]*)?['"]/;
const FORBIDDEN_USE = [
  [/\bDate\s*\.\s*now\b|\bnew\s+Date\b|\bDate\s*\(/, 'uses the wall clock (Date); time is a tick'],
  [/\b(setTimeout|setInterval|setImmediate|clearTimeout|clearInterval)\s*\(/, 'uses a timer; the host drives tick()'],
  [/\bperformance\s*\.\s*now\b/, 'uses performance.now; time is a tick'],
  [/\bMath\s*\.\s*random\b/, 'uses Math.random; inject a seeded random through Config'],
  [/\bprocess\s*\./, 'touches process; raft-core has no I/O'],
];
const raftSrc = join(root, 'packages', 'raft-core', 'src');
for (const file of walk(raftSrc)) {
  const lines = stripComments(readFileSync(file, 'utf8')).split('\n');
  lines.forEach((text, idx) => {
    const m = FORBIDDEN_IMPORT.exec(text);
    if (m) report(file, idx + 1, `raft-core must stay pure: imports '${m[1]}' ${RULE1}`);
    for (const [re, why] of FORBIDDEN_USE) if (re.test(text)) report(file, idx + 1, `raft-core must stay pure: ${why} ${RULE1}`);
  });
}

// Rule 2: no relative imports across package folders.
const IMPORT_SPEC = /(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+|export\s+\*\s+from\s+)['"](\.{1,2}\/[^'"]*)['"]/g;
for (const group of ['packages', 'apps']) {
  const groupDir = join(root, group);
  if (!existsSync(groupDir)) continue;
  for (const pkg of readdirSync(groupDir)) {
    const pkgDir = join(groupDir, pkg);
    if (!statSync(pkgDir).isDirectory()) continue;
    for (const file of walk(pkgDir)) {
      const lines = stripComments(readFileSync(file, 'utf8')).split('\n');
      lines.forEach((text, idx) => {
        for (const m of text.matchAll(IMPORT_SPEC)) {
          const target = resolve(dirname(file), m[1]);
          if (target !== pkgDir && !target.startsWith(pkgDir + sep)) {
            report(file, idx + 1, `imports '${m[1]}' from outside ${group}/${pkg}; import the package by name (@flotilla/...) ${RULE2}`);
          }
        }
      });
    }
  }
}

// Rule 3: the store's layering. Each entry: which files (a folder prefix or
// one file, relative to packages/store/src, without extension), the folders
// and files they must not import, and why.
const storeSrc = join(root, 'packages', 'store', 'src');
const LOW_LAYER_BANS = { dirs: ['operation', 'batch', 'fsm'], files: ['router/router', 'store', 'index'] };
const STORE_LAYERS = [
  { what: 'raft/', matches: (rel) => rel.startsWith('raft/'), bans: LOW_LAYER_BANS },
  { what: 'context.ts', matches: (rel) => rel === 'context', bans: LOW_LAYER_BANS },
  {
    what: 'operation/',
    matches: (rel) => rel.startsWith('operation/'),
    bans: { dirs: ['batch', 'fsm', 'server'], files: ['router/router', 'store', 'start', 'index'] },
  },
];
/**
 * KNOWN_UPWARD lists the upward imports that exist today and have a planned
 * fix; each is allowed until that fix lands. An entry that no longer matches
 * anything (its file exists but does not make that import) is reported, so
 * the list cannot outlive the code it excuses: delete the entry then.
 */
const KNOWN_UPWARD = [];
const usedExceptions = new Set();
const SOURCE_EXT = /\.(ts|tsx|mts|cts|js|mjs|cjs)$/;
/** storeModule names a resolved path as a module of packages/store/src ('raft/peer', 'index'), or undefined outside it. */
function storeModule(absPath) {
  const rel = toPosix(relative(storeSrc, absPath));
  if (rel.startsWith('..') || rel.startsWith('/')) return undefined;
  const bare = rel.replace(SOURCE_EXT, '').replace(/(^|\/)index$/, '');
  return bare === '' ? 'index' : bare;
}
const IMPORT_ANY = /(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)['"]([^'"]+)['"]/g;
if (existsSync(storeSrc)) {
  for (const file of walk(storeSrc)) {
    const self = storeModule(file);
    const layer = STORE_LAYERS.find((l) => l.matches(self));
    if (!layer) continue;
    const lines = stripComments(readFileSync(file, 'utf8')).split('\n');
    lines.forEach((text, idx) => {
      for (const m of text.matchAll(IMPORT_ANY)) {
        const spec = m[1];
        let target;
        if (spec.startsWith('./') || spec.startsWith('../')) target = storeModule(resolve(dirname(file), spec));
        else if (spec === '@flotilla/store') target = 'index';
        if (target === undefined) continue;
        const banned = layer.bans.dirs.find((d) => target === d || target.startsWith(d + '/')) ?? layer.bans.files.find((f) => target === f);
        if (!banned) continue;
        const fileRel = toPosix(relative(root, file));
        const exception = KNOWN_UPWARD.find((e) => e.file === fileRel && e.target === target);
        if (exception) {
          usedExceptions.add(exception);
          continue;
        }
        const name = layer.bans.dirs.includes(banned) ? `${banned}/` : `${banned}.ts`;
        report(file, idx + 1, `${layer.what} sits below ${name} in the store's layering and must not import it ('${spec}') ${RULE3}`);
      }
    });
  }
}
for (const e of KNOWN_UPWARD) {
  if (!usedExceptions.has(e) && existsSync(join(root, e.file))) {
    violations.push(`scripts/lint-boundaries.mjs: KNOWN_UPWARD excuses ${e.file} importing ${e.target}, which it no longer does; delete the entry ${RULE3}`);
  }
}

// Rule 4: every @flotilla import is declared in the importing package's package.json.
/** workspaceDirs reads the package folders from pnpm-workspace.yaml (only `dir` and `dir/*` entries); packages/* and apps/* without one. */
function workspaceDirs() {
  const ws = join(root, 'pnpm-workspace.yaml');
  let globs = ['packages/*', 'apps/*'];
  if (existsSync(ws)) {
    globs = [];
    let inPackages = false;
    for (const line of readFileSync(ws, 'utf8').split('\n')) {
      if (/^packages:\s*$/.test(line)) inPackages = true;
      else if (/^\S/.test(line)) inPackages = false;
      else if (inPackages) {
        const m = /^\s+-\s+['"]?([^'"#\s]+)['"]?/.exec(line);
        if (m) globs.push(m[1]);
      }
    }
  }
  const dirs = [];
  for (const g of globs) {
    if (g.endsWith('/*')) {
      const parent = join(root, g.slice(0, -2));
      if (!existsSync(parent)) continue;
      for (const name of readdirSync(parent)) {
        const d = join(parent, name);
        if (statSync(d).isDirectory() && existsSync(join(d, 'package.json'))) dirs.push(d);
      }
    } else if (existsSync(join(root, g, 'package.json'))) dirs.push(join(root, g));
  }
  return dirs;
}
function declaredDeps(pkgJsonPath) {
  const pkg = JSON.parse(readFileSync(pkgJsonPath, 'utf8'));
  const deps = new Set();
  for (const field of ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const name of Object.keys(pkg[field] ?? {})) deps.add(name);
  }
  return { name: pkg.name, deps };
}
const FLOTILLA_SPEC = /(?:from\s+|import\s*\(\s*|require\s*\(\s*|import\s+)['"]((@flotilla\/[^'"/]+)(?:\/[^'"]*)?)['"]/g;
function checkDeclared(files, pkgJsonPath) {
  const { name, deps } = declaredDeps(pkgJsonPath);
  const where = toPosix(relative(root, pkgJsonPath));
  for (const file of files) {
    const lines = stripComments(readFileSync(file, 'utf8')).split('\n');
    lines.forEach((text, idx) => {
      for (const m of text.matchAll(FLOTILLA_SPEC)) {
        if (m[2] === name || deps.has(m[2])) continue;
        report(file, idx + 1, `imports '${m[1]}' but ${where} does not declare ${m[2]}; add it ("${m[2]}": "workspace:*") ${RULE4}`);
      }
    });
  }
}
for (const dir of workspaceDirs()) checkDeclared(walk(dir), join(dir, 'package.json'));
if (existsSync(join(root, 'package.json'))) {
  const fixtures = join(root, 'scripts', 'test', 'fixtures');
  const rootFiles = readdirSync(root).filter((n) => SOURCE.test(n)).map((n) => join(root, n)).filter((p) => statSync(p).isFile());
  const scriptFiles = walk(join(root, 'scripts')).filter((p) => !p.startsWith(fixtures + sep));
  checkDeclared([...rootFiles, ...scriptFiles], join(root, 'package.json'));
}

violations.push(...checkSizes(root, walk));

if (violations.length > 0) {
  for (const v of violations) console.error(v);
  console.error(`lint-boundaries: ${violations.length} violation(s)`);
  process.exit(1);
}
console.log('lint-boundaries: ok');
