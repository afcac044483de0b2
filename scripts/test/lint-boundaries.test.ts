import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, '..', 'lint-boundaries.mjs');
const run = (root: string) => spawnSync(process.execPath, [script, '--root', root], { encoding: 'utf8' });

describe('lint-boundaries', () => {
  it('fails when raft-core imports a Node built-in', () => {
    const r = run(join(here, 'fixtures', 'impure'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/raft\.ts:2: raft-core must stay pure: imports 'node:fs'/);
  });

  it('fails when raft-core calls Math.random, but not for a mention in a comment', () => {
    const r = run(join(here, 'fixtures', 'impure-clock'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/raft\.ts:3: .*Math\.random/);
    expect(r.stderr).not.toMatch(/raft\.ts:1:/);
  });

  it('fails when a package imports another package by relative path', () => {
    const r = run(join(here, 'fixtures', 'cross-import'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/packages\/store\/src\/index\.ts:1: imports '\.\.\/\.\.\/raft-core\/src\/index'/);
  });

  it('passes on a clean tree', () => {
    const r = run(join(here, 'fixtures', 'clean'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('passes on this repository', () => {
    const r = run(join(here, '..', '..'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
