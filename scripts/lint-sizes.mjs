// lint-sizes: rule 5 of lint-boundaries, the room sizes the store carve set
// (store-carve.md; issue #14's acceptance). A function that does not fit on
// a screen, or a file that grows past one concept, is where a newcomer gets
// lost; the numbers are the ones the carve reached, kept from growing back.
//   - no function (declaration, method, accessor, arrow or expression body)
//     over MAX_FUNCTION_LINES in packages/{store,transport,sim}/src;
//   - no file over MAX_STORE_FILE_LINES in packages/store/src, and
//     store.ts (the facade) at most MAX_FACADE_LINES.
// raft-core's stepLeader keeps the etcd shape and is not checked (raft-core
// is not in the list).
import { readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ts from 'typescript';

export const MAX_FUNCTION_LINES = 70;
export const MAX_STORE_FILE_LINES = 350;
export const MAX_FACADE_LINES = 200;
const FUNCTION_DIRS = ['packages/store/src', 'packages/transport/src', 'packages/sim/src'];
const RULE5 = '(rule 5: room sizes)';

/** checkSizes returns one violation line per oversized function or file under root. */
export function checkSizes(root, walk) {
  const out = [];
  const rel = (p) => relative(root, p).split(sep).join('/');
  for (const dir of FUNCTION_DIRS) {
    for (const file of walk(join(root, dir))) {
      if (!/\.(ts|mts|cts)$/.test(file)) continue;
      const text = readFileSync(file, 'utf8');
      const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
      if (dir === 'packages/store/src') {
        const limit = rel(file) === 'packages/store/src/store.ts' ? MAX_FACADE_LINES : MAX_STORE_FILE_LINES;
        if (lines > limit) out.push(`${rel(file)}: ${lines} lines, over ${limit}: split it by concept ${RULE5}`);
      }
      for (const f of longFunctions(file, text)) {
        out.push(`${rel(file)}:${f.line}: function ${f.name} is ${f.lines} lines, over ${MAX_FUNCTION_LINES}: split it into named steps ${RULE5}`);
      }
    }
  }
  return out;
}

function longFunctions(file, text) {
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found = [];
  const visit = (node) => {
    if (ts.isFunctionLike(node) && node.body) {
      const first = src.getLineAndCharacterOfPosition(node.getStart(src)).line;
      const last = src.getLineAndCharacterOfPosition(node.end).line;
      const lines = last - first + 1;
      if (lines > MAX_FUNCTION_LINES) found.push({ line: first + 1, lines, name: nameOf(node, src) });
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return found;
}

function nameOf(node, src) {
  if (node.name) return node.name.getText(src);
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText(src);
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText(src);
  return '(anonymous)';
}
