import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The client reaches placement through @flotilla/placement/client, the face
// without the server, so a client process never loads SQLite. A child
// process checks it (a fresh module cache); loading the package root
// afterwards shows that the check can see better-sqlite3 when it is there.
describe('@flotilla/client and SQLite', () => {
  it('connect() loads PlacementClient without loading better-sqlite3', () => {
    const entry = resolve(__dirname, '../src/index.ts');
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const sqlite = () => Object.keys(require.cache ?? {}).filter((k) => k.includes('better-sqlite3')).length;
      const { FlotillaClient } = await import(${JSON.stringify(entry)});
      const err = await FlotillaClient.connect({ placement: '127.0.0.1:1', timeoutMs: 300 }).then(() => null, (e) => e.code ?? e.message);
      const afterConnect = sqlite();
      await import('@flotilla/placement');
      console.log(JSON.stringify({ err, afterConnect, afterRoot: sqlite() }));
    `;
    const out = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: resolve(__dirname, '..'), encoding: 'utf8', timeout: 30_000 });
    expect(out.stderr).toBe('');
    const r = JSON.parse(out.stdout.trim()) as { err: string | null; afterConnect: number; afterRoot: number };
    expect(r.err).not.toBeNull(); // nothing listens on port 1: connect fails, after loading PlacementClient
    expect(r.afterConnect).toBe(0);
    expect(r.afterRoot).toBeGreaterThan(0);
  });
});
