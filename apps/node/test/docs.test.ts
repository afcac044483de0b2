import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/cli';
import { commonFlags } from '../src/args';

// docs/operations.md promises every command's flags; this keeps the promise
// when a flag is added.
const ops = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');

describe('docs/operations.md', () => {
  it('documents every command and every flag', () => {
    for (const c of COMMANDS) {
      expect(ops, `flotilla ${c.spec.path.join(' ')}`).toContain(`flotilla ${c.spec.path.join(' ')}`);
      for (const f of [...c.spec.flags, ...commonFlags]) expect(ops, `--${f.name} of ${c.spec.path.join(' ')}`).toContain(`--${f.name}`);
    }
  });
});
