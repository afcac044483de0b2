import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

describe('@flotilla/placement/client entry', () => {
  it('exports PlacementClient without loading the server side (no better-sqlite3)', () => {
    const entry = resolve(__dirname, '../src/client-index.ts');
    const script = `
      const m = await import(${JSON.stringify(entry)});
      const loaded = Object.keys(require.cache ?? {}).filter((k) => k.includes('better-sqlite3'));
      console.log(JSON.stringify({ client: typeof m.PlacementClient, error: typeof m.PlacementError, sqlite: loaded.length }));
    `;
    const out = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); ${script}`], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(out.stderr).toBe('');
    expect(JSON.parse(out.stdout.trim())).toEqual({ client: 'function', error: 'function', sqlite: 0 });
  });
});
