import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster, type TestCluster } from '@flotilla/store/testing';

// The packages as a user installs them (issue #20 item 3, docs/packaging.md):
// `node scripts/build.mjs --pack` bundles @flotilla/client, @flotilla/store
// and @flotilla/node and runs `pnpm pack` for each; npm installs the
// tarballs into fresh projects outside the repo, and plain `node` (no tsx,
// no TypeScript source) runs them against a cluster this test started.
//
// better-sqlite3 (the store and the CLI need it, the client must not pull
// it) compiles from source here, as its prebuilt binaries cannot be
// downloaded: over two minutes of CPU (5 min of wall time on the shared
// 2-core machine). So by default the store+CLI project is installed with
// --ignore-scripts and given the workspace's own compiled addon of the same
// better-sqlite3 version; `flotilla version` then proves it loads.
// FLOTILLA_TARBALL_SQLITE_FROM_SOURCE=1 takes a user's path instead: the
// project allows better-sqlite3's install script (npm 11 runs a
// dependency's install script only when package.json's allowScripts names
// it) and npm compiles it.

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const work = mkdtempSync(join(tmpdir(), 'flotilla-tarball-'));
let tarballs: Record<'client' | 'store' | 'node', string>;
let cluster: TestCluster | undefined;
const timings: Record<string, number> = {};

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** npmEnv: this environment without what pnpm and the test runner inject (npm_* settings, FLOTILLA_*), so npm behaves as in a user's shell. */
function npmEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_registry', 'npm_config_cache', 'npm_config_userconfig', 'npm_config_nodedir']);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if ((!k.toLowerCase().startsWith('npm_') || keep.has(k.toLowerCase())) && !k.startsWith('FLOTILLA_')) env[k] = v;
  // node-gyp finds Node's headers only through this (as scripts/setup.sh sets it), for a from-source better-sqlite3.
  if (!env['npm_config_nodedir'] && existsSync('/usr/include/node')) env['npm_config_nodedir'] = '/usr';
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

/** sh runs a command without blocking this process (the cluster it serves lives here), bounded by timeoutMs. */
function sh(command: string, args: string[], opts: { cwd: string; timeoutMs: number; what: string }): Promise<Run> {
  const t0 = performance.now();
  return new Promise((done) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: npmEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      timings[opts.what] = Math.round(performance.now() - t0);
      done({ code, stdout, stderr });
    });
  });
}

const show = (r: Run) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** tarballManifest reads package/package.json out of a tarball, and its file list. */
async function tarballManifest(tgz: string): Promise<{ pkg: Record<string, unknown> & { dependencies?: Record<string, string> }; files: string[] }> {
  const list = await sh('tar', ['-tzf', tgz], { cwd: work, timeoutMs: 10_000, what: 'tar' });
  const manifest = await sh('tar', ['-xzOf', tgz, 'package/package.json'], { cwd: work, timeoutMs: 10_000, what: 'tar' });
  return { pkg: JSON.parse(manifest.stdout) as Record<string, unknown>, files: list.stdout.trim().split('\n') };
}

const SQLITE_FROM_SOURCE = process.env['FLOTILLA_TARBALL_SQLITE_FROM_SOURCE'] === '1';

function newProject(name: string, extra: Record<string, unknown> = {}): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module', ...extra }));
  return dir;
}

/** installs: the two npm installs, started together once the tarballs exist; each test awaits its own. */
let installs: { client: Promise<{ app: string; run: Run }>; cli: Promise<{ app: string; run: Run }> };

async function installClient(): Promise<{ app: string; run: Run }> {
  const app = newProject('client-app');
  const run = await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarballs.client], { cwd: app, timeoutMs: 120_000, what: 'npm install client' });
  return { app, run };
}

