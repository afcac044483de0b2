// glob.ts: Redis' glob-style patterns (SCAN MATCH, CONFIG GET, INFO-less
// lookups), on bytes: `*` any run, `?` one byte, `[abc]` `[^a-z]` classes,
// `\x` the byte x itself. literalPrefix lets SCAN MATCH user:* read only the
// keys that start with `user:` instead of filtering the whole key space.

type Token =
  | { kind: 'literal'; byte: number }
  | { kind: 'any' }
  | { kind: 'star' }
  | { kind: 'class'; negate: boolean; ranges: [number, number][] };

/** Glob is a compiled pattern. */
export class Glob {
  private readonly tokens: Token[];

  constructor(pattern: Uint8Array) {
    this.tokens = compile(pattern);
  }

  /** literalPrefix: the bytes every match starts with (up to the first wildcard). */
  literalPrefix(): Uint8Array {
    const out: number[] = [];
    for (const t of this.tokens) {
      if (t.kind !== 'literal') break;
      out.push(t.byte);
    }
    return Uint8Array.from(out);
  }

  /** matchesEverything: the pattern is `*` (or `**`...), so filtering can be skipped. */
  matchesEverything(): boolean {
    return this.tokens.length > 0 && this.tokens.every((t) => t.kind === 'star');
  }

  /**
   * matches: whether the whole of s matches. Greedy with one backtrack
   * point (the last star), which is exact for globs: a later star can
   * always absorb what an earlier one would have.
   */
  matches(s: Uint8Array): boolean {
    const t = this.tokens;
    let ti = 0;
    let si = 0;
    let starTi = -1;
    let starSi = 0;
    while (si < s.length) {
      const tok = t[ti];
      if (tok && tok.kind === 'star') {
        starTi = ti++;
        starSi = si;
        continue;
      }
      if (tok && matchOne(tok, s[si]!)) {
        ti++;
        si++;
        continue;
      }
      if (starTi < 0) return false;
      ti = starTi + 1;
      si = ++starSi;
    }
    while (t[ti]?.kind === 'star') ti++;
    return ti === t.length;
  }
}

function matchOne(tok: Token, byte: number): boolean {
  switch (tok.kind) {
    case 'literal':
      return tok.byte === byte;
    case 'any':
      return true;
    case 'class': {
      const inside = tok.ranges.some(([lo, hi]) => byte >= lo && byte <= hi);
      return tok.negate ? !inside : inside;
    }
    case 'star':
      return false;
  }
}

function compile(p: Uint8Array): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < p.length) {
    const c = p[i]!;
    if (c === 0x2a /* * */) {
      if (out[out.length - 1]?.kind !== 'star') out.push({ kind: 'star' });
      i++;
    } else if (c === 0x3f /* ? */) {
      out.push({ kind: 'any' });
      i++;
    } else if (c === 0x5c /* \ */ && i + 1 < p.length) {
      out.push({ kind: 'literal', byte: p[i + 1]! });
      i += 2;
    } else if (c === 0x5b /* [ */) {
      i = compileClass(p, i + 1, out);
    } else {
      out.push({ kind: 'literal', byte: c });
      i++;
    }
  }
  return out;
}

/** compileClass reads a `[...]` class starting after its `[`; an unterminated class ends with the pattern, as in Redis. */
function compileClass(p: Uint8Array, start: number, out: Token[]): number {
  let i = start;
  let negate = false;
  if (p[i] === 0x5e /* ^ */) {
    negate = true;
    i++;
  }
  const ranges: [number, number][] = [];
  while (i < p.length && p[i] !== 0x5d /* ] */) {
    let lo = p[i]!;
    if (lo === 0x5c && i + 1 < p.length) lo = p[++i]!;
    if (p[i + 1] === 0x2d /* - */ && i + 2 < p.length && p[i + 2] !== 0x5d) {
      let hi = p[i + 2]!;
      if (hi === 0x5c && i + 3 < p.length) hi = p[++i + 2]!;
      ranges.push(lo <= hi ? [lo, hi] : [hi, lo]);
      i += 3;
    } else {
      ranges.push([lo, lo]);
      i++;
    }
  }
  out.push({ kind: 'class', negate, ranges });
  return i + 1;
}

/** prefixEnd is the smallest key greater than every key starting with prefix (empty: no such key, the end of the key space). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  let n = prefix.length;
  while (n > 0 && prefix[n - 1] === 0xff) n--;
  if (n === 0) return new Uint8Array(0);
  // A copy, never a view: a Buffer's slice shares memory, and the increment below must not change the caller's prefix.
  const out = new Uint8Array(n);
  out.set(prefix.subarray(0, n));
  out[n - 1]!++;
  return out;
}
