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

  it('fails when the store\'s raft/, context.ts or operation/ import a layer above them (rule 3)', () => {
    const r = run(join(here, 'fixtures', 'store-layering'));
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toContain("packages/store/src/context.ts:2: context.ts sits below batch/ in the store's layering and must not import it ('./batch/poller') (rule 3: store layering)");
    expect(lines).toContain("packages/store/src/raft/storage.ts:2: raft/ sits below store.ts in the store's layering and must not import it ('../store') (rule 3: store layering)");
    expect(r.stderr).toMatch(/packages\/store\/src\/operation\/query\.ts:3: operation\/ sits below router\/router\.ts .*'\.\.\/router\/router\.js'.*\(rule 3/);
    expect(r.stderr).toMatch(/packages\/store\/src\/operation\/ready\/ready\.ts:1: operation\/ sits below fsm\/ .*\(rule 3/);
    expect(r.stderr).toMatch(/packages\/store\/src\/operation\/ready\/ready\.ts:2: operation\/ sits below start\.ts .*\(rule 3/);
    // Allowed: raft/ -> config, operation/ -> router/message and operation/, batch/ -> store.ts and operation/, and a mention in a comment.
    expect(r.stderr).not.toMatch(/raft\/storage\.ts:[13]:|query\.ts:[12]:|ready\.ts:3:|batch\/poller\.ts/);
    expect(lines.at(-1)).toBe('lint-boundaries: 5 violation(s)');
  });

  it('fails when a package, bench/ or scripts/ imports an @flotilla package it does not declare (rule 4)', () => {
    const r = run(join(here, 'fixtures', 'undeclared-deps'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/packages\/client\/src\/index\.ts:2: imports '@flotilla\/placement\/client' but packages\/client\/package\.json does not declare @flotilla\/placement.*\(rule 4: declared dependencies\)/);
    expect(r.stderr).toMatch(/packages\/client\/test\/helpers\.ts:2: imports '@flotilla\/kv-engine' .*\(rule 4/);
    expect(r.stderr).toMatch(/bench\/raft\.ts:2: imports '@flotilla\/log-engine' but bench\/package\.json does not declare .*\(rule 4/);
    expect(r.stderr).toMatch(/scripts\/tool\.mjs:1: imports '@flotilla\/proto' but package\.json does not declare .*\(rule 4/);
    // Declared in dependencies or devDependencies, or the package's own name: fine.
    expect(r.stderr).not.toMatch(/index\.ts:[13]:|helpers\.ts:1:|raft\.ts:1:/);
    expect(r.stderr.trim().split('\n').at(-1)).toBe('lint-boundaries: 4 violation(s)');
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

  it('fails on a function over 70 lines in store, transport or sim, and on an oversized store file (rule 5)', () => {
    const r = run(join(here, 'fixtures', 'room-sizes'));
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toContain('packages/store/src/store.ts: 201 lines, over 200: split it by concept (rule 5: room sizes)');
    expect(lines).toContain('packages/transport/src/long.ts:1: function tooLong is 71 lines, over 70: split it into named steps (rule 5: room sizes)');
    expect(lines).toContain('packages/sim/src/runner.ts:2: function run is 71 lines, over 70: split it into named steps (rule 5: room sizes)');
    // A function of exactly 70 lines fits.
    expect(r.stderr).not.toMatch(/ok\.ts/);
  });
});
