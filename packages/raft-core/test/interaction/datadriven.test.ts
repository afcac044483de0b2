// datadriven.test: the script parser and rewriter the interaction tests rely on.
import { describe, expect, it } from 'vitest';
import { Args, parseArgs, parseDataDriven, renderDataDriven } from './datadriven';
import type { TestCase } from './datadriven';

const sample = `# comment
add-nodes 3 voters=(1, 2,3) checkquorum=true
----
ok

propose-conf-change 1 transition=explicit
v2 l3
----
line one
line two

multi
----
----
first

after blank
----
----
`;

function cases(src: string): TestCase[] {
  return parseDataDriven(src).items.flatMap((i) => (i.kind === 'case' ? [i.tc] : []));
}

describe('datadriven', () => {
  it('parses commands, arguments, input lines and both output forms', () => {
    const cs = cases(sample);
    expect(cs.map((c) => c.cmd)).toEqual(['add-nodes', 'propose-conf-change', 'multi']);
    const a = new Args(cs[0]!);
    expect(a.positional()).toEqual(['3']);
    expect(a.ints('voters')).toEqual([1, 2, 3]);
    expect(a.bool('checkquorum')).toBe(true);
    expect(cs[1]!.input).toEqual(['v2 l3']);
    expect(cs[1]!.expected).toBe('line one\nline two');
    expect(cs[2]!.expected).toBe('first\n\nafter blank');
    expect(cs[2]!.line).toBe(12);
  });

  it('rewrites a file byte for byte when outputs are unchanged, and replaces changed ones', () => {
    const f = parseDataDriven(sample);
    expect(renderDataDriven(f, new Map())).toBe(sample);
    const first = f.items.find((i) => i.kind === 'case');
    if (first?.kind !== 'case') throw new Error('no case');
    const next = renderDataDriven(f, new Map([[first.tc, 'changed\noutput']]));
    expect(next).toContain('checkquorum=true\n----\nchanged\noutput\n\npropose-conf-change');
    expect(cases(next)[0]!.expected).toBe('changed\noutput');
  });

  it('rejects a command without separator and bad integers', () => {
    expect(() => parseDataDriven('campaign 1\n')).toThrow(/separator/);
    const tc = cases('x n=abc\n----\nok\n')[0]!;
    expect(() => new Args(tc).int('n')).toThrow(/not an integer/);
    expect(parseArgs('deliver-msgs drop=(2,3) type=MsgApp').args).toEqual([
      { key: 'drop', values: ['2', '3'] },
      { key: 'type', values: ['MsgApp'] },
    ]);
  });
});
