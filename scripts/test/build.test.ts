import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('pnpm build', () => {
  it('bundles the flotilla CLI into one module that runs with plain node', () => {
    const b = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { encoding: 'utf8' });
    expect(b.stderr).toBe('');
    expect(b.status).toBe(0);
    const r = spawnSync(process.execPath, [join(root, 'apps/node/dist/flotilla.mjs'), '--help'], { encoding: 'utf8', cwd: '/' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Usage: flotilla <command>');
  }, 60_000);
});
