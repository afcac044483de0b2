// interaction.test: runs every testdata/*.txt script through InteractionEnv,
// one vitest test per file. With REWRITE=1 the files' expectations are
// replaced by the actual output (read the diff before committing it).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseDataDriven, renderDataDriven } from './datadriven';
import type { TestCase } from './datadriven';
import { InteractionEnv } from './env';

const testdataDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'testdata');
const rewrite = process.env['REWRITE'] === '1';
const files = readdirSync(testdataDir)
  .filter((f) => f.endsWith('.txt'))
  .sort();

describe('raft interaction scripts', () => {
  it('has the scripts', () => {
    expect(files.length).toBeGreaterThanOrEqual(20);
  });

  for (const f of files) {
    it(f, () => {
      const path = join(testdataDir, f);
      const content = readFileSync(path, 'utf8');
      const file = parseDataDriven(content, f);
      const env = new InteractionEnv();
      const actual = new Map<TestCase, string>();
      for (const item of file.items) {
        if (item.kind !== 'case') continue;
        const tc = item.tc;
        let got: string;
        try {
          got = env.handle(tc);
        } catch (err) {
          // A crash is reported with its location so the script can be fixed.
          throw new Error(`${f}:${tc.line}: ${tc.cmdLines[0]}: ${(err as Error).stack ?? String(err)}`);
        }
        actual.set(tc, got);
        if (!rewrite) {
          expect(got, `${f}:${tc.line}: ${tc.cmdLines[0]}`).toBe(tc.expected);
        }
      }
      if (rewrite) {
        const next = renderDataDriven(file, actual);
        if (next !== content) writeFileSync(path, next);
      }
    });
  }
});