async function installCli(): Promise<{ app: string; run: Run }> {
  const app = newProject('cli-app', SQLITE_FROM_SOURCE ? { allowScripts: { 'better-sqlite3': true } } : {});
  const flags = ['--prefer-offline', '--no-audit', '--no-fund', ...(SQLITE_FROM_SOURCE ? [] : ['--ignore-scripts'])];
  const run = await sh('npm', ['install', ...flags, tarballs.client, tarballs.store, tarballs.node], { cwd: app, timeoutMs: SQLITE_FROM_SOURCE ? 900_000 : 180_000, what: 'npm install store+node' });
  if (run.code === 0 && !SQLITE_FROM_SOURCE) {
    // The compiled addon of the workspace's better-sqlite3, in place of the install script's minutes of compiling.
    const workspaceSqlite = dirname(createRequire(join(root, 'apps/node/package.json')).resolve('better-sqlite3/package.json'));
    const installed = join(app, 'node_modules/better-sqlite3');
    const version = (dir: string) => (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
    if (version(installed) !== version(workspaceSqlite)) return { app, run: { ...run, code: -1, stderr: `better-sqlite3 ${version(installed)} installed, the workspace has ${version(workspaceSqlite)}: its addon does not fit` } };
    mkdirSync(join(installed, 'build/Release'), { recursive: true });
    copyFileSync(join(workspaceSqlite, 'build/Release/better_sqlite3.node'), join(installed, 'build/Release/better_sqlite3.node'));
  }
  return { app, run };
}

beforeAll(async () => {
  const built = await sh(process.execPath, [join(root, 'scripts/build.mjs'), '--pack', join(work, 'tarballs')], { cwd: root, timeoutMs: 150_000, what: 'build+pack' });
  expect(built.code, show(built)).toBe(0);
  const lines = built.stdout.trim().split('\n').map((l) => JSON.parse(l) as { target: 'client' | 'store' | 'node'; tarball: string });
  tarballs = Object.fromEntries(lines.map((l) => [l.target, l.tarball])) as typeof tarballs;
  installs = { client: installClient(), cli: installCli() };
  cluster = await startTestCluster({ stores: 1 });
}, 180_000);

afterAll(async () => {
  // A failed test may leave an install running: wait for it (each is bounded) before removing its folder.
  await Promise.allSettled([installs?.client, installs?.cli]);
  await cluster?.close();
  rmSync(work, { recursive: true, force: true });
  console.log(`tarball test timings (ms): ${JSON.stringify(timings)}`);
}, 200_000);

describe('packed tarballs installed with npm', () => {
  it('@flotilla/client: npm installs it without SQLite; plain node writes and reads a key; its types check under nodenext', async () => {
    const { pkg, files } = await tarballManifest(tarballs.client);
    // Internal packages are inlined: the tarball depends only on npm packages.
    expect(Object.keys(pkg.dependencies ?? {}).sort()).toEqual(['msgpackr', 'ws', 'zod']);
    expect(pkg.exports).toEqual({ '.': { types: './dist/index.d.ts', import: './dist/index.js' }, './package.json': './package.json' });
    expect(files).toEqual(expect.arrayContaining(['package/package.json', 'package/dist/index.js', 'package/dist/index.d.ts']));
    expect(files.some((f) => f.includes('/src/'))).toBe(false);

    const { app, run: install } = await installs.client;
    expect(install.code, show(install)).toBe(0);
    expect(existsSync(join(app, 'node_modules/@flotilla/client/dist/index.js'))).toBe(true);
    expect(existsSync(join(app, 'node_modules/better-sqlite3')), 'the client must not pull better-sqlite3').toBe(false);

    writeFileSync(
      join(app, 'app.mjs'),
      [
        "import { FlotillaClient } from '@flotilla/client';",
        'const client = await FlotillaClient.connect({ placement: process.argv[2], timeoutMs: 10000 });',
        "await client.put('tarball:greeting', 'hello from plain node');",
        "const value = await client.get('tarball:greeting');",
        'console.log(new TextDecoder().decode(value));',
        'client.close();',
      ].join('\n'),
    );
    // The declarations: `types` first in exports, found under the strictest resolution; a wrong use is an error (not `any`).
    writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, skipDefaultLibCheck: true, types: [] }, files: ['check.ts'] }));
    writeFileSync(
      join(app, 'check.ts'),
      [
        "import { FlotillaClient, ClientError } from '@flotilla/client';",
        'export async function f(): Promise<Uint8Array | null> {',
        "  const c = await FlotillaClient.connect({ placement: '127.0.0.1:1', timeoutMs: 100 });",
        '  // @ts-expect-error get returns bytes or null, not a number',
        "  const n: number = await c.get('k');",
        '  void n;',
        '  const regions = await c.regions();',
        '  void regions[0]?.region.epoch.confVer;',
        '  void ClientError;',
        "  return c.get('k');",
        '}',
      ].join('\n'),
    );
    const [run, tsc] = await Promise.all([
      sh(process.execPath, ['app.mjs', cluster!.placementAddress], { cwd: app, timeoutMs: 30_000, what: 'node app.mjs' }),
      sh(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', app], { cwd: app, timeoutMs: 60_000, what: 'tsc nodenext' }),
    ]);
    expect(run.code, show(run)).toBe(0);
    expect(run.stdout).toBe('hello from plain node\n');
    expect(new TextDecoder().decode((await cluster!.client.get('tarball:greeting'))!)).toBe('hello from plain node');
    expect(tsc.code, show(tsc)).toBe(0);
  }, 180_000);

  it('@flotilla/node and @flotilla/store: npx flotilla runs the CLI; startTestCluster runs from plain node', async () => {
    const node = await tarballManifest(tarballs.node);
    expect(node.pkg.bin).toEqual({ flotilla: './dist/flotilla.js' });
    expect(Object.keys(node.pkg.dependencies ?? {}).filter((d) => d.startsWith('@flotilla/'))).toEqual([]);
    const store = await tarballManifest(tarballs.store);
    // The store's testing entry returns a FlotillaClient of the user's own @flotilla/client, so it stays a dependency.
    expect(Object.keys(store.pkg.dependencies ?? {}).filter((d) => d.startsWith('@flotilla/'))).toEqual(['@flotilla/client']);
    expect(store.files).toEqual(expect.arrayContaining(['package/dist/index.js', 'package/dist/testing.js', 'package/dist/testing.d.ts', 'package/dist/write-worker.js', 'package/dist/worker-bootstrap.mjs']));

    const { app, run: install } = await installs.cli;
    expect(install.code, show(install)).toBe(0);
    // The embedded cluster from the store tarball: SQLite, the log engine's writer thread, the client; the process must exit by itself.
    writeFileSync(
      join(app, 'embed.mjs'),
      [
        "import { startTestCluster } from '@flotilla/store/testing';",
        'const cluster = await startTestCluster({ stores: 1 });',
        "await cluster.client.put('k', 'embedded');",
        "const v = await cluster.client.get('k');",
        'await cluster.close();',
        'console.log(JSON.stringify({ value: new TextDecoder().decode(v), stores: cluster.stores.length }));',
      ].join('\n'),
    );
    await cluster!.client.put('tarball:cli', 'read by npx flotilla');
    const [version, help, get, embed] = await Promise.all([
      sh('npx', ['--no-install', 'flotilla', 'version'], { cwd: app, timeoutMs: 30_000, what: 'npx flotilla version' }),
      sh('npx', ['--no-install', 'flotilla', '--help'], { cwd: app, timeoutMs: 30_000, what: 'npx flotilla --help' }),
      sh('npx', ['--no-install', 'flotilla', 'get', 'tarball:cli', '--placement', cluster!.placementAddress], { cwd: app, timeoutMs: 30_000, what: 'npx flotilla get' }),
      sh(process.execPath, ['embed.mjs'], { cwd: app, timeoutMs: 45_000, what: 'node embed.mjs' }),
    ]);
    expect(version.code, show(version)).toBe(0);
    expect(version.stdout).toMatch(/^flotilla 0\.1\.0\nnode \d+\.\d+\.\d+\nSQLite 3\.\d+\.\d+ \(better-sqlite3 12\.\d+\.\d+\)\n$/);
    expect(help.code, show(help)).toBe(0);
    expect(help.stdout).toContain('Usage: flotilla <command>');
    expect(get.code, show(get)).toBe(0);
    expect(get.stdout).toBe('read by npx flotilla\n');
    expect(embed.code, show(embed)).toBe(0);
    expect(JSON.parse(embed.stdout)).toEqual({ value: 'embedded', stores: 1 });
  }, SQLITE_FROM_SOURCE ? 1_000_000 : 240_000);
});
