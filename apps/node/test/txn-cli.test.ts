import { describe, expect, it } from 'vitest';
import { parseArgvScript, parseJsonScript } from '../src/commands/txn-script';
import { parseTs } from '../src/commands/txn';
import { runCli } from './helpers';

// `flotilla txn`'s script forms and `--ts`, parsed without a cluster; usage
// errors through the real CLI (they exit 2 before connecting anywhere).

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);

describe('flotilla txn script', () => {
  it('parses compares, both branches and every step of the argument form', () => {
    const s = parseArgvScript(['if k1 = v1', 'if k2 missing', 'if k3 version > 7', 'put a 1', 'get a', 'else', 'del a', 'get k1'], false);
    expect(s.compares).toEqual([
      { key: b('k1'), target: 'value', op: '=', value: b('v1') },
      { key: b('k2'), target: 'exists', op: '=', value: false },
      { key: b('k3'), target: 'version', op: '>', value: 7n },
    ]);
    expect(s.then).toEqual([{ op: 'put', key: b('a'), value: b('1') }, { op: 'get', key: b('a') }]);
    expect(s.else).toEqual([{ op: 'delete', key: b('a') }, { op: 'get', key: b('k1') }]);
    expect(parseArgvScript(['put 0x00ff cafe'], true).then).toEqual([{ op: 'put', key: Buffer.from([0, 255]), value: Buffer.from([0xca, 0xfe]) }]);
  });

  it('names the step that is wrong', () => {
    expect(() => parseArgvScript(['put a'], false)).toThrow(/step 1 \("put a"\): expected 3 words/);
    expect(() => parseArgvScript(['put a 1', 'if a = 1'], false)).toThrow(/step 2 .*compares come first/);
    expect(() => parseArgvScript(['if a ~ 1'], false)).toThrow(/step 1 .*expected "if KEY = VALUE"/);
    expect(() => parseArgvScript(['else', 'else'], false)).toThrow(/step 2 .*a second else/);
    expect(() => parseArgvScript(['frob a'], false)).toThrow(/expected if, put, del, get or else/);
  });

  it('parses the JSON form and rejects unknown fields, naming the path', () => {
    const s = parseJsonScript(
      JSON.stringify({ if: [{ key: 'k', target: 'version', op: '=', value: '123' }, { key: 'e', target: 'exists', op: '!=', value: true }], then: [{ op: 'put', key: 'k', value: 'with spaces' }], else: [{ op: 'get', key: 'k' }] }),
      false,
      't.json',
    );
    expect(s.compares[0]).toEqual({ key: b('k'), target: 'version', op: '=', value: 123n });
    expect(s.then[0]).toEqual({ op: 'put', key: b('k'), value: b('with spaces') });
    expect(() => parseJsonScript('{"then": [{"op": "put", "key": "k"}]}', false, 't.json')).toThrow(/t\.json: then\.0\.value/);
    expect(() => parseJsonScript('{"iff": []}', false, 't.json')).toThrow(/t\.json: \(root\)/);
    expect(() => parseJsonScript('nope', false, 't.json')).toThrow(/t\.json: not JSON/);
  });

  it('reads --ts as a positive 64-bit timestamp or "now"', () => {
    expect(parseTs('now')).toBeUndefined();
    expect(parseTs('465834010839040000')).toBe(465834010839040000n);
    expect(() => parseTs('0')).toThrow(/out of range/);
    expect(() => parseTs('-5')).toThrow(/expected a timestamp/);
    expect(() => parseTs(String(1n << 63n))).toThrow(/out of range/);
  });

  it('the CLI exits 2 on a bad or empty script and on a bad --ts, before connecting', async () => {
    const [bad, empty, ts] = await Promise.all([
      runCli(['txn', 'put a', '--placement', '127.0.0.1:1']),
      runCli(['txn', '--placement', '127.0.0.1:1']),
      runCli(['get', '--ts', 'yesterday', 'k', '--placement', '127.0.0.1:1']),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/expected 3 words/);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/empty script/);
    expect(ts.code).toBe(2);
    expect(ts.stderr).toMatch(/--ts: expected a timestamp/);
  });
});
