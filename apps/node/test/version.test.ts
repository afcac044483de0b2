import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { run } from '../src/cli';
import { cleanEnv } from './helpers';

/** capture runs the CLI's run() in this process with captured output. */
async function capture(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) => ({ write: (chunk: string | Uint8Array) => (append(String(chunk)), true) }) as unknown as NodeJS.WritableStream;
  const code = await run(argv, { stdout: sink((x) => (stdout += x)), stderr: sink((x) => (stderr += x)), env: cleanEnv() });
  return { code, stdout, stderr };
}

describe('flotilla version', () => {
  it('prints the package, Node and SQLite versions, as text and as JSON', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const [text, json] = await Promise.all([capture(['version']), capture(['version', '--json'])]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^flotilla ${pkg.version.replace(/\./g, '\\.')}\nnode ${process.versions.node.replace(/\./g, '\\.')}\nSQLite 3\\.\\d+\\.\\d+ \\(better-sqlite3 12\\.\\d+\\.\\d+\\)\n$`));
    expect(json.code, json.stderr).toBe(0);
    const v = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(v).toEqual({ flotilla: pkg.version, node: process.versions.node, betterSqlite3: expect.stringMatching(/^12\./), sqlite: expect.stringMatching(/^3\./) });
  });
});
