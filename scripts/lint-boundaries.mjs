#!/usr/bin/env node
// lint-boundaries: the architectural rules a type checker cannot see.
//
// 1. packages/raft-core/src stays pure: no Node built-ins, no ws, no
//    better-sqlite3, no pino, no clock, no timers, no Math.random. Time is a
//    tick and randomness comes through Config.
// 2. No package imports another package's files by relative path; packages
//    import each other by name (@flotilla/x) so the dependency graph is the
//    one package.json declares.
//
// Usage: node scripts/lint-boundaries.mjs [--root DIR]
// Exit status 0 when clean, 1 when a rule is broken (each violation printed
// as path:line: message), 2 on bad usage.
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

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
    if (m) report(file, idx + 1, `raft-core must stay pure: imports '${m[1]}'`);
    for (const [re, why] of FORBIDDEN_USE) if (re.test(text)) report(file, idx + 1, `raft-core must stay pure: ${why}`);
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
            report(file, idx + 1, `imports '${m[1]}' from outside ${group}/${pkg}; import the package by name (@flotilla/...)`);
          }
        }
      });
    }
  }
}

if (violations.length > 0) {
  for (const v of violations) console.error(v);
  console.error(`lint-boundaries: ${violations.length} violation(s)`);
  process.exit(1);
}
console.log('lint-boundaries: ok');
