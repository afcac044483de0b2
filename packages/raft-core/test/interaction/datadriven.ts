// datadriven: a parser and rewriter for cockroachdb/datadriven-style test
// files, as etcd raft's testdata/*.txt use them.
//
// A file is a sequence of blocks. Lines starting with '#' and blank lines
// between blocks are kept verbatim. A block is:
//
//   command arg1 key=value key2=(1,2,3)
//   optional input lines
//   ----
//   expected output, ended by a blank line or the end of the file
//
// Output that itself contains blank lines is written between a doubled
// separator ("----\n----" ... "----\n----"), as datadriven does.

/** CmdArg is one argument of a command line: `key`, `key=value` or `key=(v1,v2)`. */
export interface CmdArg {
  key: string;
  values: string[];
}

/** TestCase is one block of a datadriven file. */
export interface TestCase {
  /** line is the 1-based line of the command, for error messages. */
  line: number;
  cmd: string;
  args: CmdArg[];
  /** input is the lines between the command and the separator. */
  input: string[];
  /** cmdLines is the command line plus input lines, verbatim. */
  cmdLines: string[];
  expected: string;
}

type Item = { kind: 'text'; text: string } | { kind: 'case'; tc: TestCase };

/** DataDrivenFile keeps the parsed file so that it can be rewritten in place. */
export interface DataDrivenFile {
  items: Item[];
}

export function parseArgs(line: string): { cmd: string; args: CmdArg[] } {
  // Split on spaces outside parentheses, so `voters=(1, 2, 3)` is one field.
  const fields: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of line.trim()) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ' ' && depth === 0) {
      if (cur !== '') fields.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur !== '') fields.push(cur);
  const [cmd, ...rest] = fields;
  if (cmd === undefined) throw new Error('empty command line');
  const args = rest.map((f): CmdArg => {
    const eq = f.indexOf('=');
    if (eq < 0) return { key: f, values: [] };
    const key = f.slice(0, eq);
    let v = f.slice(eq + 1);
    if (v.startsWith('(') && v.endsWith(')')) {
      v = v.slice(1, -1);
      return { key, values: v.split(',').map((x) => x.trim()).filter((x) => x !== '') };
    }
    return { key, values: [v] };
  });
  return { cmd, args };
}

export function parseDataDriven(content: string, fileName = '<input>'): DataDrivenFile {
  const lines = content.split('\n');
  // A trailing newline produces one empty last element; drop it so that the
  // rewrite reproduces the file byte for byte.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const items: Item[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '' || line.startsWith('#')) {
      items.push({ kind: 'text', text: line });
      i++;
      continue;
    }
    const start = i;
    const cmdLines: string[] = [line];
    i++;
    while (i < lines.length && lines[i] !== '----') {
      cmdLines.push(lines[i]!);
      i++;
    }
    if (i >= lines.length) throw new Error(`${fileName}:${start + 1}: command without '----' separator`);
    i++; // the separator
    const out: string[] = [];
    if (i < lines.length && lines[i] === '----') {
      i++;
      while (i < lines.length && !(lines[i] === '----' && lines[i + 1] === '----')) {
        out.push(lines[i]!);
        i++;
      }
      if (i >= lines.length) throw new Error(`${fileName}:${start + 1}: unterminated '----\\n----' block`);
      i += 2;
    } else {
      while (i < lines.length && lines[i]!.trim() !== '') {
        out.push(lines[i]!);
        i++;
      }
    }
    const { cmd, args } = parseArgs(line);
    items.push({
      kind: 'case',
      tc: { line: start + 1, cmd, args, input: cmdLines.slice(1), cmdLines, expected: out.join('\n') },
    });
  }
  return { items };
}

/** renderDataDriven writes the file back with each case's expectation replaced by `actual`. */
export function renderDataDriven(file: DataDrivenFile, actual: Map<TestCase, string>): string {
  const out: string[] = [];
  for (const item of file.items) {
    if (item.kind === 'text') {
      out.push(item.text);
      continue;
    }
    const tc = item.tc;
    const got = actual.get(tc) ?? tc.expected;
    out.push(...tc.cmdLines);
    out.push('----');
    if (got.split('\n').some((l) => l.trim() === '')) {
      out.push('----', got, '----', '----');
    } else {
      out.push(got);
    }
  }
  return out.join('\n') + '\n';
}

/** Args is a small accessor over a case's arguments. */
export class Args {
  constructor(
    readonly tc: TestCase,
    readonly list: CmdArg[] = tc.args,
  ) {}

  /** positional returns the bare arguments (no '='), in order. */
  positional(): string[] {
    return this.list.filter((a) => a.values.length === 0 && !a.key.includes('=')).map((a) => a.key);
  }

  has(key: string): boolean {
    return this.list.some((a) => a.key === key);
  }

  values(key: string): string[] | undefined {
    return this.list.find((a) => a.key === key)?.values;
  }

  str(key: string): string | undefined {
    return this.values(key)?.[0];
  }

  int(key: string): number | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`line ${this.tc.line}: ${key}=${v} is not an integer`);
    return n;
  }

  ints(key: string): number[] | undefined {
    return this.values(key)?.map((v) => {
      const n = Number(v);
      if (!Number.isInteger(n)) throw new Error(`line ${this.tc.line}: ${key} has non-integer ${v}`);
      return n;
    });
  }

  bool(key: string): boolean | undefined {
    const v = this.str(key);
    if (v === undefined) return this.has(key) ? true : undefined;
    if (v !== 'true' && v !== 'false') throw new Error(`line ${this.tc.line}: ${key}=${v} is not a boolean`);
    return v === 'true';
  }
}
