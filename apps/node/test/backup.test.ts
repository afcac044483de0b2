import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import type { ClusterFile } from '../src/cluster-file';
import { cliCommand } from '../src/local-cluster';
import { cleanEnv, killAll, runCli, startUp, type CliChild, type CliResult } from './helpers';

// flotilla backup / restore and `put KEY -` against a real `flotilla up`
// cluster (placement + 3 store processes): binary keys and values
// round-trip exactly through the file, and restore refuses a file it cannot
// trust before writing anything.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-backup-'));
const dataDir = join(dir, 'data');
let up: CliChild;
let cluster: ClusterFile;
let client: FlotillaClient;

beforeAll(async () => {
  ({ up, cluster } = await startUp(dataDir));
  client = await FlotillaClient.connect({ placement: cluster.placement.address, timeoutMs: 30_000 });
}, 150_000);

afterAll(() => {
  client?.close();
  killAll(up, cluster, []);
  rmSync(dir, { recursive: true, force: true });
});

const ctl = (args: string[]) => runCli([...args, '--data-dir', dataDir, '--log-level', 'warn'], { timeoutMs: 60_000 });

/** ctlWithStdin runs a ctl command with input piped to its stdin. */
function ctlWithStdin(args: string[], input: Buffer | string): Promise<CliResult> {
  const { command, args: argv } = cliCommand([...args, '--data-dir', dataDir, '--log-level', 'warn']);
  const child = spawn(command, argv, { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => child.once('close', (code, signal) => (clearTimeout(timer), resolve({ code, signal, ...out }))));
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const dump = async (): Promise<[string, string][]> => (await client.scan('', '', 100_000)).map((p) => [hex(p.key), hex(p.value)]);

describe('flotilla put KEY -', () => {
  it('reads a value over 1 MB from stdin, byte for byte (argv caps one argument at 128 KiB)', async () => {
    const value = randomBytes(1_500_000);
    const r = await ctlWithStdin(['put', 'big/stdin', '-'], value);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('OK\n');
    const got = await client.get('big/stdin');
    expect(got && hex(got) === value.toString('hex')).toBe(true);
  }, 60_000);
});

describe('flotilla backup and restore', () => {
  const file = join(dir, 'cluster.backup');

  it('round-trip arbitrary binary keys and values exactly, the text "0xcafe" distinct from the bytes CA FE, with progress', async () => {
    const binary: [Uint8Array, Uint8Array][] = [
      [Buffer.from('cafe/text'), Buffer.from('0xcafe')],
      [Buffer.from('cafe/bytes'), Buffer.from([0xca, 0xfe])],
      [Buffer.from([0x00]), Buffer.from([])],
      [Buffer.from([0x00, 0x00]), Buffer.from('line one\nline two\r\n')],
      [Buffer.from([0xc3, 0x28, 0x80]), randomBytes(3000)],
      [Buffer.from([0xff, 0xff, 0xfe]), Buffer.from('{"k":"not a line"}\n')],
    ];
    await client.batchPut(binary);
    const load: [string, string][] = [];
    for (let i = 0; i < 3000; i++) load.push([`load/${String(i).padStart(5, '0')}`, `v${i}`]);
    await client.batchPut(load);
    await client.split('load/01500'); // the export crosses a Region boundary inside a page
    const before = await dump();
    expect(before.length).toBeGreaterThan(3006);

    const backup = await ctl(['backup', file, '--batch', '500', '--progress-ms', '0']);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stderr.match(/^backup: [\d,]+ pairs, /gm)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(backup.stderr).toContain(`backup: wrote ${before.length.toLocaleString('en-US')} pairs`);
    expect(existsSync(`${file}.partial`)).toBe(false);
    const fileLines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(fileLines).toHaveLength(before.length + 2);
    const v = (key: string): string | undefined => fileLines.map((l) => JSON.parse(l) as { k?: string; v?: string }).find((o) => o.k === Buffer.from(key).toString('base64'))?.v;
    expect(v('cafe/text')).toBe(Buffer.from('0xcafe').toString('base64'));
    expect(v('cafe/bytes')).toBe('yv4=');

    await client.deleteRange('', '');
    expect(await dump()).toEqual([]);
    const restore = await ctl(['restore', file, '--batch', '400', '--progress-ms', '0']);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.stderr).toContain(`is a complete backup of ${before.length.toLocaleString('en-US')} pairs`);
    expect(restore.stderr.match(/^restore: [\d,]+ pairs, /gm)?.length ?? 0).toBeGreaterThanOrEqual(3);
    expect(await dump()).toEqual(before);
    const [text, bytes] = await Promise.all([ctl(['get', '--hex', 'cafe/text'.replace(/./g, (c) => c.charCodeAt(0).toString(16))]), ctl(['get', '--hex', Buffer.from('cafe/bytes').toString('hex')])]);
    expect(text.stdout).toBe('0x307863616665\n');
    expect(bytes.stdout).toBe('0xcafe\n');

    const again = await ctl(['backup', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('exists');
    const toStdout = await ctl(['backup', '-']);
    expect(toStdout.code, toStdout.stderr).toBe(0);
    expect(toStdout.stdout.split('\n').slice(1)).toEqual(readFileSync(file, 'utf8').split('\n').slice(1));
  }, 120_000);

  it('restore refuses an unknown format version and a truncated file, writing nothing; restore - reads stdin', async () => {
    const pair = (k: string) => JSON.stringify({ k: Buffer.from(k).toString('base64'), v: Buffer.from('x').toString('base64') });
    const trailer = JSON.stringify({ end: true, pairs: 1, keyBytes: 9, valueBytes: 1 });
    const v2 = join(dir, 'v2.backup');
    writeFileSync(v2, [JSON.stringify({ format: 'flotilla-backup', version: 3, createdAt: '' }), pair('refused/1'), trailer, ''].join('\n'));
    const r2 = await ctl(['restore', v2]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('backup format version 3 is not supported; this flotilla reads versions 1 and 2 only');
    const cut = join(dir, 'cut.backup');
    writeFileSync(cut, [JSON.stringify({ format: 'flotilla-backup', version: 1, createdAt: '' }), pair('refused/2'), ''].join('\n'));
    const rc = await ctl(['restore', cut]);
    expect(rc.code).toBe(1);
    expect(rc.stderr).toContain('truncated after 1 pairs');
    expect(await client.batchGet(['refused/1', 'refused/2'])).toEqual([null, null]);

    const piped = await ctlWithStdin(['restore', '-'], [JSON.stringify({ format: 'flotilla-backup', version: 1, createdAt: '' }), pair('stdin/001'), trailer, ''].join('\n'));
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toContain('restore: the cluster already holds keys');
    expect(Buffer.from((await client.get('stdin/001')) ?? []).toString()).toBe('x');
  }, 60_000);
});
