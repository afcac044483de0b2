import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError, helpText, intFlag, parse, pathFlag, type CommandSpec } from '../src/args';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-args-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec: CommandSpec = {
  path: ['thing'],
  summary: 'a test command',
  positionals: [{ name: 'key', description: 'a key', required: false }],
  flags: [
    { name: 'stores', type: 'string', placeholder: 'N', description: 'count', default: '3', schema: intFlag(1, 9) },
    { name: 'data-dir', type: 'string', placeholder: 'DIR', description: 'dir', default: './data', schema: pathFlag() },
  ],
};

describe('parse', () => {
  it('takes defaults, then the config file, then FLOTILLA_* env, then flags', () => {
    const cfg = join(dir, 'c.json');
    writeFileSync(cfg, JSON.stringify({ stores: 5, dataDir: '/from-config' }));
    expect(parse(spec, [], {}).values).toMatchObject({ stores: 3, dataDir: './data', logLevel: 'info' });
    expect(parse(spec, ['--config', cfg], {}).values).toMatchObject({ stores: 5, dataDir: '/from-config' });
    expect(parse(spec, ['--config', cfg], { FLOTILLA_STORES: '7' }).values).toMatchObject({ stores: 7, dataDir: '/from-config' });
    expect(parse(spec, ['--config', cfg, '--stores', '2'], { FLOTILLA_STORES: '7' }).values).toMatchObject({ stores: 2 });
    expect(parse(spec, [], { FLOTILLA_CONFIG: cfg }).values).toMatchObject({ stores: 5 });
  });

  it('names the source of a bad value', () => {
    const err = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
      throw new Error('expected a UsageError');
    };
    expect(err(() => parse(spec, ['--stores', '1.5'], {}))).toBe('--stores: expected a number between 1 and 9');
    expect(err(() => parse(spec, [], { FLOTILLA_STORES: '10' }))).toBe('FLOTILLA_STORES: expected a number between 1 and 9');
    const cfg = join(dir, 'bad.json');
    writeFileSync(cfg, '{"stores": "many"}');
    expect(err(() => parse(spec, ['--config', cfg], {}))).toBe(`${cfg}: stores: expected a number between 1 and 9`);
    writeFileSync(cfg, '[1]');
    expect(err(() => parse(spec, ['--config', cfg], {}))).toContain('must hold a JSON object');
    expect(err(() => parse(spec, ['--config', join(dir, 'missing.json')], {}))).toContain('cannot read');
    expect(err(() => parse(spec, ['a', 'b'], {}))).toContain('unexpected argument "b"');
    expect(err(() => parse(spec, ['--stores'], {}))).toBe('--stores: expected a value');
  });

  it('help lists flags with their env variables and defaults', () => {
    const text = helpText(spec);
    expect(text).toContain('Usage: flotilla thing [key] [flags]');
    expect(text).toMatch(/--stores N\s+count \[default 3; env FLOTILLA_STORES\]/);
    expect(text).toContain('--help');
    expect(parse(spec, ['-h'], {}).help).toBe(true);
  });
});
